package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

func TestPruneWithoutDaemon(t *testing.T) {
	stdout, _, err := run(t, "prune", "../../fixtures/images")
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.HasPrefix(ee.msg, "prune needs a Docker daemon: ") || strings.Contains(ee.msg, "\n") {
		t.Fatalf("error = %#v, want exit status 2 and one line", err)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing", stdout)
	}
}

func TestPruneExitStatus(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	ns := fmt.Sprintf("docker-pkg-test/prune-cli-%d-%d", os.Getpid(), time.Now().UnixNano())
	root := t.TempDir()
	files := map[string]string{
		"config.yaml":                  "namespace: " + ns + "\n",
		"images/x/changelog":           "x (1.2) wikimedia; urgency=high\n\n  * x\n\n -- A <a@b>  Mon, 05 Jan 2026 10:00:00 +0100\n",
		"images/x/Dockerfile.template": "FROM scratch\n",
	}
	for name, content := range files {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	x := ns + "/x"
	for _, tag := range []string{"1.0", "1.1"} {
		ref := x + ":" + tag
		if _, err := cli.ImageTag(t.Context(), client.ImageTagOptions{Source: base, Target: ref}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true}) })
	}
	// x:1.1 is the only tag of its own image, which a container uses.
	ctr, err := cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{
		Config: &container.Config{Image: base, Cmd: []string{"true"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), ctr.ID, client.ContainerRemoveOptions{Force: true}) })
	commit, err := cli.ContainerCommit(t.Context(), ctr.ID, client.ContainerCommitOptions{Reference: x + ":1.1"})
	if err != nil {
		t.Fatal(err)
	}
	user, err := cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{
		Config: &container.Config{Image: commit.ID, Cmd: []string{"true"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.ContainerRemove(context.Background(), user.ID, client.ContainerRemoveOptions{Force: true}) })

	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the label cache: never the user's
	var stdout, stderr bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&stdout)
	cmd.SetErr(&stderr)
	cmd.SetArgs([]string{"-c", filepath.Join(root, "config.yaml"), "prune", filepath.Join(root, "images")})
	err = cmd.Execute()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 1 || ee.msg != "errors pruning 1 of 1 images" {
		t.Fatalf("error = %#v, want exit status 1", err)
	}
	want := "* Pruning old versions of " + x + ":1.2\n* Errors pruning old images for " + x + ":1.2\n"
	if stdout.String() != want {
		t.Errorf("stdout = %q, want %q", stdout.String(), want)
	}
	if !strings.Contains(stderr.String(), "image in use by container") || !strings.Contains(stderr.String(), user.ID[:12]) {
		t.Errorf("stderr does not name the container %.12s:\n%s", user.ID, stderr.String())
	}
	_, err = cli.ImageInspect(t.Context(), x+":1.0")
	if !cerrdefs.IsNotFound(err) {
		t.Errorf("%s:1.0 not removed: %v", x, err)
	}
	if _, err := cli.ImageInspect(t.Context(), x+":1.1"); err != nil {
		t.Errorf("%s:1.1, in use, was removed: %v", x, err)
	}
}
