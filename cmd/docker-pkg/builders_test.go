package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// fixtureImages are the images of fixtures/images, in build order, with
// the tags their changelogs give.
var fixtureImages = []struct{ name, tag string }{
	{"core", "1.2.0-1"},
	{"build-tools", "0.9.0-1"},
	{"runtime", "2.3.1-2-s1"},
	{"tools", "4.2.0-1"},
	{"app", "1.0-3"},
	{"ci-runner", "3.1.4-1"},
	{"app-plugin", "0.1.0-1"},
}

// builderLogLine is a line of the log file that only the builder it names
// writes: it proves the build went through that builder.
var builderLogLine = map[string]*regexp.Regexp{
	"classic":  regexp.MustCompile(`(?m)^\S+ \[core\] Step 1/\d+ : FROM `),
	"buildkit": regexp.MustCompile(`(?m)^\S+ \[core\] #\d+ \[\d+/\d+\] RUN \["/bin/busybox", "--install"`),
}

// TestBuildersFixtures builds the fixtures tree with each builder, in a
// namespace of its own (testRepo's, on its busybox), checks both end the
// same way, and compares what each image holds.
func TestBuildersFixtures(t *testing.T) {
	cli := testenv.Docker(t)
	namespaces := map[string]string{}
	for _, b := range []string{"classic", "buildkit"} {
		ns := testRepo(t, cli, "")
		namespaces[b] = ns
		if !t.Run(b, func(t *testing.T) { buildFixtures(t, cli, ns, b) }) {
			t.FailNow()
		}
	}
	for _, img := range fixtureImages {
		t.Run("same "+img.name, func(t *testing.T) {
			classic := imageContents(t, cli, namespaces["classic"], img.name+":"+img.tag)
			kit := imageContents(t, cli, namespaces["buildkit"], img.name+":"+img.tag)
			if len(classic) < 3 {
				t.Fatalf("the classic image holds only %q: nothing to compare", classic)
			}
			paths := maps.Clone(classic)
			maps.Copy(paths, kit)
			for _, path := range slices.Sorted(maps.Keys(paths)) {
				if classic[path] != kit[path] {
					t.Errorf("%s:\n  classic  %q\n  buildkit %q", path, classic[path], kit[path])
				}
			}
		})
	}
}

// buildFixtures builds a copy of the fixtures tree in namespace ns with
// builder b, through the build command, as the README's first command
// does: every image is built and verified, and the build ends green.
func buildFixtures(t *testing.T, cli *client.Client, ns, b string) {
	t.Helper()
	work := fixturesCopy(t, ns)

	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "build", "--builder", b, "--jobs", "2", "images")
	if err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	var labels []string
	for _, img := range fixtureImages {
		label := ns + "/" + img.name + ":" + img.tag
		labels = append(labels, label)
		row := `(?m)^` + regexp.QuoteMeta(label) + ` +verified +[0-9.ms]+ +[0-9.]+[kM]B$`
		if !regexp.MustCompile(row).MatchString(stdout) {
			t.Errorf("summary lacks %s", row)
		}
	}
	if t.Failed() {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	log, err := os.ReadFile(filepath.Join(work, logFile))
	if err != nil {
		t.Fatal(err)
	}
	if !builderLogLine[b].Match(log) {
		t.Errorf("the log has no line matching %s: the build did not go through %s\n%s", builderLogLine[b], b, log)
	}

	stage := ns + "/build-tools-build:0.9.0-1"
	if copied := "[build-tools] Copied /build of " + stage + " into the build context"; !strings.Contains(string(log), copied) {
		t.Errorf("the log lacks %q: no build stage ran", copied)
	}
	if _, err := cli.ImageInspect(t.Context(), stage); !cerrdefs.IsNotFound(err) {
		t.Errorf("build-stage image %s: inspect gave %v, want not found", stage, err)
	}
	if left := buildContainers(t, cli, ns, labels); len(left) > 0 {
		t.Errorf("containers left behind:\n%s", strings.Join(left, "\n"))
	}
}

// buildContainers lists the containers, stopped ones included, made from
// an image of namespace ns or from a layer the images labels were built
// on, the base image's layers aside: what a build or a test left behind.
func buildContainers(t *testing.T, cli *client.Client, ns string, labels []string) []string {
	t.Helper()
	layers := func(ref string) []string {
		h, err := cli.ImageHistory(t.Context(), ref)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, item := range h.Items {
			if strings.HasPrefix(item.ID, "sha256:") {
				ids = append(ids, item.ID)
			}
		}
		return ids
	}
	ours := map[string]bool{}
	for _, ref := range labels {
		for _, id := range layers(ref) {
			ours[id] = true
		}
	}
	for _, id := range layers(ns + "/busybox:static") {
		delete(ours, id)
	}
	list, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, c := range list.Items {
		if strings.HasPrefix(c.Image, ns+"/") || ours[c.ImageID] {
			left = append(left, fmt.Sprintf("%s %s (%s) %s", c.ID[:12], c.Image, c.State, c.Command))
		}
	}
	return left
}

