package image

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeTree makes files (slash paths; a trailing / makes a folder) under dir.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// listTree returns every file and folder under dir, as slash paths, folders
// with a trailing /, sorted.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestNewContextDockerignore(t *testing.T) {
	tests := []struct {
		name   string
		ignore string // "" for no .dockerignore
		files  []string
		want   []string // besides .dockerignore
	}{
		{
			name:  "no dockerignore",
			files: []string{"a.txt", "sub/b.log"},
			want:  []string{"a.txt", "sub/", "sub/b.log"},
		},
		{
			name:   "pattern is anchored at the root",
			ignore: "*.log\n",
			files:  []string{"a.log", "a.txt", "sub/b.log"},
			want:   []string{"a.txt", "sub/", "sub/b.log"},
		},
		{
			name:   "double star matches at any depth",
			ignore: "**/*.log\n",
			files:  []string{"a.log", "a.txt", "sub/b.log", "sub/deep/c.log", "sub/deep/c.txt"},
			want:   []string{"a.txt", "sub/", "sub/deep/", "sub/deep/c.txt"},
		},
		{
			name:   "exception brings a file back",
			ignore: "*.log\n!keep.log\n",
			files:  []string{"a.log", "keep.log", "a.txt"},
			want:   []string{"a.txt", "keep.log"},
		},
		{
			name:   "later pattern wins over an exception",
			ignore: "*.log\n!keep.log\nkeep.log\n",
			files:  []string{"keep.log", "a.txt"},
			want:   []string{"a.txt"},
		},
		{
			name:   "leading slash is the root only",
			ignore: "/root-only\n",
			files:  []string{"root-only", "sub/root-only"},
			want:   []string{"sub/", "sub/root-only"},
		},
		{
			name:   "excluded folder is skipped whole",
			ignore: "docs\n",
			files:  []string{"docs/a.md", "docs/deep/b.md", "a.txt"},
			want:   []string{"a.txt"},
		},
		{
			name:   "exception inside an excluded folder",
			ignore: "docs\n!docs/keep.md\n",
			files:  []string{"docs/a.md", "docs/keep.md", "docs/deep/b.md", "a.txt"},
			want:   []string{"a.txt", "docs/", "docs/keep.md"},
		},
		{
			name:   "exception deep inside an excluded folder",
			ignore: "docs/\n!docs/deep/keep.md\n",
			files:  []string{"docs/a.md", "docs/deep/keep.md", "docs/deep/b.md"},
			want:   []string{"docs/", "docs/deep/", "docs/deep/keep.md"},
		},
		{
			name:   "comments and empty lines",
			ignore: "# a comment\n#notes\n\n   \n\ttmp  \n",
			files:  []string{"#notes", "tmp/x", "a.txt"},
			want:   []string{"#notes", "a.txt"},
		},
		{
			name:   "dockerignore and Dockerfile listed are still sent",
			ignore: ".dockerignore\nDockerfile\n",
			files:  []string{"Dockerfile", "a.txt"},
			want:   []string{"a.txt"}, // the rendered Dockerfile replaces the image folder's
		},
		{
			name:   "question mark and character class",
			ignore: "file?.txt\n[ab].md\n",
			files:  []string{"file1.txt", "file10.txt", "a.md", "c.md"},
			want:   []string{"c.md", "file10.txt"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := t.TempDir()
			files := map[string]string{}
			for _, f := range tt.files {
				files[f] = "content of " + f
			}
			want := slices.Clone(tt.want)
			if tt.ignore != "" {
				files[".dockerignore"] = tt.ignore
				want = append(want, ".dockerignore")
			}
			writeTree(t, src, files)
			t.Setenv("TMPDIR", t.TempDir())

			dir, err := NewContext(t.Context(), src, "")
			if err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dir)
			slices.Sort(want)
			if got := listTree(t, dir); !slices.Equal(got, want) {
				t.Errorf("context holds\n%q\nwant\n%q", got, want)
			}
		})
	}
}

