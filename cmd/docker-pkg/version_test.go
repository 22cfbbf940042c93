package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDescribe(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var out []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			out = append(out, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name string
		info debug.BuildInfo
		want string
	}{
		{
			name: "go install of a tag",
			info: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}},
			want: "v1.4.0 go1.26.8",
		},
		{
			name: "go build in a clone",
			info: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261129035458-a8598e98957d"},
				Settings: vcs("vcs", "git", "vcs.revision", "a8598e98957df915c1e24f24b10e321f9ebd8619", "vcs.time", "2026-11-29T03:54:58Z", "vcs.modified", "false")},
			want: "v0.0.0-20261129035458-a8598e98957d (revision a8598e98957df915c1e24f24b10e321f9ebd8619, 2026-11-29T03:54:58Z) go1.26.8",
		},
		{
			name: "uncommitted changes",
			info: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261129035458-a8598e98957d+dirty"},
				Settings: vcs("vcs.revision", "a8598e98957df915c1e24f24b10e321f9ebd8619", "vcs.modified", "true")},
			want: "v0.0.0-20261129035458-a8598e98957d+dirty (revision a8598e98957df915c1e24f24b10e321f9ebd8619, modified) go1.26.8",
		},
		{
			name: "go run",
			info: debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}},
			want: "(devel) go1.26.8",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(&tt.info); got != tt.want {
				t.Errorf("describe = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestVersionFromGit builds docker-pkg from a git repository holding this
// module's sources, then runs version and --version: both name the commit,
// and say "modified" once a file changes.
func TestVersionFromGit(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	repo := t.TempDir()
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "fixtures" {
				return filepath.SkipDir
			}
			return nil
		}
		// The sources, and what they embed (the report page).
		if rel != "go.mod" && rel != "go.sum" && !strings.HasSuffix(rel, ".go") && !strings.HasSuffix(rel, ".tmpl") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(repo, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(repo, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=T", "-c", "user.email=t@example.org"}, args...)...)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", ".")
	git("commit", "-q", "-m", "sources")
	rev := git("rev-parse", "HEAD")

	bin := filepath.Join(t.TempDir(), "docker-pkg")
	build := func() {
		t.Helper()
		// GOFLAGS may say -buildvcs=false (the user's go env): override it.
		cmd := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/docker-pkg")
		cmd.Dir, cmd.Env = repo, append(os.Environ(), "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("docker-pkg %v: %v", args, err)
		}
		return string(out)
	}
	build()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		got := run(args...)
		if !strings.HasPrefix(got, "docker-pkg v0.0.0-") || !strings.Contains(got, " (revision "+rev+", ") ||
			strings.Contains(got, "modified") || !strings.HasSuffix(got, ") "+runtimeVersion(t)+"\n") {
			t.Errorf("docker-pkg %v printed %q, want the pseudo-version, revision %s, not modified", args, got, rev)
		}
	}
	if err := os.WriteFile(filepath.Join(repo, "cmd", "docker-pkg", "extra.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build()
	if got := run("version"); !strings.Contains(got, " (revision "+rev+", ") || !strings.Contains(got, ", modified) ") {
		t.Errorf("with a file added, version printed %q, want revision %s, modified", got, rev)
	}
}

func runtimeVersion(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}
