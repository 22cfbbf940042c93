package changelog

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// A run that died before its journal left staged files: the next lock
// removes them, and every changelog stays as it was.
func TestRecoverRollsBack(t *testing.T) {
	dir, paths := tree(t, 3)
	var want []string
	for _, p := range paths[:2] {
		want = append(want, writeFile(t, filepath.Join(filepath.Dir(p), ".changelog.docker-pkg-42.tmp"), "half", 0o600))
	}
	want = append(want, writeFile(t, filepath.Join(dir, ".docker-pkg.journal-7.tmp"), "{", 0o600))
	// A hidden folder holds no image: the scan and the recovery skip it.
	hidden := writeFile(t, filepath.Join(dir, ".git", ".changelog.docker-pkg-1.tmp"), "x", 0o600)
	r := lock(t, dir).Recovered()
	slices.Sort(want)
	slices.Sort(r.Removed)
	if !slices.Equal(r.Removed, want) || r.Journal != "" || len(r.Finished) != 0 {
		t.Errorf("Recovered() = %+v, want removed %v", r, want)
	}
	for _, p := range paths {
		assertContent(t, p, oldChangelog)
	}
	assertContent(t, hidden, "x")
}

// Changelogs edited after the crash keep the edit: recovery does not put a
// stale entry over them.
func TestRecoverKeepsEdited(t *testing.T) {
	dir, paths := tree(t, 3)
	l := lock(t, dir, WithFault(func(_ context.Context, s Step, _ int) error {
		if s == StepJournaled {
			return errors.New("crash")
		}
		return nil
	}))
	b := l.Batch()
	stageAll(t, b, paths)
	var inc *IncompleteError
	if err := b.Commit(t.Context()); !errors.As(err, &inc) {
		t.Fatalf("Commit() = %v, want incomplete", err)
	}
	l.Release()
	writeFile(t, paths[1], "edited by hand\n", 0o644)
	r := lock(t, dir).Recovered()
	if !slices.Equal(r.Kept, paths[1:2]) || !slices.Equal(r.Finished, []string{paths[0], paths[2]}) {
		t.Errorf("Recovered() = %+v, want %s kept, the others finished", r, paths[1])
	}
	assertContent(t, paths[0], string(newEntry)+oldChangelog)
	assertContent(t, paths[1], "edited by hand\n")
	assertContent(t, paths[2], string(newEntry)+oldChangelog)
	if left := leftovers(t, dir); len(left) != 1 {
		t.Errorf("left in the tree: %v, want the lock file only", left)
	}
}

// A journal recovery cannot trust stops the lock, naming it, and stays.
func TestRecoverBadJournal(t *testing.T) {
	tests := []struct {
		name, journal, want string
	}{
		{name: "not JSON", journal: "{\"files\": [", want: "reading the journal: unexpected end of JSON input"},
		{name: "renames a file that is not staged", journal: `{"files": [{"changelog": "a/changelog", "staged": "a/notes.md"}]}`, want: "entry 1 of the journal is not a staged changelog beside its changelog"},
		{name: "renames into another folder", journal: `{"files": [{"changelog": "../etc/changelog", "staged": "a/.changelog.docker-pkg-1.tmp"}]}`, want: "entry 1 of the journal is not a staged changelog beside its changelog"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, paths := tree(t, 1)
			journal := writeFile(t, filepath.Join(dir, JournalFile), tc.journal, 0o644)
			writeFile(t, filepath.Join(dir, "a", "notes.md"), "notes", 0o644)
			_, err := Acquire(t.Context(), dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), journal) {
				t.Fatalf("Acquire() = %v, want an error naming %s saying %q", err, journal, tc.want)
			}
			assertContent(t, journal, tc.journal)
			assertContent(t, paths[0], oldChangelog)
			assertContent(t, filepath.Join(dir, "a", "notes.md"), "notes")
			if _, err := os.Stat(filepath.Join(dir, LockFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the lock file is left after a failed Acquire: %v", err)
			}
		})
	}
}

