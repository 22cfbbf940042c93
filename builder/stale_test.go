package builder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeDaemon answers ImageInspect and ImageList from its images; any other
// call panics. Listing fails when any image is set to fail, so every image
// is then inspected one by one.
type fakeDaemon struct {
	Engine
	mu     sync.Mutex
	images map[string]fakeImage // by label
	fail   map[string]error     // by label
	n      int
}

type fakeImage struct {
	id     string
	labels map[string]string
}

func (f *fakeDaemon) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.fail[ref]; err != nil {
		return client.ImageInspectResult{}, err
	}
	img, ok := f.images[ref]
	if !ok {
		return client.ImageInspectResult{}, cerrdefs.ErrNotFound
	}
	return client.ImageInspectResult{InspectResponse: imagetypes.InspectResponse{
		ID:     img.id,
		Config: &dockerspec.DockerOCIImageConfig{ImageConfig: ocispec.ImageConfig{Labels: img.labels}},
	}}, nil
}

func (f *fakeDaemon) ImageList(_ context.Context, _ client.ImageListOptions) (client.ImageListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.fail) > 0 {
		return client.ImageListResult{}, errors.New("list failed")
	}
	var res client.ImageListResult
	for label, img := range f.images {
		res.Items = append(res.Items, imagetypes.Summary{ID: img.id, RepoTags: []string{label}, Labels: img.labels})
	}
	return res, nil
}

func (f *fakeDaemon) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res client.SystemInfoResult
	res.Info.Images = len(f.images)
	return res, nil
}

// put stores a new image (a new ID) under label.
func (f *fakeDaemon) put(label string, labels map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s#%d", label, f.n)))
	id := "sha256:" + hex.EncodeToString(sum[:])
	f.images[label] = fakeImage{id, labels}
	return id
}

func (f *fakeDaemon) id(label string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.images[label].id
}

// recWorld is a tree whose images were all built, with build records, into
// a fake daemon:
//
//	ns/base:1 (base_images) <- core <- app <- plugin
//	                        <- other
//	core, other <- mix
type recWorld struct {
	dir    string
	cfg    *config.Config
	tree   *Tree
	daemon *fakeDaemon
	baseID string // what ns/base:1 was when everything was built
}