// imageContents describes every file of image ns/ref by path: type, mode,
// owner, and the hash of its content (or a link's target), the namespace
// written {ns} in both so images of two namespaces compare. Times are left
// out: they differ from build to build. The image's configuration is in
// it too, as path "config".
func imageContents(t *testing.T, cli *client.Client, ns, ref string) map[string]string {
	t.Helper()
	ctx := t.Context()
	neutral := func(s string) string { return strings.ReplaceAll(s, ns, "{ns}") }
	inspect, err := cli.ImageInspect(ctx, ns+"/"+ref)
	if err != nil {
		t.Fatal(err)
	}
	c := inspect.Config
	config, err := json.Marshal([]any{c.Env, c.Cmd, c.Entrypoint, c.User, c.WorkingDir, c.ExposedPorts, c.Volumes})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"config": neutral(string(config))}

	// A created container is never started; its files can be read all the
	// same.
	created, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Image:  ns + "/" + ref,
		Config: &container.Config{Cmd: []string{"true"}, NetworkDisabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.ContainerRemove(context.Background(), created.ID, client.ContainerRemoveOptions{Force: true})
	export, err := cli.ContainerExport(ctx, created.ID, client.ContainerExportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer export.Close()
	tr := tar.NewReader(export)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the files of %s: %v", ref, err)
		}
		what := neutral(h.Linkname)
		if h.Typeflag == tar.TypeReg {
			content, err := io.ReadAll(tr)
			if err != nil {
				t.Fatalf("reading %s of %s: %v", h.Name, ref, err)
			}
			what = fmt.Sprintf("%x", sha256.Sum256([]byte(neutral(string(content)))))
		}
		files[strings.TrimSuffix(h.Name, "/")] = fmt.Sprintf("%c %o %d:%d %s", h.Typeflag, h.Mode, h.Uid, h.Gid, what)
	}
	return files
}

// TestBuildersAptInstall builds, with each builder, a template that uses
// apt_install on Debian, and finds the helper's exact output in the
// image's history.
func TestBuildersAptInstall(t *testing.T) {
	// The Dockerfile form of the RUN line SPEC.md gives for apt_install
	// without apt_options or proxy, less its line continuations, which the
	// Dockerfile parser removes before either builder sees the command.
	const run = "apt-get update      && DEBIAN_FRONTEND=noninteractive     " +
		"apt-get install  --yes hello --no-install-recommends     " +
		"&& apt-get clean && rm -rf /var/lib/apt/lists/*"
	for _, b := range []string{"classic", "buildkit"} {
		t.Run(b, func(t *testing.T) {
			cli := testenv.Docker(t)
			base := testenv.Debian(t, cli)
			ns := testRepo(t, cli, "")
			if _, err := cli.ImageTag(t.Context(), client.ImageTagOptions{Source: base, Target: ns + "/debian:bookworm"}); err != nil {
				t.Fatal(err)
			}
			work := t.TempDir()
			writeYAML(t, filepath.Join(work, "config.yaml"), map[string]any{
				"namespace": ns, "base_images": []string{ns + "/debian:bookworm"},
			})
			writeImage(t, filepath.Join(work, "images"), "greeter",
				"FROM {{ \"debian\" | image_tag }}\nRUN {{ \"hello\" | apt_install }}\n",
				`[ "$(docker run --rm "$1" hello)" = "Hello, world!" ]
docker run --rm "$1" sh -c '[ -z "$(ls -A /var/lib/apt/lists)" ]'`)

			stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "build", "--builder", b, "images")
			if err != nil {
				t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
			}
			label := ns + "/greeter:1.0-1"
			if !summaryRow(label, "verified").MatchString(stdout) {
				t.Fatalf("the summary lacks %s verified:\n%s", label, stdout)
			}
			h, err := cli.ImageHistory(t.Context(), label)
			if err != nil {
				t.Fatal(err)
			}
			var steps []string
			for _, item := range h.Items {
				steps = append(steps, item.CreatedBy)
			}
			// BuildKit writes the step as "RUN /bin/sh -c ... # buildkit".
			if !slices.ContainsFunc(steps, func(s string) bool {
				return strings.HasSuffix(strings.TrimSuffix(s, " # buildkit"), "/bin/sh -c "+run)
			}) {
				t.Errorf("no step of the history runs %q:\n%s", run, strings.Join(steps, "\n"))
			}
		})
	}
}
