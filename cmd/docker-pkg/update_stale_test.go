package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
)

func TestUpdateStaleArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"name and stale", []string{"update", "--stale", "core", "../../fixtures/images"}, "with --stale, give only DIR (got 2 arguments)"},
		{"stale and select", []string{"update", "--stale", "--select", "*", "../../fixtures/images"}, "it cannot be used with --select or --version"},
		{"stale and reason", []string{"update", "--stale", "--reason", "x", "../../fixtures/images"}, "it cannot be used with --reason"},
		// run gives no daemon, and the fixtures no registry.
		{"nowhere to read records", []string{"update", "--stale", "../../fixtures/images"}, "reads build records from the Docker daemon or the registry, and there is neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// TestStaleDigests makes child stale, built on a base rebuilt since, and
// reads what each command says of it: short digests for people, whole
// ones in plan --json and in the changelog entry update --stale writes.
func TestStaleDigests(t *testing.T) {
	cli := testenv.Docker(t)
	ns := testRepo(t, cli, "")
	work := t.TempDir()
	t.Setenv("DEBFULLNAME", "Jane Doe")
	t.Setenv("DEBEMAIL", "jane@example.org")
	writeYAML(t, filepath.Join(work, "config.yaml"), map[string]any{"namespace": ns, "base_images": []string{ns + "/busybox:static"}})
	images := filepath.Join(work, "images")
	writeImage(t, images, "base", "FROM {{ \"busybox\" | image_tag }}\nRUN date > /built\n", "")
	writeImage(t, images, "child", "FROM {{ \"base\" | image_tag }}\n", "")
	if err := os.WriteFile(filepath.Join(images, "child", "control"), []byte("Source: child\nDepends: base\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := func(args ...string) (string, string) {
		t.Helper()
		stdout, stderr, err := runBuildCmd(t, work, append([]string{"-c", "config.yaml"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout, stderr)
		}
		return stdout, stderr
	}
	cmd("build", "images")
	old, err := cli.ImageInspect(t.Context(), ns+"/base:1.0-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageRemove(t.Context(), ns+"/base:1.0-1", client.ImageRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	cmd("build", "--select", "*/base:*", "images")
	now, err := cli.ImageInspect(t.Context(), ns+"/base:1.0-1")
	if err != nil {
		t.Fatal(err)
	}
	if now.ID == old.ID {
		t.Fatalf("base rebuilt as the same image %s: child is not stale, this test proves nothing", now.ID)
	}
	short := func(id string) string { return id[:len("sha256:")+12] }
	whole := "stale: parent base is now " + now.ID + ", built on " + old.ID
	brief := "stale: parent base is now " + short(now.ID) + ", built on " + short(old.ID)
	long := regexp.MustCompile(`sha256:[0-9a-f]{64}`)

	planned, _ := cmd("plan", "images")
	mustContain(t, "plan", planned, brief+"\n")
	_, warned := cmd("build", "images")
	mustContain(t, "build's stderr", warned, "is "+brief+"; it will not be rebuilt")
	for where, text := range map[string]string{"plan": planned, "build's stderr": warned} {
		if long.MatchString(text) {
			t.Errorf("%s shows a whole digest:\n%s", where, text)
		}
	}
	// The entry, as it will be written, keeps them whole.
	updated, _ := cmd("update", "--stale", "--dry-run", "images")
	mustContain(t, "update --stale", updated, "* child 1.0-1 -> 1.0-1-s1 ("+brief+")\n",
		"Rebuild on updated parent image base ("+old.ID+" -> "+now.ID+")")

	stdout, _ := cmd("plan", "--json", "images")
	var plan planJSON
	if err := json.Unmarshal([]byte(stdout), &plan); err != nil {
		t.Fatal(err)
	}
	for _, img := range plan.Images {
		if img.Name == "child" && img.Reason != whole {
			t.Errorf("plan --json: child's reason is %q, want %q", img.Reason, whole)
		}
	}
}