func TestNewContextKeepsModesAndLinks(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{"run.sh": "#!/bin/sh\n", "data/x": "x"})
	if err := os.Chmod(filepath.Join(src, "run.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("data/x", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", t.TempDir())
	dir, err := NewContext(t.Context(), src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(dir), ContextPrefix) || info.Mode().Perm() != 0o700 {
		t.Errorf("context %s has mode %v, want private and named %s*", dir, info.Mode().Perm(), ContextPrefix)
	}
	if info, err := os.Stat(filepath.Join(dir, "run.sh")); err != nil || info.Mode().Perm() != 0o755 {
		t.Errorf("run.sh: mode %v, %v; want 0755", info.Mode().Perm(), err)
	}
	if link, err := os.Readlink(filepath.Join(dir, "link")); err != nil || link != "data/x" {
		t.Errorf("link: %q, %v; want a symbolic link to data/x", link, err)
	}
}

func TestNewContextSymlinkedFolder(t *testing.T) {
	parent := t.TempDir()
	real := filepath.Join(parent, "real")
	writeTree(t, real, map[string]string{"a.txt": "a", "group/": ""})
	if err := os.Chmod(filepath.Join(real, "group"), 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(parent, "link")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", t.TempDir())
	dir, err := NewContext(t.Context(), filepath.Join(parent, "link"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if got, want := listTree(t, dir), []string{"a.txt", "group/"}; !slices.Equal(got, want) {
		t.Errorf("context holds %q, want %q", got, want)
	}
	if info, err := os.Stat(filepath.Join(dir, "group")); err != nil || info.Mode().Perm() != 0o775 {
		t.Errorf("group: mode %v, %v; want 0775 whatever the umask", info.Mode().Perm(), err)
	}
}

func TestNewContextBadDockerignore(t *testing.T) {
	src := t.TempDir()
	writeTree(t, src, map[string]string{".dockerignore": "[unclosed\n", "a": ""})
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, err := NewContext(t.Context(), src, "")
	if err == nil {
		t.Fatal("NewContext accepted a malformed pattern")
	}
	if !strings.Contains(err.Error(), filepath.Join(src, ".dockerignore")) {
		t.Errorf("error %q does not name the .dockerignore", err)
	}
	if left := listTree(t, tmp); len(left) != 0 {
		t.Errorf("left behind %q", left)
	}
}

// tarHeaders reads a tar stream's entries as "name mode [-> link]".
func tarHeaders(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		entry := hdr.Name + " " + fs.FileMode(hdr.Mode).Perm().String()
		if hdr.Linkname != "" {
			entry += " -> " + hdr.Linkname
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			entry += " not owned by root"
		}
		out = append(out, entry)
	}
}

func TestTarContext(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"b/z": "z", "b/a": "a", "a.sh": "#!/bin/sh\n", "Dockerfile": "FROM scratch\n"})
	if err := os.Chmod(filepath.Join(dir, "a.sh"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b/a", filepath.Join(dir, "c")); err != nil {
		t.Fatal(err)
	}
	var first bytes.Buffer
	s := tarContext(dir)
	if _, err := io.Copy(&first, s); err != nil {
		t.Fatal(err)
	}
	s.Close()

	want := []string{
		"Dockerfile -rw-r--r--",
		"a.sh -rwxr-x---",
		"b/ -rwxr-xr-x",
		"b/a -rw-r--r--",
		"b/z -rw-r--r--",
		"c -rwxrwxrwx -> b/a",
	}
	if got := tarHeaders(t, bytes.NewReader(first.Bytes())); !slices.Equal(got, want) {
		t.Errorf("tar holds\n%q\nwant\n%q", got, want)
	}
	var second bytes.Buffer
	s = tarContext(dir)
	io.Copy(&second, s)
	s.Close()
	if !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Error("two tars of the same folder differ")
	}
}

