package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/docker-pkg/docker-pkg/report"
)

// build --report writes every image of the tree, with what this run did to
// it, as JSON or as one HTML page.
func TestBuildReport(t *testing.T) {
	cli := testenv.Docker(t)
	ns := testRepo(t, cli, "")
	work := t.TempDir()
	images := filepath.Join(work, "images")
	writeImage(t, images, "base", "FROM {{ \"busybox\" | image_tag }}\nRUN echo base > /base\n", "")
	writeImage(t, images, "bad", "FROM {{ \"base\" | image_tag }}\n", "echo 'the test says no' >&2; exit 3")
	writeImage(t, images, "after", "FROM {{ \"bad\" | image_tag }}\n", "")
	for name, parent := range map[string]string{"bad": "base", "after": "bad"} {
		if err := os.WriteFile(filepath.Join(images, name, "control"), []byte("Source: "+name+"\nDepends: "+parent+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeYAML(t, filepath.Join(work, "config.yaml"), map[string]any{"namespace": ns, "base_images": []string{ns + "/busybox:static"}})

	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "build", "--jobs", "2", "--report", "run.json", "images")
	if code := exitCode(err); code != 1 {
		t.Fatalf("build: exit status %d (%v), want 1\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	if !strings.Contains(stdout, "The report is at run.json\n") {
		t.Errorf("stdout does not say where the report is:\n%s", stdout)
	}
	f, err := os.Open(filepath.Join(work, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run, err := report.ReadJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]report.Image{}
	for _, img := range run.Images {
		got[img.Name] = img
	}
	if len(run.Lanes) != 2 || len(got) != 3 {
		t.Fatalf("report: lanes %v, images %v; want 2 lanes and the 3 images", run.Lanes, run.Images)
	}
	base, bad, after := got["base"], got["bad"], got["after"]
	if base.Result != report.ResultVerified || base.Lane == "" || base.Start.IsZero() || !strings.HasPrefix(base.Digest, "sha256:") || base.Size == 0 {
		t.Errorf("base = %+v, want verified with its lane, times, digest and size", base)
	}
	if bad.Result != report.ResultFailed || bad.Stage != "verify" || !strings.Contains(strings.Join(bad.LogTail, "\n"), "the test says no") {
		t.Errorf("bad = %+v, want failed at verify with its log tail", bad)
	}
	if after.Result != report.ResultSkipped || after.Reason != "parent bad failed" || len(after.Parents) != 1 || after.Parents[0] != "bad" {
		t.Errorf("after = %+v, want skipped because bad failed", after)
	}

	// Nothing left to build: the same images, up to date, as a page.
	stdout, stderr, err = runBuildCmd(t, work, "-c", "config.yaml", "build", "--select", "*/base:*", "--report", "again.html", "images")
	if err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	page, err := os.ReadFile(filepath.Join(work, "again.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<!DOCTYPE html>", ns + "/base:1.0-1", "up-to-date"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

func TestBuildReportPath(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no-daemon.sock") // an error about it would mean work started
	_, _, err := runBuildCmd(t, t.TempDir(), "-c", mustAbs(t, "../../fixtures/config.yaml"), "build", "--report", "run.txt", mustAbs(t, "../../fixtures/images"))
	if err == nil || !strings.Contains(err.Error(), "--report run.txt: want a file ending in .html or .json") {
		t.Errorf("err = %v", err)
	}
}
