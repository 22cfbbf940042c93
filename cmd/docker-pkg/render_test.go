package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRenderFixtures(t *testing.T) {
	stdout, _, err := run(t, "render", "--select", "*/app:*", "../../fixtures/images")
	if err != nil {
		t.Fatal(err)
	}
	want := "# docker-pkg-fixtures/app:1.0-3\nFROM docker-pkg-fixtures/runtime:2.3.1-2-s1\n"
	if !strings.HasPrefix(stdout, want) {
		t.Errorf("stdout starts %q, want %q", stdout, want)
	}
	if strings.Count(stdout, "\n# docker-pkg-fixtures/") != 0 {
		t.Errorf("--select rendered more than app:\n%s", stdout)
	}
}

// renderTree writes a tree of three images, one with a template error and
// one whose USER is not numeric, and returns its config and folder.
func renderTree(t *testing.T, forceNumeric bool) (configPath, dir string) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "images")
	writeImage(t, dir, "good", "FROM {{ \"base\" | image_tag }}\nUSER {{ \"nobody\" | uid }}\n", "")
	writeImage(t, dir, "bad", "FROM x\nRUN {{ undefined_thing }}\n", "")
	writeImage(t, filepath.Join(dir, "nested"), "named", "FROM x\nUSER www-data\n", "")
	configPath = filepath.Join(root, "config.yaml")
	writeYAML(t, configPath, map[string]any{
		"namespace":          "ns",
		"base_images":        []string{"ns/base:1"},
		"force_numeric_user": forceNumeric,
	})
	return configPath, dir
}

func TestRenderOutDir(t *testing.T) {
	configPath, dir := renderTree(t, true)
	out := t.TempDir()
	// A file left by an earlier run that now contradicts the result.
	if err := os.MkdirAll(filepath.Join(out, "bad"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "bad", "Dockerfile"), []byte("stale"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the label cache: never the user's
	root := newRootCmd()
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"-c", configPath, "render", "-o", out, dir})
	err := root.Execute()
	if exitCode(err) != 1 {
		t.Fatalf("exit %d (%v), want 1", exitCode(err), err)
	}
	read := func(rel string) string {
		data, err := os.ReadFile(filepath.Join(out, rel))
		if err != nil {
			return "<missing>"
		}
		return string(data)
	}
	if got := read("good/Dockerfile"); got != "FROM ns/base:1\nUSER 65534" {
		t.Errorf("good/Dockerfile = %q", got)
	}
	if got := read("bad/ERROR"); !strings.Contains(got, "undefined_thing") || !strings.Contains(got, "Dockerfile.template") {
		t.Errorf("bad/ERROR = %q, want the variable and the template named", got)
	}
	if got := read("bad/Dockerfile"); got != "<missing>" {
		t.Errorf("bad/Dockerfile from an earlier run kept: %q", got)
	}
	if got := read("nested/named/ERROR"); !strings.Contains(got, "USER www-data") {
		t.Errorf("nested/named/ERROR = %q, want the non-numeric USER line", got)
	}
	if !strings.Contains(err.Error(), "2 images failed to render") {
		t.Errorf("err = %v", err)
	}
}

func TestRenderWithoutNumericCheck(t *testing.T) {
	configPath, dir := renderTree(t, false)
	var stdout, stderr bytes.Buffer
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the label cache: never the user's
	root := newRootCmd()
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs([]string{"-c", configPath, "render", dir})
	err := root.Execute()
	if exitCode(err) != 1 {
		t.Fatalf("exit %d (%v), want 1 for the bad template", exitCode(err), err)
	}
	for _, want := range []string{"# ns/good:1.0-1\nFROM ns/base:1\nUSER 65534\n", "# ns/named:1.0-1\nFROM x\nUSER www-data\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "ns/bad:1.0-1:") {
		t.Errorf("stderr does not name the failed image:\n%s", stderr.String())
	}
}
