package changelog

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

const oldChangelog = "foo (1.0) wikimedia; urgency=high\n\n  * Initial.\n\n -- A <a@b>  Mon,  5 Jan 2026 10:00:00 +0100\n"

var newEntry = []byte("foo (1.0-s1) wikimedia; urgency=high\n\n   Security update\n\n -- A <a@b>  Tue, 06 Jan 2026 10:00:00 +0100\n\n")

// writeFile creates a file with the given content and mode, and its
// folders.
func writeFile(t *testing.T, path, content string, mode os.FileMode) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
	return path
}

// tree makes a tree folder with n changelogs holding oldChangelog, in
// folders of their own at different depths, and returns it and their
// paths.
func tree(t *testing.T, n int) (string, []string) {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i := range n {
		sub := strings.Repeat("sub/", i%2)
		paths = append(paths, writeFile(t, filepath.Join(dir, sub+string(rune('a'+i)), "changelog"), oldChangelog, 0o644))
	}
	return dir, paths
}

func lock(t *testing.T, dir string, opts ...Option) *Lock {
	t.Helper()
	l, err := Acquire(t.Context(), dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Release() })
	return l
}

func assertContent(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}

// leftovers lists the files of this package under dir: temporary files,
// the journal, the lock file.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && IsInternal(d.Name()) {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func stageAll(t *testing.T, b *Batch, paths []string) {
	t.Helper()
	for _, p := range paths {
		if err := b.Stage(t.Context(), p, newEntry); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBatchCommit(t *testing.T) {
	dir, paths := tree(t, 3)
	// Odd bytes the old text must keep: no final newline, a CRLF further
	// down, non-UTF-8. The mode must survive too.
	odd := oldChangelog + "\r\ntrailing \xff junk"
	writeFile(t, paths[1], odd, 0o640)
	l := lock(t, dir)
	b := l.Batch()
	stageAll(t, b, paths)
	for _, p := range paths { // staged, not written
		if got, _ := os.ReadFile(p); bytes.HasPrefix(got, newEntry) {
			t.Errorf("%s written by Stage", p)
		}
	}
	if err := b.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	b.Abort() // after Commit: must not remove anything
	assertContent(t, paths[0], string(newEntry)+oldChangelog)
	assertContent(t, paths[1], string(newEntry)+odd)
	assertContent(t, paths[2], string(newEntry)+oldChangelog)
	if info, err := os.Stat(paths[1]); err != nil || info.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, %v; want 0640", info.Mode().Perm(), err)
	}
	if got, err := Parse(paths[1]); err != nil || got.Version != "1.0-s1" {
		t.Errorf("Parse() after Commit = %+v, %v", got, err)
	}
	if err := b.Commit(t.Context()); err == nil {
		t.Error("second Commit succeeded")
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, dir); len(left) != 0 {
		t.Errorf("left in the tree: %v", left)
	}
}

func TestBatchAbort(t *testing.T) {
	dir, paths := tree(t, 3)
	l := lock(t, dir)
	b := l.Batch()
	stageAll(t, b, paths)
	b.Abort()
	if err := b.Commit(t.Context()); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	l.Release()
	for _, p := range paths {
		assertContent(t, p, oldChangelog)
	}
	if left := leftovers(t, dir); len(left) != 0 {
		t.Errorf("left in the tree: %v", left)
	}
}

func TestBatchThroughSymlink(t *testing.T) {
	dir, paths := tree(t, 1)
	link := filepath.Join(dir, "linked", "changelog")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(paths[0], link); err != nil {
		t.Fatal(err)
	}
	b := lock(t, dir).Batch()
	stageAll(t, b, []string{link})
	// The same file by another name is the same changelog.
	if err := b.Stage(t.Context(), paths[0], newEntry); err == nil || !strings.Contains(err.Error(), "already staged") {
		t.Errorf("staging the target of a staged link: %v, want already staged", err)
	}
	if err := b.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v, %v", info, err)
	}
	assertContent(t, paths[0], string(newEntry)+oldChangelog)
}

