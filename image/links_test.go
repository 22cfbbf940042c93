package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// linkRepo makes a repository holding common/run.sh (0755),
// common/lib/{a.txt,sub/b.txt} and two image folders: linked, whose
// run.sh and lib are symbolic links to them (lib written absolute), and
// plain, holding copies of them. Both have the same modes and times.
func linkRepo(t *testing.T) (root, linked, plain string) {
	t.Helper()
	root = t.TempDir()
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	files := map[string]string{"run.sh": "#!/bin/sh\necho run\n", "lib/a.txt": "a\n", "lib/sub/b.txt": "b\n"}
	for _, base := range []string{"common", "plain"} {
		writeTree(t, filepath.Join(root, base), files)
	}
	linked = filepath.Join(root, "linked")
	plain = filepath.Join(root, "plain")
	writeTree(t, linked, map[string]string{"own.txt": "own\n"})
	writeTree(t, plain, map[string]string{"own.txt": "own\n"})
	for _, base := range []string{"common", "plain"} {
		if err := os.Chmod(filepath.Join(root, base, "run.sh"), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"run.sh", "lib/a.txt", "lib/sub/b.txt", "lib/sub", "lib"} {
			if err := os.Chtimes(filepath.Join(root, base, f), at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Symlink("../common/run.sh", filepath.Join(linked, "run.sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "common", "lib"), filepath.Join(linked, "lib")); err != nil {
		t.Fatal(err)
	}
	return root, linked, plain
}

func TestNewContextFollowsLinksInsideRepository(t *testing.T) {
	root, linked, plain := linkRepo(t)
	t.Setenv("TMPDIR", t.TempDir())
	dir, err := NewContext(t.Context(), linked, root)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	want := []string{"lib/", "lib/a.txt", "lib/sub/", "lib/sub/b.txt", "own.txt", "run.sh"}
	if got := listTree(t, dir); !slices.Equal(got, want) {
		t.Errorf("context holds %q, want %q", got, want)
	}
	info, err := os.Lstat(filepath.Join(dir, "run.sh"))
	if err != nil || !info.Mode().IsRegular() || info.Mode().Perm() != 0o755 {
		t.Fatalf("run.sh in the context: %v, %v; want a regular file, mode 0755", info.Mode(), err)
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "run.sh")); string(data) != "#!/bin/sh\necho run\n" {
		t.Errorf("run.sh holds %q, want its target's content", data)
	}

	// The digest counts the target's content under the link's name: the
	// same as for the plain copies, and it changes with the target.
	in := Inputs{Dockerfile: []byte("FROM scratch\n")}
	dl, err := InputsDigest(t.Context(), linked, root, in)
	if err != nil {
		t.Fatal(err)
	}
	dp, err := InputsDigest(t.Context(), plain, root, in)
	if err != nil {
		t.Fatal(err)
	}
	if dl != dp {
		t.Errorf("digest with links %s, with plain files %s: want equal", dl, dp)
	}
	if err := os.WriteFile(filepath.Join(root, "common", "lib", "a.txt"), []byte("changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if d, _ := InputsDigest(t.Context(), linked, root, in); d == dl {
		t.Error("digest did not change when a link's target did")
	}
	if err := CheckLinks(t.Context(), linked, root); err != nil {
		t.Errorf("CheckLinks() = %v, want nil", err)
	}
}

func TestNewContextRefusesLinks(t *testing.T) {
	tests := []struct {
		name, link, want string
	}{
		{"a host file", "/etc/shadow", "is outside the repository"},
		{"up out of the repository", "../../..", "is outside the repository"},
		{"dangling", "../common/missing.sh", "does not exist"},
		{"a loop", "..", "following it would never end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, linked, _ := linkRepo(t)
			link := filepath.Join(linked, "bad")
			if err := os.Symlink(tt.link, link); err != nil {
				t.Fatal(err)
			}
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			_, err := NewContext(t.Context(), linked, root)
			if !errors.Is(err, ErrLink) {
				t.Fatalf("NewContext() error = %v, want ErrLink", err)
			}
			for _, s := range []string{link, tt.link, tt.want} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if left := listTree(t, tmp); len(left) != 0 {
				t.Errorf("left behind %q", left)
			}
			if _, err := InputsDigest(t.Context(), linked, root, Inputs{}); !errors.Is(err, ErrLink) {
				t.Errorf("InputsDigest() error = %v, want ErrLink", err)
			}
			if err := CheckLinks(t.Context(), linked, root); !errors.Is(err, ErrLink) {
				t.Errorf("CheckLinks() = %v, want ErrLink", err)
			}
		})
	}
}

func TestCheckLinksNamesEveryBadLink(t *testing.T) {
	root, linked, _ := linkRepo(t)
	for name, target := range map[string]string{"shadow": "/etc/shadow", "up": "../../..", "gone": "nowhere", "sub/deep": "/etc/passwd"} {
		p := filepath.Join(linked, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	err := CheckLinks(context.Background(), linked, root)
	for _, name := range []string{"shadow", "up", "gone", "sub/deep"} {
		if err == nil || !strings.Contains(err.Error(), filepath.Join(linked, filepath.FromSlash(name))+":") {
			t.Errorf("CheckLinks() = %v; want it to name %s", err, name)
		}
	}
}

func TestNewContextIgnoredLinks(t *testing.T) {
	root, linked, _ := linkRepo(t)
	writeTree(t, linked, map[string]string{".dockerignore": "stale\nhost/\n"})
	for name, target := range map[string]string{"stale": "nowhere", "host": "/etc"} {
		if err := os.Symlink(target, filepath.Join(linked, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A link inside the folder to a file inside it stays a link.
	if err := os.Symlink("own.txt", filepath.Join(linked, "alias")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", t.TempDir())
	dir, err := NewContext(t.Context(), linked, root)
	if err != nil {
		t.Fatalf("NewContext() with the bad links excluded: %v", err)
	}
	defer os.RemoveAll(dir)
	if got, err := os.Readlink(filepath.Join(dir, "alias")); err != nil || got != "own.txt" {
		t.Errorf("alias: %q, %v; want the link kept", got, err)
	}
	for _, name := range []string{"stale", "host"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is in the context: %v", name, err)
		}
	}
}

func TestNewContextWithoutRoot(t *testing.T) {
	// With no repository given, the image folder is the limit.
	_, linked, _ := linkRepo(t)
	t.Setenv("TMPDIR", t.TempDir())
	if _, err := NewContext(t.Context(), linked, ""); !errors.Is(err, ErrLink) {
		t.Errorf("NewContext() without a root: error = %v, want ErrLink for ../common/run.sh", err)
	}
}
