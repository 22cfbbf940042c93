package builder

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
	"gopkg.in/yaml.v3"
)

// daemonNamespace is a namespace of the test's own, whose images, and the
// untagged layers failed builds leave (named in log), are removed when
// the test ends. Its busybox base image is tagged ns/busybox:static.
func daemonNamespace(t *testing.T, cli *client.Client, log *syncBuffer) string {
	t.Helper()
	// Registered first, so it runs after the namespace's tags are gone
	// (cleanups run last in, first out) and the layers are unused.
	t.Cleanup(func() {
		ctx := context.Background()
		for _, m := range regexp.MustCompile(`(?m) ---> ([0-9a-f]{12})$`).FindAllStringSubmatch(log.String(), -1) {
			if res, err := cli.ImageInspect(ctx, m[1]); err == nil && len(res.RepoTags) == 0 {
				cli.ImageRemove(ctx, m[1], client.ImageRemoveOptions{PruneChildren: true})
			}
		}
	})
	return testenv.Namespace(t, cli, "")
}

// syncBuffer is a log several goroutines write and a test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
	// onWrite, when set, sees everything written so far after each write.
	onWrite func(string)
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	if b.onWrite != nil {
		b.onWrite(b.buf.String())
	}
	return len(p), nil
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// writeConfig writes a config.yaml for namespace ns with its busybox base
// and extra keys, and loads it as docker-pkg does.
func writeConfig(t *testing.T, dir, ns string, extra map[string]any) *config.Config {
	t.Helper()
	doc := map[string]any{"namespace": ns, "base_images": []string{ns + "/busybox:static"}}
	for k, v := range extra {
		doc[k] = v
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFiles("", path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// daemonTree writes images built FROM the test's busybox, each a folder
// with a Dockerfile.template of the given RUN lines, and scans them.
func daemonTree(t *testing.T, cfg *config.Config, imgs ...execImage) *Tree {
	t.Helper()
	tree := execTree(t, cfg, imgs...)
	for _, img := range tree.Images {
		path := filepath.Join(img.Dir, image.TemplateFile)
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		from := `FROM {{ "busybox" | image_tag }}`
		if parents := tree.Parents(img.Name); len(parents) > 0 {
			from = `FROM {{ "` + parents[0].Name + `" | image_tag }}`
		}
		src = []byte(strings.Replace(string(src), "FROM scratch", from, 1))
		if err := os.WriteFile(path, src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := image.Naming{Namespace: cfg.Namespace}
	tree, err := scanTree(t.Context(), tree.Dir, cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// markerContainers lists the containers, stopped ones included, whose
// command holds marker.
func markerContainers(t *testing.T, cli *client.Client, marker string) []string {
	t.Helper()
	list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list.Items {
		if strings.Contains(c.Command, marker) {
			out = append(out, c.ID+" "+c.Command)
		}
	}
	return out
}

func TestBuildDaemonFixtures(t *testing.T) {
	cli := testenv.Docker(t)
	log := &syncBuffer{}
	ns := daemonNamespace(t, cli, log)
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS("../fixtures")); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	raw, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	delete(doc, "namespace")
	delete(doc, "base_images")
	cfg := writeConfig(t, dir, ns, doc)
	// fixtures/ whole: images/ and failing/, built on it.
	tree, err := scanTree(t.Context(), dir, cfg, image.Naming{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	b := builderFor(t, tree, cfg, WithEngine(cli), WithJobs(1), WithEvents(rec.event), WithLog(log))
	plan, err := b.Plan(t.Context(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Build(t.Context(), plan, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"core": "verified", "build-tools": "verified", "runtime": "verified", "tools": "verified",
		"app": "verified", "ci-runner": "verified", "app-plugin": "verified",
		"legacy-app":    "failed at verify", // its test fails on purpose
		"legacy-plugin": "skipped: parent legacy-app failed",
	}
	if got := outcomes(res); !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes\n%v\nwant\n%v\nlog:\n%s", got, want, log.String())
	}
	var order []string
	for _, e := range rec.events {
		if e.Phase == PhaseBuilding {
			order = append(order, e.Image.Name)
		}
	}
	// Every image of the plan's chain but legacy-plugin, never started.
	if want := slices.DeleteFunc(chainNames(plan), func(n string) bool { return n == "legacy-plugin" }); !reflect.DeepEqual(order, want) {
		t.Errorf("--jobs 1 built in order %v, want the plan's %v", order, want)
	}
	for _, ir := range res.Images {
		if ir.Size <= 0 && ir.Phase != PhaseSkipped {
			t.Errorf("%s: size %d", ir.Image.Name, ir.Size)
		}
	}
	checkLanes(t, res, rec, 1)
	// The build-stage image of build-tools is gone.
	if _, err := cli.ImageInspect(t.Context(), ns+"/build-tools-build:0.9.0-1"); err == nil {
		t.Error("the build-stage image of build-tools is still there")
	}
}

func TestBuildDaemonFailureSkipsOnlyDescendants(t *testing.T) {
	cli := testenv.Docker(t)
	log := &syncBuffer{}
	ns := daemonNamespace(t, cli, log)
	cfg := writeConfig(t, t.TempDir(), ns, nil)
	tree := daemonTree(t, cfg,
		execImage{name: "root", body: "RUN echo root > /root.txt"},
		execImage{name: "bad", depends: "root", body: "RUN echo about to fail && exit 3"},
		execImage{name: "bad-child", depends: "bad"},
		execImage{name: "bad-grandchild", depends: "bad-child"},
		execImage{name: "sibling", depends: "root", body: "RUN test -f /root.txt"},
		execImage{name: "nephew", depends: "sibling", test: `docker run --rm "$1" cat /root.txt | grep -qx root`},
	)
	res, err := builderFor(t, tree, cfg, WithEngine(cli), WithJobs(2), WithLog(log)).Build(t.Context(), planAll(t, tree, nil), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"root": "verified", "sibling": "verified", "nephew": "verified",
		"bad":            "failed at build",
		"bad-child":      "skipped: parent bad failed",
		"bad-grandchild": "skipped: parent bad failed",
	}
	if got := outcomes(res); !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes\n%v\nwant\n%v\nlog:\n%s", got, want, log.String())
	}
	for _, ir := range res.Images {
		var be *image.BuildError
		if ir.Image.Name != "bad" {
			continue
		}
		if !errors.As(ir.Err, &be) || !slices.Contains(be.Tail, "about to fail") {
			t.Errorf("bad's error %v: tail %q lacks the failing step's output", ir.Err, be.Tail)
		}
	}
	if !strings.Contains(log.String(), "[bad] about to fail\n") {
		t.Errorf("the log lacks bad's output:\n%s", log.String())
	}
}

func TestBuildDaemonInterrupt(t *testing.T) {
	cli := testenv.Docker(t)
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp) // every build context goes here
	marker := "dpkg-interrupt-" + rand.Text()[:8]
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel once two builds are running a step.
	log := &syncBuffer{onWrite: func(s string) {
		if len(regexp.MustCompile(`(?m)^\[(\w+)\]  ---> Running in `).FindAllString(s, -1)) >= 2 {
			cancel()
		}
	}}
	ns := daemonNamespace(t, cli, log)
	cfg := writeConfig(t, t.TempDir(), ns, nil)
	body := "RUN echo " + marker + " && sleep 300"
	tree := daemonTree(t, cfg,
		execImage{name: "one", body: body},
		execImage{name: "two", body: body},
		execImage{name: "three", body: body},
		execImage{name: "after", depends: "one"},
	)
	if before := markerContainers(t, cli, marker); len(before) > 0 {
		t.Fatalf("containers before the build: %v", before)
	}
	res, err := builderFor(t, tree, cfg, WithEngine(cli), WithJobs(2), WithLog(log)).Build(ctx, planAll(t, tree, nil), BuildOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Build = %v, want context.Canceled\nlog:\n%s", err, log.String())
	}
	for _, ir := range res.Images {
		if ir.Phase != PhaseSkipped || ir.Reason != "cancelled" {
			t.Errorf("%s: %s (%s), want skipped: cancelled", ir.Image.Name, ir.Phase, ir.Reason)
		}
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left in TMPDIR: %s", e.Name())
	}
	if after := markerContainers(t, cli, marker); len(after) > 0 {
		t.Errorf("build containers left: %v", after)
	}
}

func TestBuildDaemonFailFast(t *testing.T) {
	cli := testenv.Docker(t)
	marker := "dpkg-failfast-" + rand.Text()[:8]
	log := &syncBuffer{}
	ns := daemonNamespace(t, cli, log)
	cfg := writeConfig(t, t.TempDir(), ns, nil)
	tree := daemonTree(t, cfg,
		execImage{name: "bad", body: "RUN sleep 1 && exit 3"},
		execImage{name: "slow", body: "RUN echo " + marker + " && sleep 300"},
		execImage{name: "later", depends: "slow"},
	)
	// Were fail-fast not to interrupt slow, this would take five minutes.
	res, err := builderFor(t, tree, cfg, WithEngine(cli), WithJobs(2), WithLog(log)).Build(t.Context(), planAll(t, tree, nil), BuildOptions{FailFast: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"bad": "failed at build", "slow": "skipped: cancelled", "later": "skipped: cancelled"}
	if got := outcomes(res); !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes %v, want %v\nlog:\n%s", got, want, log.String())
	}
	if left := markerContainers(t, cli, marker); len(left) > 0 {
		t.Errorf("build containers left: %v", left)
	}
}