// A changelog with CRLF line endings gets its entry with CRLF; the bytes
// are otherwise those given, and the old text is untouched.
func TestStageLineEndings(t *testing.T) {
	crlf := strings.ReplaceAll(oldChangelog, "\n", "\r\n")
	tests := []struct {
		name, old, wantEntry string
	}{
		{name: "LF", old: oldChangelog, wantEntry: string(newEntry)},
		{name: "CRLF", old: crlf, wantEntry: strings.ReplaceAll(string(newEntry), "\n", "\r\n")},
		{name: "LF first line, CRLF later", old: "foo (1.0) wikimedia; urgency=high\n\r\n", wantEntry: string(newEntry)},
		{name: "CRLF first line, LF later", old: "foo (1.0) wikimedia; urgency=high\r\n\n", wantEntry: strings.ReplaceAll(string(newEntry), "\n", "\r\n")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, filepath.Join(dir, "img", "changelog"), tc.old, 0o644)
			b := lock(t, dir).Batch()
			stageAll(t, b, []string{path})
			if err := b.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			assertContent(t, path, tc.wantEntry+tc.old)
			if got, err := Parse(path); err != nil || got.Version != "1.0-s1" {
				t.Errorf("Parse() = %+v, %v", got, err)
			}
		})
	}
}

// What Stage refuses: each error names the file and matches its sentinel,
// and nothing is written.
func TestStageRefuses(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, path string) // makes the changelog at path
		entry   string                          // "" for newEntry
		want    error
		wantMsg string
	}{
		{
			name:    "read-only 0444",
			make:    func(t *testing.T, p string) { writeFile(t, p, oldChangelog, 0o444) },
			want:    ErrReadOnly,
			wantMsg: "changelog is read-only (mode 0444): make it writable (chmod u+w) to update it",
		},
		{
			name:    "read-only 0400",
			make:    func(t *testing.T, p string) { writeFile(t, p, oldChangelog, 0o400) },
			want:    ErrReadOnly,
			wantMsg: "(mode 0400)",
		},
		{
			name:    "a folder",
			make:    func(t *testing.T, p string) { os.MkdirAll(p, 0o755) },
			want:    ErrNotRegular,
			wantMsg: "not a regular file: it is a folder",
		},
		{
			name: "a FIFO",
			make: func(t *testing.T, p string) {
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := syscall.Mkfifo(p, 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want:    ErrNotRegular,
			wantMsg: "not a regular file: it is a FIFO",
		},
		{
			name: "a link to a device",
			make: func(t *testing.T, p string) {
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.Symlink("/dev/null", p); err != nil {
					t.Fatal(err)
				}
			},
			want:    ErrNotRegular,
			wantMsg: "/dev/null: not a regular file: it is a character device",
		},
		{
			name: "over MaxSize",
			make: func(t *testing.T, p string) {
				writeFile(t, p, oldChangelog, 0o644)
				if err := os.Truncate(p, MaxSize+1); err != nil {
					t.Fatal(err)
				}
			},
			want:    ErrTooLarge,
			wantMsg: "file too large: 1048577 bytes, at most 1048576 may be read",
		},
		{
			name:    "an escape sequence in the entry",
			make:    func(t *testing.T, p string) { writeFile(t, p, oldChangelog, 0o644) },
			entry:   "foo (1.0-s1) wikimedia; urgency=high\n\n   \x1b[31mred\n",
			want:    ErrInvalidEntry,
			wantMsg: "invalid changelog entry: line 3 holds the control character U+001B",
		},
		{
			name:    "a carriage return in the entry",
			make:    func(t *testing.T, p string) { writeFile(t, p, oldChangelog, 0o644) },
			entry:   "foo (1.0-s1) wikimedia; urgency=high\r\n",
			want:    ErrInvalidEntry,
			wantMsg: "line 1 holds the control character U+000D",
		},
		{
			name:    "missing",
			make:    func(t *testing.T, p string) {},
			want:    fs.ErrNotExist,
			wantMsg: "no such file or directory",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "img", "changelog")
			tc.make(t, path)
			entry := newEntry
			if tc.entry != "" {
				entry = []byte(tc.entry)
			}
			other := writeFile(t, filepath.Join(dir, "ok", "changelog"), oldChangelog, 0o644)
			l := lock(t, dir)
			b := l.Batch()
			defer b.Abort()
			stageAll(t, b, []string{other})
			err := b.Stage(t.Context(), path, entry)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantMsg) || !strings.Contains(err.Error(), "changelog") {
				t.Fatalf("Stage() error = %v, want %v saying %q", err, tc.want, tc.wantMsg)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			b.Abort()
			l.Release()
			assertContent(t, other, oldChangelog)
			if info, err := os.Lstat(path); err == nil && info.Mode().IsRegular() && info.Size() < MaxSize {
				assertContent(t, path, oldChangelog)
			}
			if left := leftovers(t, dir); len(left) != 0 {
				t.Errorf("left in the tree: %v", left)
			}
		})
	}
}