// TestTarContextCloseEarly checks that a reader that gives up (the daemon
// refused the build) does not leave the writer blocked.
func TestTarContextCloseEarly(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"big": strings.Repeat("x", 1<<20)})
	s := tarContext(dir)
	buf := make([]byte, 10)
	if _, err := s.Read(buf); err != nil {
		t.Fatal(err)
	}
	s.Close() // returns only once the writer has stopped
	select {
	case <-s.done:
	default:
		t.Error("Close returned with the writer still running")
	}
}

func TestExtractTar(t *testing.T) {
	tests := []struct {
		name    string
		entries []tar.Header
		want    []string
		wantErr bool
	}{
		{
			name: "files and folders",
			entries: []tar.Header{
				{Name: "build/", Typeflag: tar.TypeDir, Mode: 0o755},
				{Name: "build/bin/tool", Typeflag: tar.TypeReg, Mode: 0o755},
				{Name: "build/link", Typeflag: tar.TypeSymlink, Linkname: "bin/tool"},
			},
			want: []string{"build/", "build/bin/", "build/bin/tool", "build/link"},
		},
		{
			name:    "parent path",
			entries: []tar.Header{{Name: "../docker-pkg-escape", Typeflag: tar.TypeReg, Mode: 0o644}},
			wantErr: true,
		},
		{
			name: "write through a link that leaves the folder",
			entries: []tar.Header{
				{Name: "build/out", Typeflag: tar.TypeSymlink, Linkname: "../.."},
				{Name: "build/out/docker-pkg-escape", Typeflag: tar.TypeReg, Mode: 0o644},
			},
			wantErr: true,
		},
		{
			name: "write through an absolute link",
			entries: []tar.Header{
				{Name: "build/out", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
				{Name: "build/out/docker-pkg-escape", Typeflag: tar.TypeReg, Mode: 0o644},
			},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			for _, h := range tt.entries {
				if err := tw.WriteHeader(&h); err != nil {
					t.Fatal(err)
				}
			}
			tw.Close()
			parent := t.TempDir()
			dir := filepath.Join(parent, "ctx", "inner")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			err := extractTar(&buf, dir)
			if (err != nil) != tt.wantErr {
				t.Fatalf("extractTar: %v, want error %v", err, tt.wantErr)
			}
			if got := listTree(t, parent); slices.Contains(got, "docker-pkg-escape") || slices.Contains(got, "ctx/docker-pkg-escape") {
				t.Errorf("an entry escaped: %q", got)
			}
			if _, err := os.Lstat("/tmp/docker-pkg-escape"); err == nil {
				t.Error("an entry escaped to /tmp/docker-pkg-escape")
			}
			if !tt.wantErr {
				if got := listTree(t, dir); !slices.Equal(got, tt.want) {
					t.Errorf("extracted %q, want %q", got, tt.want)
				}
			}
		})
	}
}

// What an interrupted update leaves in a folder is neither copied into the
// build context nor counted as an input.
func TestContextSkipsUpdateLeftovers(t *testing.T) {
	privateTmp(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"changelog": "x", "run.sh": "echo"})
	before, err := InputsDigest(t.Context(), src, "", Inputs{Dockerfile: []byte("FROM scratch\n")})
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, src, map[string]string{".changelog.docker-pkg-123.tmp": "half", ".docker-pkg.journal": "{}", ".control.docker-pkg-9.tmp": "Depends: x\n"})
	after, err := InputsDigest(t.Context(), src, "", Inputs{Dockerfile: []byte("FROM scratch\n")})
	if err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Errorf("inputs digest changed with an update's leftovers: %s -> %s", before, after)
	}
	dir, err := NewContext(t.Context(), src, "")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if got, want := listTree(t, dir), []string{"changelog", "run.sh"}; !slices.Equal(got, want) {
		t.Errorf("context = %v, want %v", got, want)
	}
}