func newRecWorld(t *testing.T) *recWorld {
	t.Helper()
	dir := writeTree(t,
		img("core", "core", "1.0", "", "FROM {{ \"base\" | image_tag }}\nRUN make core\n"),
		img("app", "app", "1.0", "core", "FROM {{ \"core\" | image_tag }}\nCOPY . /srv/\n"),
		img("plugin", "plugin", "2.0-1", "app", "FROM {{ \"app\" | image_tag }}\n"),
		img("other", "other", "1.0", "", "FROM {{ \"base\" | image_tag }}\nCOPY . /srv/\n"),
		img("mix", "mix", "0.1", "core, other", "FROM {{ \"core\" | image_tag }}\nCOPY --from={{ \"other\" | image_tag }} /srv /other\n"),
	)
	cfgPath := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgPath, []byte("namespace: ns\nbase_images: [ns/base:1]\nscan_workers: 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFiles("", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	w := &recWorld{dir: dir, cfg: cfg, daemon: &fakeDaemon{images: map[string]fakeImage{}, fail: map[string]error{}}}
	w.baseID = w.daemon.put("ns/base:1", nil)
	w.scan(t)
	for _, img := range w.tree.Images {
		w.build(t, img.Name)
	}
	return w
}

func (w *recWorld) scan(t *testing.T) {
	t.Helper()
	tree, err := scanTree(context.Background(), w.dir, w.cfg, image.Naming{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	w.tree = tree
}

// builder is a Builder of the world's tree on its fake daemon.
func (w *recWorld) builder(t *testing.T) *Builder {
	t.Helper()
	return builderFor(t, w.tree, w.cfg, WithEngine(w.daemon))
}

// build builds name into the fake daemon as the executor does: render,
// record, tag.
func (w *recWorld) build(t *testing.T, name string) {
	t.Helper()
	img := w.tree.Image(name)
	b := w.builder(t)
	r, err := b.renderImage(context.Background(), img)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := b.record(context.Background(), r, "")
	if err != nil {
		t.Fatal(err)
	}
	w.daemon.put(img.Label(), rec.Labels())
}

// bump gives name a new changelog entry at version, as a user would by
// hand.
func (w *recWorld) bump(t *testing.T, name, version string) {
	t.Helper()
	path := filepath.Join(w.dir, name, image.ChangelogFile)
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append([]byte(entry(name, version)+"\n"), old...), 0o644); err != nil {
		t.Fatal(err)
	}
	w.scan(t)
}

func (w *recWorld) write(t *testing.T, rel, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(w.dir, filepath.FromSlash(rel)), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// plan assesses the tree with the records the world holds and plans "*".
func (w *recWorld) plan(t *testing.T) *Plan {
	t.Helper()
	plan, err := w.builder(t).Plan(context.Background(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// reasons gives "code: reason" by short name.
func reasons(entries []Entry) map[string]string {
	out := map[string]string{}
	for _, e := range entries {
		out[e.Image.Name] = fmt.Sprintf("%s: %s", e.Code, e.Reason)
	}
	return out
}

func TestAssessRecords(t *testing.T) {
	const built = "built_locally: built locally"
	tests := []struct {
		name   string
		change func(t *testing.T, w *recWorld)
		want   func(w *recWorld) map[string]string
	}{
		{
			name: "nothing changed",
			want: func(*recWorld) map[string]string {
				return map[string]string{"core": built, "app": built, "plugin": built, "other": built, "mix": built}
			},
		},
		{
			name: "parent rebuilt under a new version",
			change: func(t *testing.T, w *recWorld) {
				w.bump(t, "core", "1.1")
				w.build(t, "core")
			},
			want: func(w *recWorld) map[string]string {
				now, old := w.daemon.id("ns/core:1.1"), w.daemon.id("ns/core:1.0")
				stale := fmt.Sprintf("stale: stale: parent core is now %s, built on %s", now, old)
				return map[string]string{
					"core": built, "app": stale, "mix": stale, "other": built,
					"plugin": "stale: stale: parent app is stale",
				}
			},
		},
		{
			name: "parent used only by COPY --from rebuilt",
			change: func(t *testing.T, w *recWorld) {
				w.bump(t, "other", "1.1")
				w.build(t, "other")
			},
			want: func(w *recWorld) map[string]string {
				now, old := w.daemon.id("ns/other:1.1"), w.daemon.id("ns/other:1.0")
				return map[string]string{
					"core": built, "app": built, "plugin": built, "other": built,
					"mix": fmt.Sprintf("stale: stale: parent other is now %s, built on %s", now, old),
				}
			},
		},
		{
			name:   "base image replaced",
			change: func(t *testing.T, w *recWorld) { w.daemon.put("ns/base:1", nil) },
			want: func(w *recWorld) map[string]string {
				return map[string]string{
					"core":   "stale: stale: parent ns/base:1 is now " + w.daemon.id("ns/base:1") + ", built on " + w.baseID,
					"other":  "stale: stale: parent ns/base:1 is now " + w.daemon.id("ns/base:1") + ", built on " + w.baseID,
					"app":    "stale: stale: parent core is stale",
					"mix":    "stale: stale: parent core is stale",
					"plugin": "stale: stale: parent app is stale",
				}
			},
		},
		{
			name: "template edited, version not",
			change: func(t *testing.T, w *recWorld) {
				w.write(t, "other/Dockerfile.template", "FROM {{ \"base\" | image_tag }}\nCOPY . /opt/\n")
			},
			want: func(*recWorld) map[string]string {
				return map[string]string{
					"core": built, "app": built, "plugin": built, "mix": built,
					"other": "changed: changed since 1.0 was built: run update or add a changelog entry",
				}
			},
		},
		{
			name:   "file added to the folder",
			change: func(t *testing.T, w *recWorld) { w.write(t, "app/extra.conf", "x\n") },
			want: func(*recWorld) map[string]string {
				return map[string]string{
					"core": built, "other": built, "plugin": built, "mix": built,
					"app": "changed: changed since 1.0 was built: run update or add a changelog entry",
				}
			},
		},
		{
			name: "built without a record",
			change: func(t *testing.T, w *recWorld) {
				w.daemon.images["ns/core:1.0"] = fakeImage{id: w.daemon.id("ns/core:1.0")}
				w.daemon.put("ns/base:1", nil)
			},
			want: func(w *recWorld) map[string]string {
				return map[string]string{
					"core": built, "app": built, "plugin": built,
					"other": "stale: stale: parent ns/base:1 is now " + w.daemon.id("ns/base:1") + ", built on " + w.baseID,
					"mix":   "stale: stale: parent other is stale",
				}
			},
		},
		{
			name:   "parent to be built",
			change: func(t *testing.T, w *recWorld) { delete(w.daemon.images, "ns/core:1.0") },
			want: func(*recWorld) map[string]string {
				return map[string]string{
					"core": "not_built: not built", "other": built, "plugin": built,
					"app": "parent_rebuilt: parent core will be rebuilt",
					"mix": "parent_rebuilt: parent core will be rebuilt",
				}
			},
		},
		{
			name:   "parent cannot be read",
			change: func(t *testing.T, w *recWorld) { w.daemon.fail["ns/base:1"] = errors.New("boom") },
			want: func(*recWorld) map[string]string {
				failed := built + "; build record not checked: reading parent ns/base:1: inspecting ns/base:1 in the local daemon: boom"
				return map[string]string{"core": failed, "other": failed, "app": built, "plugin": built, "mix": built}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newRecWorld(t)
			if tt.change != nil {
				tt.change(t, w)
			}
			got := reasons(w.plan(t).Entries)
			if want := tt.want(w); !reflect.DeepEqual(got, want) {
				t.Errorf("reasons:\n%s\nwant\n%s", strings.Join(sortedLines(got), "\n"), strings.Join(sortedLines(want), "\n"))
			}
		})
	}
}

func sortedLines(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+" = "+v)
	}
	slices.Sort(out)
	return out
}

func TestPlanWhy(t *testing.T) {
	w := newRecWorld(t)
	delete(w.daemon.images, "ns/core:1.0")
	plan := w.plan(t)
	entries, err := plan.Why("plugin")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, fmt.Sprintf("%s %s %v: %s", e.Image.Name, e.State, e.Build, e.Reason))
	}
	want := []string{
		"core to_build true: not built",
		"app built false: parent core will be rebuilt",
		"plugin built false: built locally",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Why(plugin) =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := plan.Why("nope"); !errors.Is(err, ErrNoSuchImage) {
		t.Errorf("Why(nope) error = %v, want ErrNoSuchImage", err)
	}
}

func TestBuildWarnings(t *testing.T) {
	w := newRecWorld(t)
	w.bump(t, "core", "1.1")
	w.build(t, "core")
	w.write(t, "other/Dockerfile.template", "FROM {{ \"base\" | image_tag }}\nCOPY . /opt/\n")
	var got []string
	for _, warning := range w.plan(t).Warnings() {
		got = append(got, strings.ReplaceAll(warning.String(), w.dir, "ROOT"))
	}
	stale := fmt.Sprintf("stale: parent core is now %s, built on %s", w.daemon.id("ns/core:1.1"), w.daemon.id("ns/core:1.0"))
	want := []string{
		"ROOT/other/changelog: ns/other:1.0 changed since 1.0 was built: run update or add a changelog entry; it will not be rebuilt",
		"ROOT/app/changelog: ns/app:1.0 is " + stale + "; it will not be rebuilt: run update --stale to give it a new version",
		"ROOT/mix/changelog: ns/mix:0.1 is " + stale + "; it will not be rebuilt: run update --stale to give it a new version",
		"ROOT/plugin/changelog: ns/plugin:2.0-1 is stale: parent app is stale; it will not be rebuilt: run update --stale to give it a new version",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("BuildWarnings() =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// topEntry returns the first entry of a changelog, up to its trailer.
func topEntry(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := strings.Cut(string(data), "\n -- ")
	return head
}

func TestUpdateStale(t *testing.T) {
	w := newRecWorld(t)
	newBase := w.daemon.put("ns/base:1", nil) // core and other are stale, and all that depends on them
	before := snapshot(t, w.dir)

	stale, err := w.builder(t).Stale(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range stale {
		got = append(got, fmt.Sprintf("%s %s %s %s %s", d.Image.Name, d.Code, d.Parent, d.Built, d.Now))
	}
	want := []string{
		"core stale ns/base:1 " + w.baseID + " " + newBase,
		"other stale ns/base:1 " + w.baseID + " " + newBase,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Stale() = %q, want %q", got, want)
	}

	// A dependency on an unknown image stops the update, as it stops update.
	w.write(t, "plugin/control", "Source: plugin\nDepends: app, ghost\n")
	w.scan(t)
	req := UpdateRequest{Distribution: "wikimedia", UpdateID: "s", Author: "A", Email: "a@example.org",
		Date: time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)}
	_, err = w.builder(t).UpdateStale(req, stale)
	var uerr *UpdateError
	if !errors.As(err, &uerr) || !errors.Is(err, ErrMissing) || len(uerr.Problems) != 1 {
		t.Fatalf("UpdateStale() with an unknown dependency: error = %v, want one ErrMissing problem", err)
	}
	w.write(t, "plugin/control", "Source: plugin\nDepends: app\n")
	w.scan(t)
	assertUnchanged(t, w.dir, before)

	res, err := w.builder(t).UpdateStale(req, stale)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := versions(res), []string{"core 1.0 -> 1.0-s1", "other 1.0 -> 1.0-s1", "app 1.0 -> 1.0-s1", "mix 0.1 -> 0.1-s1", "plugin 2.0-1 -> 2.0-1-s1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("UpdateStale() = %v, want %v", got, want)
	}
	if err := res.Write(context.Background()); err != nil {
		t.Fatal(err)
	}
	rebuild := fmt.Sprintf("Rebuild on updated parent image ns/base:1 (%s -> %s)", w.baseID, newBase)
	wantEntries := map[string]string{
		"core":   "core (1.0-s1) wikimedia; urgency=high\n\n   " + rebuild + "\n",
		"other":  "other (1.0-s1) wikimedia; urgency=high\n\n   " + rebuild + "\n",
		"app":    "app (1.0-s1) wikimedia; urgency=high\n\n   Refresh for update in parent image core:\n   " + rebuild + "\n",
		"mix":    "mix (0.1-s1) wikimedia; urgency=high\n\n   Refresh for update in parent images core, other:\n   " + rebuild + "\n",
		"plugin": "plugin (2.0-1-s1) wikimedia; urgency=high\n\n   Refresh for update in parent image core:\n   " + rebuild + "\n",
	}
	for name, want := range wantEntries {
		if got := topEntry(t, filepath.Join(w.dir, name, image.ChangelogFile)); got != want {
			t.Errorf("%s's new entry:\n%s\nwant\n%s", name, got, want)
		}
		if e, err := changelog.Parse(filepath.Join(w.dir, name, image.ChangelogFile)); err != nil || !strings.HasSuffix(e.Version, "-s1") {
			t.Errorf("%s: changelog.Parse() = %+v, %v", name, e, err)
		}
	}

	if res, err := w.builder(t).UpdateStale(req, nil); err != nil || len(res.Changes) != 0 {
		t.Errorf("UpdateStale() of nothing = %v, %v; want no change", res, err)
	}
}
