package builder

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/docker-pkg/docker-pkg/registry"
	"github.com/moby/moby/client"
)

// daemonWorld is a small tree built for real, with build records, on a
// base image tagged from testenv.Busybox:
//
//	base (base_images) <- core <- app <- plugin
//	                   <- other
type daemonWorld struct {
	dir  string
	cfg  *config.Config
	n    image.Naming
	cli  *client.Client
	tree *Tree
	base string // the base image's label
}

func newDaemonWorld(t *testing.T, registry string, extraConfig string) *daemonWorld {
	t.Helper()
	cli := testenv.Docker(t)
	busybox := testenv.Busybox(t, cli)
	ns := fmt.Sprintf("docker-pkg-test/records-%d-%d", os.Getpid(), time.Now().UnixNano())
	n := image.Naming{Registry: registry, Namespace: ns}
	w := &daemonWorld{cli: cli, n: n, base: n.Repo("base") + ":1"}
	if _, err := cli.ImageTag(t.Context(), client.ImageTagOptions{Source: busybox, Target: w.base}); err != nil {
		t.Fatal(err)
	}
	w.removeAtEnd(t, w.base)

	w.dir = writeTree(t,
		img("core", "core", "1.0", "", "FROM {{ \"base\" | image_tag }}\nRUN echo core > /core\n"),
		img("app", "app", "1.0", "core", "FROM {{ \"core\" | image_tag }}\nCOPY . /srv/app/\n"),
		img("plugin", "plugin", "1.0", "app", "FROM {{ \"app\" | image_tag }}\nRUN echo plugin > /plugin\n"),
		img("other", "other", "1.0", "", "FROM {{ \"base\" | image_tag }}\nCOPY . /srv/other/\n"),
	)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	yml := fmt.Sprintf("registry: %q\nnamespace: %s\nbase_images: [%s]\n%s", registry, ns, w.base, extraConfig)
	if err := os.WriteFile(cfgPath, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	var err error
	if w.cfg, err = config.LoadFiles("", cfgPath); err != nil {
		t.Fatal(err)
	}
	w.scan(t)
	for _, img := range w.tree.Images {
		w.build(t, img.Name)
	}
	return w
}

func (w *daemonWorld) scan(t *testing.T) {
	t.Helper()
	tree, err := scanTree(context.Background(), w.dir, w.cfg, w.n)
	if err != nil {
		t.Fatal(err)
	}
	w.tree = tree
}

func (w *daemonWorld) removeAtEnd(t *testing.T, label string) {
	t.Cleanup(func() {
		_, err := w.cli.ImageRemove(context.Background(), label, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleaning up %s: %v", label, err)
		}
	})
}

// build builds name for real with its build record, as the executor does.
func (w *daemonWorld) build(t *testing.T, name string) string {
	t.Helper()
	ctx := t.Context()
	img := w.tree.Image(name)
	b := builderFor(t, w.tree, w.cfg, WithEngine(w.cli))
	r, err := b.renderImage(ctx, img)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := b.record(ctx, r, image.Revision(ctx, w.dir))
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	w.removeAtEnd(t, img.Label())
	built, err := b.buildImage(ctx, image.NewClassic(w.cli), r, rec, false, &log)
	if err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	b.markVerified(ctx, img, true, &log) // as if its test had passed
	return built.ID
}

func (w *daemonWorld) id(t *testing.T, label string) string {
	t.Helper()
	res, err := w.cli.ImageInspect(t.Context(), label)
	if err != nil {
		t.Fatal(err)
	}
	return res.ID
}

// plan assesses and plans the whole tree as the plan command does.
func (w *daemonWorld) plan(t *testing.T, reg *registry.Client) *Plan {
	t.Helper()
	b := builderFor(t, w.tree, w.cfg, WithEngine(w.cli), WithRegistry(reg))
	plan, err := b.Plan(t.Context(), PlanOptions{Pull: true})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func TestRecordsDaemon(t *testing.T) {
	w := newDaemonWorld(t, "", "")
	const built = "built_locally: built locally"

	// Nothing changed: nothing to build, nothing to say.
	plan := w.plan(t, nil)
	want := map[string]string{"core": built, "app": built, "plugin": built, "other": built}
	if got := reasons(plan.Entries); !reflect.DeepEqual(got, want) || len(plan.Chain()) != 0 {
		t.Fatalf("no change: reasons %v, chain %v; want %v and no chain", got, names(plan.Chain()), want)
	}

	// core rebuilt under a new version, app left as it was: app was built
	// on the old core, plugin on app.
	oldCore := w.id(t, w.tree.Image("core").Label())
	path := filepath.Join(w.dir, "core", image.ChangelogFile)
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append([]byte(entry("core", "1.1")+"\n"), old...), 0o644); err != nil {
		t.Fatal(err)
	}
	w.scan(t)
	newCore := w.build(t, "core")
	if newCore == oldCore {
		t.Fatalf("core rebuilt with the same ID %s", newCore)
	}
	stale := fmt.Sprintf("stale: stale: parent core is now %s, built on %s", newCore, oldCore)
	want = map[string]string{"core": built, "app": stale, "plugin": "stale: stale: parent app is stale", "other": built}
	if got := reasons(w.plan(t, nil).Entries); !reflect.DeepEqual(got, want) {
		t.Errorf("parent rebuilt: reasons\n%s\nwant\n%s", strings.Join(sortedLines(got), "\n"), strings.Join(sortedLines(want), "\n"))
	}

	// update --stale: exactly app and its child.
	drifts, err := builderFor(t, w.tree, w.cfg, WithEngine(w.cli)).Stale(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(drifts) != 1 || drifts[0].Image.Name != "app" || drifts[0].Built != oldCore || drifts[0].Now != newCore {
		t.Fatalf("Stale() = %+v, want app built on %s, core now %s", drifts, oldCore, newCore)
	}
	req := UpdateRequest{Distribution: "wikimedia", UpdateID: "s", Author: "A", Email: "a@example.org"}
	res, err := builderFor(t, w.tree, w.cfg).UpdateStale(req, drifts)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := versions(res), []string{"app 1.0 -> 1.0-s1", "plugin 1.0 -> 1.0-s1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("UpdateStale() = %v, want %v", got, want)
	}
	if want := fmt.Sprintf("Rebuild on updated parent image core (%s -> %s)", oldCore, newCore); !bytes.Contains(res.Changes[0].Entry, []byte(want)) {
		t.Errorf("app's entry:\n%s\nwant it to say %q", res.Changes[0].Entry, want)
	}
	if err := res.Write(t.Context()); err != nil {
		t.Fatal(err)
	}
	w.scan(t)
	if got, want := names(w.plan(t, nil).Chain()), []string{"app", "plugin"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after update --stale, the chain is %v, want %v", got, want)
	}

	// A template edited without a changelog entry.
	tmpl := filepath.Join(w.dir, "other", image.TemplateFile)
	if err := os.WriteFile(tmpl, []byte("FROM {{ \"base\" | image_tag }}\nCOPY . /srv/other2/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := reasons(w.plan(t, nil).Entries)["other"]
	if want := "changed: changed since 1.0 was built: run update or add a changelog entry"; got != want {
		t.Errorf("template edited: other is %q, want %q", got, want)
	}
}

func TestRecordsRegistry(t *testing.T) {
	host, _ := testenv.Registry(t, testenv.RegistryOptions{Auth: true})
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // not this machine's credentials
	creds := fmt.Sprintf("username: %s\npassword: %s\n", testenv.RegistryUser, testenv.RegistryPassword)
	w := newDaemonWorld(t, host, creds)
	reg, err := registry.New(w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range w.tree.Images {
		if err := reg.Publish(t.Context(), w.cli, img.Label(), io.Discard); err != nil {
			t.Fatal(err)
		}
		w.removeAtEnd(t, img.Repo+":latest")
	}

	const published = "published: published"
	want := map[string]string{"core": published, "app": published, "plugin": published, "other": published}
	plan := w.plan(t, reg)
	if got := reasons(plan.Entries); !reflect.DeepEqual(got, want) || len(plan.Chain()) != 0 {
		t.Fatalf("reasons %v, chain %v; want %v and no chain", got, names(plan.Chain()), want)
	}

	// Gone from the daemon, the records and IDs come from the registry:
	// the same IDs, so still nothing is stale or changed.
	for _, img := range w.tree.Images {
		for _, label := range []string{img.Label(), img.Repo + ":latest"} {
			if _, err := w.cli.ImageRemove(t.Context(), label, client.ImageRemoveOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := reasons(w.plan(t, reg).Entries); !reflect.DeepEqual(got, want) {
		t.Errorf("read from the registry: reasons %v, want %v", got, want)
	}
}