// kill -9 at every step of a cascade, in a real second process: the next
// lock leaves the cascade whole, old before the journal and new from it
// on, with no file of ours left.
func TestCrash(t *testing.T) {
	tests := []struct {
		step     string
		n        int
		new      bool // the cascade lands
		removed  int  // staged files rolled back
		finished int  // renames the recovery does
	}{
		{step: "staged", n: 1, removed: 1},
		{step: "staged", n: 3, removed: 3},
		{step: "prepared", removed: 3},
		{step: "journaled", new: true, finished: 3},
		{step: "renamed", n: 1, new: true, finished: 2},
		{step: "renamed", n: 2, new: true, finished: 1},
		{step: "renamed", n: 3, new: true},
	}
	for _, tc := range tests {
		t.Run(tc.step+strconv.Itoa(tc.n), func(t *testing.T) {
			dir, paths := tree(t, 3)
			crash(t, tc.step, tc.n, dir, paths)
			r := lock(t, dir).Recovered()
			want := oldChangelog
			if tc.new {
				want = string(newEntry) + oldChangelog
			}
			for _, p := range paths {
				assertContent(t, p, want)
			}
			if tc.new != (r.Journal != "") || len(r.Removed) != tc.removed || len(r.Finished) != tc.finished {
				t.Errorf("Recovered() = %+v, want journal %v, %d removed, %d finished", r, tc.new, tc.removed, tc.finished)
			}
			if left := leftovers(t, dir); len(left) != 1 {
				t.Errorf("left in the tree: %v, want the lock file only", left)
			}
		})
	}
	// A crash during the recovery itself: the next one goes on.
	t.Run("recovered1", func(t *testing.T) {
		dir, paths := tree(t, 3)
		crash(t, "renamed", 1, dir, paths)
		crash(t, "recovered", 1, dir, nil)
		r := lock(t, dir).Recovered()
		if len(r.Finished) != 1 {
			t.Errorf("Recovered() = %+v, want the last rename finished", r)
		}
		for _, p := range paths {
			assertContent(t, p, string(newEntry)+oldChangelog)
		}
	})
}

// crash runs a helper process that writes newEntry to paths under dir's
// lock and kills itself with SIGKILL at step n; it fails the test unless
// the helper died of exactly that.
func crash(t *testing.T, step string, n int, dir string, paths []string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd := helperCmd(t, "crash", 0, append([]string{step, strconv.Itoa(n), dir}, paths...)...)
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("helper: %v, want killed at %s %d; stderr:\n%s", err, step, n, stderr.String())
	}
}

// A staged file removed by hand after the crash, its changelog never
// written: recovery says the entry was lost instead of taking it for
// written.
func TestRecoverLost(t *testing.T) {
	dir, paths := tree(t, 3)
	l := lock(t, dir, WithFault(func(_ context.Context, s Step, _ int) error {
		if s == StepJournaled {
			return errors.New("crash")
		}
		return nil
	}))
	b := l.Batch()
	stageAll(t, b, paths)
	var inc *IncompleteError
	if err := b.Commit(t.Context()); !errors.As(err, &inc) {
		t.Fatalf("Commit() = %v, want incomplete", err)
	}
	l.Release()
	staged, _ := filepath.Glob(filepath.Join(filepath.Dir(paths[1]), ".changelog.docker-pkg-*.tmp"))
	if len(staged) != 1 {
		t.Fatalf("staged files beside %s: %q", paths[1], staged)
	}
	if err := os.Remove(staged[0]); err != nil {
		t.Fatal(err)
	}
	r := lock(t, dir).Recovered()
	if !slices.Equal(r.Lost, paths[1:2]) || !slices.Equal(r.Finished, []string{paths[0], paths[2]}) {
		t.Errorf("Recovered() = %+v, want %s lost, the others finished", r, paths[1])
	}
	assertContent(t, paths[1], oldChangelog)
}

// Two trees of one git work tree, one inside the other, share one lock
// and one journal: a run on the inner folder waits for one on the outer.
func TestLockRootIsTheWorkTree(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	dir, _ := tree(t, 2)
	if out, err := exec.Command("git", "-C", dir, "init", "-q").CombinedOutput(); err != nil {
		t.Fatalf("git init: %v\n%s", err, out)
	}
	inner := filepath.Join(dir, "inner")
	if err := os.MkdirAll(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	root, err := Root(t.Context(), inner)
	if err != nil || root != dir {
		t.Fatalf("Root(%s) = %q, %v; want %s", inner, root, err, dir)
	}
	outer := lock(t, dir)
	_, err = Acquire(t.Context(), inner, NoWait())
	var le *LockedError
	if !errors.As(err, &le) || le.Dir != dir {
		t.Fatalf("Acquire(inner) while the outer tree is locked = %v, want a LockedError on %s", err, dir)
	}
	outer.Release()
	l, err := Acquire(t.Context(), inner, NoWait())
	if err != nil {
		t.Fatal(err)
	}
	l.Release()
	// Outside git, a folder is its own root.
	plain := t.TempDir()
	if root, _ := Root(t.Context(), plain); root != plain {
		t.Errorf("Root(%s) = %q outside git", plain, root)
	}
}
