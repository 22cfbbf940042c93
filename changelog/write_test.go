package changelog

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

const oldChangelog = "foo (1.0) wikimedia; urgency=high\n\n  * Initial.\n\n -- A <a@b>  Mon,  5 Jan 2026 10:00:00 +0100\n"

var newEntry = []byte("foo (1.0-s1) wikimedia; urgency=high\n\n   Security update\n\n -- A <a@b>  Tue, 06 Jan 2026 10:00:00 +0100\n\n")

// writeChangelog creates a changelog with the given content and mode in a
// folder of its own.
func writeChangelog(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "changelog")
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // umask
		t.Fatal(err)
	}
	return path
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

// temps lists Stage's temporary files next to path.
func temps(t *testing.T, path string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if IsTemp(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names
}

func TestPrepend(t *testing.T) {
	// Odd bytes the old text must keep: no final newline, CRLF, non-UTF-8.
	old := oldChangelog + "\r\ntrailing \xff junk"
	path := writeChangelog(t, old, 0o640)
	if err := Prepend(path, newEntry); err != nil {
		t.Fatal(err)
	}
	assertContent(t, path, string(newEntry)+old)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 {
		t.Errorf("mode = %v, want 0640", info.Mode().Perm())
	}
	if left := temps(t, path); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	got, err := Parse(path)
	if err != nil || got.Version != "1.0-s1" {
		t.Errorf("Parse() after Prepend = %+v, %v", got, err)
	}
}

func TestPrependThroughSymlink(t *testing.T) {
	target := writeChangelog(t, oldChangelog, 0o644)
	link := filepath.Join(t.TempDir(), "changelog")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := Prepend(link, newEntry); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Lstat(link); err != nil || info.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v, %v", info, err)
	}
	assertContent(t, target, string(newEntry)+oldChangelog)
}

func TestPrependMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "changelog")
	if err := Prepend(path, newEntry); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Prepend() error = %v, want not-exist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Prepend created %s", path)
	}
	if left := temps(t, path); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// A process that dies after Stage leaves the original whole and a
// recognisable temporary file that later writes do not trip over.
func TestStageWithoutCommit(t *testing.T) {
	path := writeChangelog(t, oldChangelog, 0o644)
	if _, err := Stage(path, []byte("crashed before commit\n")); err != nil {
		t.Fatal(err)
	}
	assertContent(t, path, oldChangelog)
	if left := temps(t, path); len(left) != 1 {
		t.Fatalf("temporary files = %v, want one", left)
	}

	if err := Prepend(path, newEntry); err != nil {
		t.Fatal(err)
	}
	assertContent(t, path, string(newEntry)+oldChangelog)
	if left := temps(t, path); len(left) != 1 {
		t.Errorf("temporary files = %v, want only the crashed one", left)
	}
}

func TestCommitFailureBeforeRename(t *testing.T) {
	path := writeChangelog(t, oldChangelog, 0o644)
	boom := errors.New("boom")
	var staged []byte
	beforeRename = func(tmp string) error {
		var err error
		staged, err = os.ReadFile(tmp)
		if err != nil {
			t.Error(err)
		}
		return boom
	}
	t.Cleanup(func() { beforeRename = func(string) error { return nil } })

	if err := Prepend(path, newEntry); !errors.Is(err, boom) {
		t.Fatalf("Prepend() error = %v, want %v", err, boom)
	}
	// Between write and rename the temporary file is complete.
	if want := string(newEntry) + oldChangelog; string(staged) != want {
		t.Errorf("staged content = %q, want %q", staged, want)
	}
	assertContent(t, path, oldChangelog)
	if left := temps(t, path); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// The all-or-nothing cascade: stage every file, commit only if all staged.
func TestStageCascade(t *testing.T) {
	tests := []struct {
		name       string
		failAt     int // index of the file whose Stage fails, -1 for none
		wantCommit bool
	}{
		{name: "all staged, all committed", failAt: -1, wantCommit: true},
		{name: "one fails, none written", failAt: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var paths []string
			for range 3 {
				paths = append(paths, writeChangelog(t, oldChangelog, 0o644))
			}
			if tc.failAt >= 0 { // a folder instead of a file cannot be read
				paths[tc.failAt] = t.TempDir()
			}

			var staged []*Staged
			var stageErr error
			for _, p := range paths {
				s, err := Stage(p, newEntry)
				if err != nil {
					stageErr = err
					break
				}
				defer s.Abort()
				staged = append(staged, s)
			}
			if (stageErr == nil) != tc.wantCommit {
				t.Fatalf("Stage error = %v", stageErr)
			}
			if stageErr == nil {
				for _, s := range staged {
					if err := s.Commit(); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, s := range staged {
				s.Abort()
			}

			want := oldChangelog
			if tc.wantCommit {
				want = string(newEntry) + oldChangelog
			}
			for i, p := range paths {
				if i == tc.failAt {
					continue
				}
				assertContent(t, p, want)
				if left := temps(t, p); len(left) != 0 {
					t.Errorf("temporary files left next to %s: %v", p, left)
				}
			}
		})
	}
}

func TestCommitTwice(t *testing.T) {
	path := writeChangelog(t, oldChangelog, 0o644)
	s, err := Stage(path, newEntry)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	s.Abort() // after Commit: must not remove anything
	if err := s.Commit(); err == nil {
		t.Error("second Commit succeeded")
	}
	assertContent(t, path, string(newEntry)+oldChangelog)
}

func TestIsTemp(t *testing.T) {
	tests := []struct {
		name string
		file string
		want bool
	}{
		{name: "staged file", file: ".changelog.docker-pkg-123456.tmp", want: true},
		{name: "changelog", file: "changelog", want: false},
		{name: "other hidden file", file: ".changelog.swp", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsTemp(tc.file); got != tc.want {
				t.Errorf("IsTemp(%q) = %v, want %v", tc.file, got, tc.want)
			}
		})
	}
}

func BenchmarkPrepend(b *testing.B) {
	path := filepath.Join(b.TempDir(), "changelog")
	if err := os.WriteFile(path, bytes.Repeat([]byte(oldChangelog), 100), 0o644); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := Prepend(path, newEntry); err != nil {
			b.Fatal(err)
		}
	}
}