func TestCommitFault(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name       string
		step       Step
		n          int
		incomplete bool // Commit returns an *IncompleteError: the journal stays
		written    int  // changelogs with the new entry before recovery
	}{
		{name: "staging the second", step: StepStaged, n: 2},
		{name: "prepared", step: StepPrepared},
		{name: "journaled", step: StepJournaled, incomplete: true},
		{name: "first renamed", step: StepRenamed, n: 1, incomplete: true, written: 1},
		{name: "last renamed", step: StepRenamed, n: 3, incomplete: true, written: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, paths := tree(t, 3)
			l := lock(t, dir, WithFault(func(_ context.Context, s Step, n int) error {
				if s == tc.step && n == tc.n {
					return boom
				}
				return nil
			}))
			b := l.Batch()
			var err error
			for _, p := range paths {
				if err = b.Stage(t.Context(), p, newEntry); err != nil {
					break
				}
			}
			if err == nil {
				err = b.Commit(t.Context())
			}
			b.Abort()
			if !errors.Is(err, boom) {
				t.Fatalf("error = %v, want %v", err, boom)
			}
			var inc *IncompleteError
			if errors.As(err, &inc) != tc.incomplete {
				t.Fatalf("error = %v; incomplete: %v, want %v", err, !tc.incomplete, tc.incomplete)
			}
			written := 0
			for _, p := range paths {
				if got, _ := os.ReadFile(p); bytes.HasPrefix(got, newEntry) {
					written++
				}
			}
			if written != tc.written {
				t.Errorf("%d changelogs written, want %d", written, tc.written)
			}
			_, err = os.Stat(filepath.Join(dir, JournalFile))
			if journal := err == nil; journal != tc.incomplete {
				t.Errorf("journal present: %v, want %v", journal, tc.incomplete)
			}
			if tc.incomplete && (len(inc.Written) != tc.written || len(inc.Pending) != 3-tc.written || inc.Journal != filepath.Join(dir, JournalFile)) {
				t.Errorf("IncompleteError = %+v", inc)
			}

			// The next lock finishes the cascade or finds nothing to do.
			l.Release()
			r := lock(t, dir).Recovered()
			want := oldChangelog
			if tc.incomplete {
				want = string(newEntry) + oldChangelog
				if len(r.Finished) != 3-tc.written || r.Journal == "" {
					t.Errorf("Recovered() = %+v, want %d finished", r, 3-tc.written)
				}
			} else if !r.Empty() {
				t.Errorf("Recovered() = %+v, want nothing to do", r)
			}
			for _, p := range paths {
				assertContent(t, p, want)
			}
			if left := leftovers(t, dir); !slices.Equal(left, []string{filepath.Join(dir, LockFile)}) {
				t.Errorf("left in the tree: %v, want only the lock file", left)
			}
		})
	}
}

