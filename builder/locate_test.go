package builder

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
)

// countingEngine counts the daemon calls the locator makes.
type countingEngine struct {
	*client.Client
	lists, inspects atomic.Int32
}

func (c *countingEngine) ImageList(ctx context.Context, o client.ImageListOptions) (client.ImageListResult, error) {
	c.lists.Add(1)
	return c.Client.ImageList(ctx, o)
}

func (c *countingEngine) ImageInspect(ctx context.Context, ref string, o ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	c.inspects.Add(1)
	return c.Client.ImageInspect(ctx, ref, o...)
}

// The local engine is asked once for every image of the tree, and
// separately only about parents from other repositories.
func TestEnginePlaceDaemon(t *testing.T) {
	cli := testenv.Docker(t)
	ns := testenv.Namespace(t, cli, "")
	busybox := testenv.Busybox(t, cli)
	root := writeTree(t,
		img("a", "a", "1", "", "FROM scratch\n"),
		img("b", "b", "2", "a", "FROM scratch\n"),
	)
	tree, err := scanTree(t.Context(), root, testConfig(), image.Naming{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ImageTag(t.Context(), client.ImageTagOptions{Source: busybox, Target: ns + "/a:1"}); err != nil {
		t.Fatal(err)
	}
	want, err := cli.ImageInspect(t.Context(), busybox)
	if err != nil {
		t.Fatal(err)
	}
	eng := &countingEngine{Client: cli}
	p := &enginePlace{engine: eng, tree: tree}
	tests := []struct {
		label string
		ok    bool
	}{
		{ns + "/a:1", true},
		{ns + "/b:2", false},
		{ns + "/a:0-old", false},
		{busybox, true}, // another repository: inspected
		{"docker-pkg-test/never-built:0", false},
	}
	for _, tt := range tests {
		f, err := p.find(t.Context(), tt.label)
		if err != nil || f.ok != tt.ok || tt.ok && f.id != want.ID {
			t.Errorf("find(%s) = %+v, %v; want ok %v with ID %s", tt.label, f, err, tt.ok, want.ID)
		}
	}
	if l, i := eng.lists.Load(), eng.inspects.Load(); l != 1 || i != 2 {
		t.Errorf("%d lists and %d inspects, want 1 list and 2 inspects (the labels outside %s/*)", l, i, ns)
	}
}

// failingEngine answers every call with an error; any other call panics.
type failingEngine struct {
	Engine
	err error
}

func (f failingEngine) ImageList(context.Context, client.ImageListOptions) (client.ImageListResult, error) {
	return client.ImageListResult{}, f.err
}

func (f failingEngine) ImageInspect(context.Context, string, ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	return client.ImageInspectResult{}, f.err
}

func TestEnginePlaceErrors(t *testing.T) {
	tree := &Tree{Images: []*image.Image{{Name: "x", Repo: "ns/x", Tag: "1"}}}
	tests := []struct {
		name    string
		err     error
		ok      bool
		wantErr string
	}{
		{"absent", cerrdefs.ErrNotFound, false, ""},
		{"daemon error", errors.New("connection refused"), false, "inspecting ns/x:1 in the local daemon: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The list fails too: each label is then inspected.
			p := &enginePlace{engine: failingEngine{err: tt.err}, tree: tree}
			f, err := p.find(t.Context(), "ns/x:1")
			if f.ok != tt.ok || (err == nil) != (tt.wantErr == "") || err != nil && err.Error() != tt.wantErr {
				t.Errorf("find() = %+v, %v; want ok %v, error %q", f, err, tt.ok, tt.wantErr)
			}
		})
	}
}

// Without a daemon nor a registry the plan still works: every image is
// to_build, and says why.
func TestPlanWithoutDaemon(t *testing.T) {
	root := writeTree(t, img("a", "a", "1", "", "FROM scratch\n"))
	b, err := New(t.Context(), root, &config.Config{ScanWorkers: 2, TemplateEngine: "jinja2", Builder: "classic"})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := b.Plan(t.Context(), PlanOptions{Pull: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Entries) != 1 || plan.Entries[0].Code != CodeNoDaemon || plan.Pull() {
		t.Errorf("plan = %+v, pull %v; want a to_build entry for want of a daemon, no pull", plan.Entries, plan.Pull())
	}
	if _, err := b.Build(t.Context(), plan, BuildOptions{}); !errors.Is(err, ErrNoEngine) || !strings.Contains(err.Error(), "no Docker daemon") {
		t.Errorf("Build without a daemon = %v, want ErrNoEngine", err)
	}
}
