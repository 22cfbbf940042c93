package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// lintRepo is a copy of the fixtures with one problem of every kind lint
// knows, and force_numeric_user set.
func lintRepo(t *testing.T) string {
	t.Helper()
	work := t.TempDir()
	if err := os.CopyFS(work, os.DirFS("../../fixtures")); err != nil {
		t.Fatal(err)
	}
	images := filepath.Join(work, "images")
	// The failing example lives apart from the tree that builds green.
	if err := os.CopyFS(filepath.Join(images, "legacy-app"), os.DirFS("../../fixtures/failing/legacy-app")); err != nil {
		t.Fatal(err)
	}
	edit := func(rel, old, new string) {
		t.Helper()
		path := filepath.Join(images, filepath.FromSlash(rel))
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), old) {
			t.Fatalf("%s lacks %q", rel, old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("app/plugins/app-plugin/control", "Depends: app\n", "")                   // uses app through image_tag
	if err := os.Remove(filepath.Join(images, "runtime", "control")); err != nil { // uses core
		t.Fatal(err)
	}
	edit("tools/control", "core (>= 1.0)", "core (>= 9.0)")
	edit("legacy-app/control", "Depends: runtime", "Depends: runtime, ghost")
	edit("legacy-app/Dockerfile.template", "CMD", "USER app\nCMD")
	edit("ci-runner/Dockerfile.template", "FROM", "# {{ no_such_variable }}\nFROM")
	if err := os.Symlink("/etc/shadow", filepath.Join(images, "app", "shadow")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(images, "core", ".changelog.docker-pkg-123.tmp"), []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(work, "config.yaml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, append(data, "force_numeric_user: true\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	return work
}

func TestLint(t *testing.T) {
	work := lintRepo(t)
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no-daemon.sock") // lint needs no daemon
	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "lint", "images")
	if code := exitCode(err); code != 1 {
		t.Fatalf("lint: exit status %d (%v), want 1\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	want := []string{
		`^images/app/plugins/app-plugin/Dockerfile.template:1: app-plugin uses image app \(image_tag\) but does not depend on it: add "app" to Depends in .*/app-plugin/control \[missing-depends\]$`,
		`^images/app/shadow: symbolic link to /etc/shadow, which is outside the repository .* \[link\]$`,
		`^images/ci-runner/Dockerfile.template:2: 'no_such_variable' is undefined \[render\]$`,
		`^images/core/.changelog.docker-pkg-123.tmp: a changelog's temporary file.* \[temp-file\]$`,
		`^images/legacy-app/Dockerfile.template: line 2: USER app: the last USER is not a numeric uid.* \[numeric-user\]$`,
		`^images/legacy-app/control:\d+: legacy-app depends on "ghost", which is neither an image under .* nor in base_images \[unknown-dependency\]$`,
		`^images/runtime/Dockerfile.template:1: runtime uses image core \(image_tag\) but does not depend on it: add "core" to Depends in .*/runtime/control \[missing-depends\]$`,
		`^images/tools/control:3: .*tools needs core \(>= 9.0\), but core is 1.2.0-1 .* \[constraint\]$`,
		`^images/wip: has Dockerfile.template but no changelog; skipped \[half-defined\]$`,
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != len(want) {
		t.Errorf("lint printed %d problems, want %d:\n%s", len(lines), len(want), stdout)
	}
	for i, w := range want {
		if i >= len(lines) || !regexp.MustCompile(w).MatchString(lines[i]) {
			t.Errorf("problem %d does not match %s:\n%s", i+1, w, stdout)
		}
	}

	// Other commands say how many, once, and not the list (a constraint
	// not met stops them: it is fixed first).
	path := filepath.Join(work, "images", "tools", "control")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), "(>= 9.0)", "(>= 1.0)", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, _ = runBuildCmd(t, work, "-c", "config.yaml", "plan", "images")
	if !strings.Contains(stderr, "warning: 4 problems; see docker-pkg lint images\n") || strings.Contains(stderr, "image_tag") {
		t.Errorf("plan's stderr:\n%s", stderr)
	}
}

func TestLintFix(t *testing.T) {
	clean, err := filepath.Abs("../../fixtures/images/core") // before any Chdir
	if err != nil {
		t.Fatal(err)
	}
	work := lintRepo(t)
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no-daemon.sock")
	images := filepath.Join(work, "images")
	before, err := os.ReadFile(filepath.Join(images, "app", "plugins", "app-plugin", "control"))
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "lint", "--fix", "images")
	if code := exitCode(err); code != 1 {
		t.Fatalf("lint --fix: exit status %d (%v), want 1: problems remain\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	for _, said := range []string{
		"fixed: images/runtime/control: added core to Depends\n",
		"fixed: images/app/plugins/app-plugin/control: added app to Depends\n",
	} {
		if !strings.Contains(stdout, said) {
			t.Errorf("stdout lacks %q:\n%s", said, stdout)
		}
	}
	if strings.Contains(stdout, "[missing-depends]") || !strings.Contains(stdout, "[constraint]") {
		t.Errorf("after --fix, lint still lists missing Depends, or no longer the rest:\n%s", stdout)
	}
	got, err := os.ReadFile(filepath.Join(images, "app", "plugins", "app-plugin", "control"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Replace(string(before), "Package: app-plugin\n", "Package: app-plugin\nDepends: app\n", 1); string(got) != want {
		t.Errorf("app-plugin's control\n%s\nwant\n%s", got, want)
	}
	got, err = os.ReadFile(filepath.Join(images, "runtime", "control"))
	if err != nil || string(got) != "Source: runtime\n\nPackage: runtime\nDepends: core\n" {
		t.Errorf("runtime's new control: %q, %v", got, err)
	}
	// A clean tree: nothing to say, status 0.
	stdout, _, err = runBuildCmd(t, t.TempDir(), "-c", filepath.Join(work, "config.yaml"), "lint", clean)
	if err != nil || stdout != "No problem found.\n" {
		t.Errorf("lint of a clean tree: %v\n%s", err, stdout)
	}
}