func TestCommitRefused(t *testing.T) {
	tests := []struct {
		name   string
		before func(l *Lock, cancel context.CancelFunc)
		want   string
	}{
		{name: "context cancelled", before: func(_ *Lock, cancel context.CancelFunc) { cancel() }, want: "context canceled"},
		{name: "lock released", before: func(l *Lock, _ context.CancelFunc) { l.Release() }, want: "the lock on "},
	}
	t.Run("stage after release", func(t *testing.T) {
		dir, paths := tree(t, 1)
		l := lock(t, dir)
		b := l.Batch()
		l.Release()
		if err := b.Stage(t.Context(), paths[0], newEntry); err == nil || !strings.Contains(err.Error(), "the lock on "+dir+" was released") {
			t.Errorf("Stage() = %v, want refused", err)
		}
		if left := leftovers(t, dir); len(left) != 0 {
			t.Errorf("left in the tree: %v", left)
		}
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, paths := tree(t, 2)
			l := lock(t, dir)
			b := l.Batch()
			stageAll(t, b, paths)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			tc.before(l, cancel)
			if err := b.Commit(ctx); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Commit() = %v, want an error saying %q", err, tc.want)
			}
			l.Release()
			for _, p := range paths {
				assertContent(t, p, oldChangelog)
			}
			if left := leftovers(t, dir); len(left) != 0 {
				t.Errorf("left in the tree: %v", left)
			}
		})
	}
}

func TestIsInternal(t *testing.T) {
	tests := []struct {
		name           string
		file           string
		temp, internal bool
	}{
		{name: "staged changelog", file: ".changelog.docker-pkg-123456.tmp", temp: true, internal: true},
		{name: "journal being written", file: ".docker-pkg.journal-99.tmp", temp: true, internal: true},
		{name: "journal", file: JournalFile, internal: true},
		{name: "lock file", file: LockFile, internal: true},
		{name: "changelog", file: "changelog"},
		{name: "other hidden file", file: ".changelog.swp"},
		{name: "lock-like", file: ".docker-pkg.lock.orig"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsTemp(tc.file); got != tc.temp {
				t.Errorf("IsTemp(%q) = %v, want %v", tc.file, got, tc.temp)
			}
			if got := IsInternal(tc.file); got != tc.internal {
				t.Errorf("IsInternal(%q) = %v, want %v", tc.file, got, tc.internal)
			}
		})
	}
}

// BenchmarkCommit: the cost of a five-file cascade, journal and fsyncs
// included, on the test's file system.
func BenchmarkCommit(b *testing.B) {
	dir := b.TempDir()
	var paths []string
	for i := range 5 {
		p := filepath.Join(dir, string(rune('a'+i)), "changelog")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, bytes.Repeat([]byte(oldChangelog), 100), 0o644); err != nil {
			b.Fatal(err)
		}
		paths = append(paths, p)
	}
	l, err := Acquire(b.Context(), dir)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Release()
	for b.Loop() {
		batch := l.Batch()
		for _, p := range paths {
			if err := batch.Stage(b.Context(), p, newEntry); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestStageRefusesGrowingPastMaxSize: a changelog just under MaxSize
// would be over it with the entry, and then unreadable by every command.
func TestStageRefusesGrowingPastMaxSize(t *testing.T) {
	dir := t.TempDir()
	content := oldChangelog + strings.Repeat(" ", MaxSize-len(oldChangelog)-10)
	path := writeFile(t, filepath.Join(dir, "img", "changelog"), content, 0o644)
	l := lock(t, dir)
	b := l.Batch()
	defer b.Abort()
	err := b.Stage(t.Context(), path, newEntry)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "the new entry would make it") {
		t.Fatalf("Stage = %v, want ErrTooLarge saying why", err)
	}
	if got, _ := os.ReadFile(path); string(got) != content {
		t.Error("the changelog changed")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "img", ".changelog*")); len(left) > 0 {
		t.Errorf("left %q", left)
	}
}
