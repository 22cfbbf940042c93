package image

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// deadPID is the PID of a process that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestNewContextNamedAfterItsProcess(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	src := t.TempDir()
	dir, err := NewContext(t.Context(), src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	prefix := ContextPrefix + strconv.Itoa(os.Getpid()) + "-"
	if filepath.Dir(dir) != tmp || !strings.HasPrefix(filepath.Base(dir), prefix) {
		t.Errorf("context %s, want %s/%s*", dir, tmp, prefix)
	}
	if pid, ok := contextOwner(filepath.Base(dir)); !ok || pid != os.Getpid() {
		t.Errorf("owner of %s: %d, %v; want this process, %d", dir, pid, ok, os.Getpid())
	}
}

func TestRemoveStaleContexts(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := deadPID(t)
	folders := map[string]bool{ // name -> removed
		fmt.Sprintf("%s%d-123", ContextPrefix, dead):        true,
		fmt.Sprintf("%s%d-456", ContextPrefix, dead):        true,
		fmt.Sprintf("%s%d-789", ContextPrefix, os.Getpid()): false, // a live run's
		fmt.Sprintf("%s%d-1", ContextPrefix, 1):             false, // init: alive
		ContextPrefix + "2351990543":                        false, // older name: owner unknown
		ContextPrefix + "x-1":                               false,
		fmt.Sprintf("%s0%d-1", ContextPrefix, dead):         false, // not how a PID is written
		fmt.Sprintf("other-%d-1", dead):                     false,
	}
	for name := range folders {
		if err := os.MkdirAll(filepath.Join(tmp, name, "sub"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// A file, not a folder, under a dead process's name: not ours to touch.
	file := fmt.Sprintf("%s%d-file", ContextPrefix, dead)
	if err := os.WriteFile(filepath.Join(tmp, file), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	folders[file] = false

	removed, err := RemoveStaleContexts()
	if err != nil {
		t.Fatal(err)
	}
	var want, left []string
	for name, gone := range folders {
		if gone {
			want = append(want, filepath.Join(tmp, name))
		}
		if _, err := os.Lstat(filepath.Join(tmp, name)); err == nil == gone {
			left = append(left, name)
		}
	}
	slices.Sort(want)
	slices.Sort(removed)
	if !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	if len(left) > 0 {
		t.Errorf("wrong outcome on disk for %q", left)
	}
}

func TestRemoveStaleContextsBounded(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	dead := deadPID(t)
	for i := range maxStaleContexts + 5 {
		if err := os.Mkdir(filepath.Join(tmp, fmt.Sprintf("%s%d-%d", ContextPrefix, dead, i)), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := RemoveStaleContexts()
	if err != nil || len(removed) != maxStaleContexts {
		t.Fatalf("removed %d (%v), want %d", len(removed), err, maxStaleContexts)
	}
	removed, err = RemoveStaleContexts()
	if err != nil || len(removed) != 5 {
		t.Fatalf("then removed %d (%v), want the 5 left", len(removed), err)
	}
}
