package image

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// daemonImage is an image definition for dir named after the test, whose
// build (the image and any untagged layer its log names) is removed when
// the test ends.
func daemonImage(t *testing.T, cli *client.Client, dir string, log *bytes.Buffer) *Image {
	t.Helper()
	name := strings.ToLower(regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-"))
	img := &Image{Name: name, Version: "1.0-1", Dir: dir, Repo: "docker-pkg-test/" + name, Tag: "1.0-1"}
	t.Cleanup(func() {
		ctx := context.Background()
		cli.ImageRemove(ctx, img.Label(), client.ImageRemoveOptions{Force: true, PruneChildren: true})
		// Failed and multi-stage builds leave untagged layers behind, as
		// docker build does; the base images are tagged and stay.
		for _, m := range regexp.MustCompile(`(?m)^ ---> ([0-9a-f]{12})$`).FindAllStringSubmatch(log.String(), -1) {
			if res, err := cli.ImageInspect(ctx, m[1]); err == nil && len(res.RepoTags) == 0 {
				cli.ImageRemove(ctx, m[1], client.ImageRemoveOptions{PruneChildren: true})
			}
		}
	})
	return img
}

// filesIn lists what ref holds under dir, as "path mode", without running
// anything in it.
func filesIn(t *testing.T, cli *client.Client, ref, dir string) []string {
	t.Helper()
	ctx := t.Context()
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Image: ref, Config: &container.Config{Cmd: []string{"true"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	res, err := cli.CopyFromContainer(ctx, created.ID, client.CopyFromContainerOptions{SourcePath: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Content.Close()
	var out []string
	tr := tar.NewReader(res.Content)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %v", hdr.Name, hdr.FileInfo().Mode().Perm()))
	}
	slices.Sort(out)
	return out
}

// runIn runs cmd in a container of ref and returns its output.
func runIn(t *testing.T, cli *client.Client, ref string, cmd ...string) string {
	t.Helper()
	ctx := t.Context()
	// A terminal gives the output as written, not multiplexed.
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{Image: ref, Config: &container.Config{Cmd: cmd, Tty: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	if _, err := cli.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	wait := cli.ContainerWait(ctx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var status int64
	select {
	case res := <-wait.Result:
		status = res.StatusCode
	case err := <-wait.Error:
		t.Fatal(err)
	}
	logs, err := cli.ContainerLogs(ctx, created.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	out, _ := io.ReadAll(logs)
	if status != 0 {
		t.Fatalf("%q in %s exited %d: %s", cmd, ref, status, out)
	}
	return strings.ReplaceAll(string(out), "\r\n", "\n")
}

func TestBuildDaemonDockerignore(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	tmp := privateTmp(t)
	var log bytes.Buffer
	dir, err := filepath.Abs("testdata/build-context")
	if err != nil {
		t.Fatal(err)
	}
	img := daemonImage(t, cli, dir, &log)

	id, err := build(t.Context(), cli, img, BuildRequest{
		Dockerfile: []byte("FROM " + base + "\nCOPY . /ctx/\n"),
		NoCache:    true,
		Labels:     map[string]string{"org.example.test": t.Name()},
		Log:        &log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	inspect, err := cli.ImageInspect(t.Context(), img.Label())
	if err != nil {
		t.Fatal(err)
	}
	if inspect.ID != id {
		t.Errorf("Build returned %s, %s is %s", id, img.Label(), inspect.ID)
	}
	if got := inspect.Config.Labels["org.example.test"]; got != t.Name() {
		t.Errorf("label %q, want %q", got, t.Name())
	}
	want := []string{
		"ctx/ -rwxr-xr-x",
		"ctx/docs/ -rwxr-xr-x",
		"ctx/docs/keep.md -rw-r--r--",
		"ctx/logs/ -rwxr-xr-x",
		"ctx/logs/keep.log -rw-r--r--",
		"ctx/run.sh -rwxr-xr-x",
		"ctx/sub/ -rwxr-xr-x",
		"ctx/sub/secret.txt -rw-r--r--",
	}
	if got := filesIn(t, cli, img.Label(), "/ctx"); !slices.Equal(got, want) {
		t.Errorf("image holds\n%q\nwant\n%q", got, want)
	}
	if !strings.Contains(log.String(), ": COPY . /ctx/\n") {
		t.Errorf("log lacks the build steps:\n%s", log.String())
	}
	if left := listTree(t, tmp); len(left) != 0 {
		t.Errorf("build left %q in the temporary folder", left)
	}
}

// spyEngine is the real daemon, noting the containers and images Build
// makes.
type spyEngine struct {
	*client.Client
	mu         sync.Mutex
	containers []string
	tags       []string
}

func (s *spyEngine) ImageBuild(ctx context.Context, r io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
	s.mu.Lock()
	s.tags = append(s.tags, opts.Tags...)
	s.mu.Unlock()
	return s.Client.ImageBuild(ctx, r, opts)
}

func (s *spyEngine) ContainerCreate(ctx context.Context, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	res, err := s.Client.ContainerCreate(ctx, opts)
	s.mu.Lock()
	s.containers = append(s.containers, res.ID)
	s.mu.Unlock()
	return res, err
}

// checkBuildStageGone fails the test if a build-stage image or container
// that spy saw is still in the daemon.
func checkBuildStageGone(t *testing.T, spy *spyEngine) {
	t.Helper()
	for _, tag := range spy.tags {
		if !strings.Contains(tag, "-build:") {
			continue
		}
		if _, err := spy.ImageInspect(t.Context(), tag); !cerrdefs.IsNotFound(err) {
			t.Errorf("build-stage image %s still there (%v)", tag, err)
			spy.ImageRemove(context.Background(), tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		}
	}
	for _, id := range spy.containers {
		if _, err := spy.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{}); !cerrdefs.IsNotFound(err) {
			t.Errorf("build-stage container %s still there (%v)", id, err)
		}
	}
}

func TestBuildDaemonBuildStage(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	tmp := privateTmp(t)
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"src/hello.txt": "hello from the source\n"})
	var log bytes.Buffer
	img := daemonImage(t, cli, dir, &log)
	spy := &spyEngine{Client: cli}

	_, err := build(t.Context(), spy, img, BuildRequest{
		BuildDockerfile: []byte("FROM " + base + "\nCOPY src /src\n" +
			"RUN mkdir -p /build/bin && tr a-z A-Z < /src/hello.txt > /build/bin/artifact && chmod 750 /build/bin/artifact\n"),
		Dockerfile: []byte("FROM " + base + "\nCOPY build/ /opt/\n"),
		NoCache:    true,
		Log:        &log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if got := runIn(t, cli, img.Label(), "cat", "/opt/bin/artifact"); got != "HELLO FROM THE SOURCE\n" {
		t.Errorf("artifact holds %q, want the build stage's output", got)
	}
	if got, want := filesIn(t, cli, img.Label(), "/opt/bin/artifact"), []string{"artifact -rwxr-x---"}; !slices.Equal(got, want) {
		t.Errorf("artifact is %q, want %q", got, want)
	}
	if !slices.Contains(spy.tags, img.Repo+"-build:"+img.Tag) || len(spy.containers) != 1 {
		t.Fatalf("built %q and made containers %q: no build stage ran", spy.tags, spy.containers)
	}
	checkBuildStageGone(t, spy)
	if left := listTree(t, tmp); len(left) != 0 {
		t.Errorf("build left %q in the temporary folder", left)
	}
}

func TestBuildDaemonBuildStageFails(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	privateTmp(t)
	var log bytes.Buffer
	img := daemonImage(t, cli, t.TempDir(), &log)
	spy := &spyEngine{Client: cli}

	_, err := build(t.Context(), spy, img, BuildRequest{
		// The build image is made, but has no /build to give.
		BuildDockerfile: []byte("FROM " + base + "\nRUN mkdir /nothing-here\n"),
		Dockerfile:      []byte("FROM " + base + "\n"),
		NoCache:         true,
		Log:             &log,
	})
	var be *BuildError
	if !errors.As(err, &be) || be.Stage != StageBuildStage {
		t.Fatalf("error %v, want a *BuildError at stage build-stage", err)
	}
	if len(spy.containers) != 1 {
		t.Fatalf("made containers %q, want the build stage's", spy.containers)
	}
	checkBuildStageGone(t, spy)
	if _, err := cli.ImageInspect(t.Context(), img.Label()); !cerrdefs.IsNotFound(err) {
		t.Errorf("the main image was built after its build stage failed (%v)", err)
	}
}

func TestBuildDaemonMultiStage(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	privateTmp(t)
	var log bytes.Buffer
	img := daemonImage(t, cli, t.TempDir(), &log)
	_, err := build(t.Context(), cli, img, BuildRequest{
		Dockerfile: []byte("FROM " + base + " AS compile\nRUN echo compiled > /out\n" +
			"FROM " + base + "\nCOPY --from=compile /out /out\n"),
		NoCache: true,
		Log:     &log,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if got := runIn(t, cli, img.Label(), "cat", "/out"); got != "compiled\n" {
		t.Errorf("/out holds %q, want the first stage's output", got)
	}
}

func TestBuildDaemonFailingRun(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	tmp := privateTmp(t)
	var log bytes.Buffer
	img := daemonImage(t, cli, t.TempDir(), &log)
	_, err := build(t.Context(), cli, img, BuildRequest{
		Dockerfile: []byte("FROM " + base + "\nRUN for i in $(seq 1 40); do echo output line $i; done; exit 3\n"),
		NoCache:    true,
		Log:        &log,
	})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("error %v, want a *BuildError", err)
	}
	if be.Stage != StageBuild || be.Image != img.Label() {
		t.Errorf("error for %s at %s, want %s at build", be.Image, be.Stage, img.Label())
	}
	if len(be.Tail) != tailLines {
		t.Errorf("tail has %d lines, want %d:\n%s", len(be.Tail), tailLines, strings.Join(be.Tail, "\n"))
	}
	if !slices.Contains(be.Tail, "output line 40") || slices.Contains(be.Tail, "output line 1") {
		t.Errorf("tail is not the end of the log:\n%s", strings.Join(be.Tail, "\n"))
	}
	if last := be.Tail[len(be.Tail)-1]; !strings.Contains(last, "returned a non-zero code: 3") {
		t.Errorf("tail ends with %q, want the daemon's error", last)
	}
	if !strings.Contains(log.String(), "output line 1\n") {
		t.Error("the log lost the start of the output")
	}
	if left := listTree(t, tmp); len(left) != 0 {
		t.Errorf("build left %q in the temporary folder", left)
	}
}

// cancelAt is a log that cancels the build once marker shows up in it.
type cancelAt struct {
	bytes.Buffer
	marker string
	cancel context.CancelFunc
}

func (c *cancelAt) Write(p []byte) (int, error) {
	n, err := c.Buffer.Write(p)
	if strings.Contains(c.String(), c.marker+"\n") {
		c.cancel()
	}
	return n, err
}

func TestBuildDaemonCancel(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	tmp := privateTmp(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	marker := fmt.Sprintf("sleeping-%d", os.Getpid())
	log := &cancelAt{marker: marker, cancel: cancel}
	img := daemonImage(t, cli, t.TempDir(), &log.Buffer)

	_, err := build(ctx, cli, img, BuildRequest{
		Dockerfile: []byte("FROM " + base + "\nRUN echo " + marker + " && sleep 30\n"),
		NoCache:    true,
		Log:        log,
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled\n%s", err, log.String())
	}
	if left := listTree(t, tmp); len(left) != 0 {
		t.Errorf("build left %q in the temporary folder", left)
	}
	list, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Items {
		if strings.Contains(c.Command, marker) {
			t.Errorf("build container %s (%s) outlived the build", c.ID[:12], c.Command)
			cli.ContainerRemove(context.Background(), c.ID, client.ContainerRemoveOptions{Force: true})
		}
	}
}

// TestBuildDaemonAptInstall builds, on a real Debian, the exact text the
// apt_install helper renders, and runs what it installed.
func TestBuildDaemonAptInstall(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Debian(t, cli)
	privateTmp(t)
	var log bytes.Buffer
	img := daemonImage(t, cli, t.TempDir(), &log)
	dockerfile := "FROM " + base + "\n" +
		"RUN apt-get update  \\\n" +
		"    && DEBIAN_FRONTEND=noninteractive \\\n" +
		"    apt-get install  --yes hello --no-install-recommends \\\n" +
		"    && apt-get clean && rm -rf /var/lib/apt/lists/* \n"
	_, err := build(t.Context(), cli, img, BuildRequest{Dockerfile: []byte(dockerfile), NoCache: true, Log: &log})
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	if got := runIn(t, cli, img.Label(), "hello"); got != "Hello, world!\n" {
		t.Errorf("hello printed %q", got)
	}
	if got := runIn(t, cli, img.Label(), "sh", "-c", "ls /var/lib/apt/lists | wc -l"); strings.TrimSpace(got) != "0" {
		t.Errorf("apt lists left in the image: %s entries", got)
	}
}
