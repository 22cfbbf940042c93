package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/dockerfile"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/registry"
	apiimage "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
)

// execImage is one image of a tree the executor tests build.
type execImage struct {
	name    string
	depends string // control's Depends
	body    string // Dockerfile.template after the FROM line
	test    string // test.sh; none when empty
}

// execTree writes the images into a new folder and scans it, with no
// registry nor namespace, so each image's repository is its short name.
func execTree(t *testing.T, cfg *config.Config, imgs ...execImage) *Tree {
	t.Helper()
	root := t.TempDir()
	for _, im := range imgs {
		dir := filepath.Join(root, im.name)
		files := map[string]string{
			"changelog": im.name + " (1.0-1) wikimedia; urgency=medium\n\n  * Change.\n\n" +
				" -- Author <a@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n",
			"Dockerfile.template": "FROM scratch\n" + im.body + "\n",
		}
		if im.depends != "" {
			files["control"] = "Source: " + im.name + "\nDepends: " + im.depends + "\n"
		}
		if im.test != "" {
			files["test.sh"] = "#!/bin/sh\n" + im.test + "\n"
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	tree, err := scanTree(t.Context(), root, cfg, image.Naming{})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func execConfig() *config.Config {
	return &config.Config{
		ScanWorkers:    2,
		VerifyCommand:  "/bin/sh",
		VerifyArgs:     []string{"-c", "{path}/test.sh {image}"},
		TemplateEngine: "jinja2",
		Builder:        "classic",
		Vars:           map[string]any{"greeting": "hello"},
	}
}

// fakeDocker builds from the rendered Dockerfile alone: a line FAIL fails
// the build, HANG blocks it until it is cancelled; every other build
// succeeds once quorum builds run at once (or after a few seconds).
type fakeDocker struct {
	Engine // nil: any call not below panics
	quorum int

	mu      sync.Mutex
	started []string // tags, in the order their builds started
	running int
	peak    int
	changed chan struct{} // closed and replaced when running changes
}

func newFakeDocker() *fakeDocker { return &fakeDocker{changed: make(chan struct{})} }

func (f *fakeDocker) ImageBuild(ctx context.Context, body io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
	dockerfile := readDockerfile(body)
	tag := opts.Tags[len(opts.Tags)-1] // the image's label; the unverified mark before it
	f.mu.Lock()
	f.started = append(f.started, tag)
	f.running++
	f.peak = max(f.peak, f.running)
	f.signal()
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.running--
		f.signal()
		f.mu.Unlock()
	}()

	if strings.Contains(dockerfile, "HANG") {
		<-ctx.Done()
		return client.ImageBuildResult{}, ctx.Err()
	}
	deadline := time.After(5 * time.Second)
wait:
	for {
		f.mu.Lock()
		enough, changed := f.peak >= f.quorum, f.changed
		f.mu.Unlock()
		if enough {
			break
		}
		select {
		case <-changed:
		case <-deadline:
			break wait
		case <-ctx.Done():
			return client.ImageBuildResult{}, ctx.Err()
		}
	}
	stream := `{"stream":"Step 1/2 : FROM scratch\n"}`
	if strings.Contains(dockerfile, "FAIL") {
		stream += `{"stream":"Step 2/2 : RUN false\n"}{"errorDetail":{"message":"boom"},"error":"boom"}`
	} else {
		stream += fmt.Sprintf(`{"aux":{"ID":"sha256:%x"}}`, tag)
	}
	return client.ImageBuildResult{Body: io.NopCloser(strings.NewReader(stream))}, nil
}

func (f *fakeDocker) signal() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// waitStarted waits until the build of the image named name has started.
func (f *fakeDocker) waitStarted(t *testing.T, name string) {
	t.Helper()
	for {
		f.mu.Lock()
		ok, changed := slices.Contains(f.started, name+":1.0-1"), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s never started building", name)
		}
	}
}

func (f *fakeDocker) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	return client.ImageInspectResult{InspectResponse: apiimage.InspectResponse{ID: ref, Size: 4200}}, nil
}

// The calls a verify makes: no container to remove, marks that change
// nothing.
func (f *fakeDocker) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	return client.ContainerListResult{}, nil
}

func (f *fakeDocker) ImageRemove(context.Context, string, client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	return client.ImageRemoveResult{}, nil
}

func (f *fakeDocker) ImageTag(context.Context, client.ImageTagOptions) (client.ImageTagResult, error) {
	return client.ImageTagResult{}, nil
}

func (f *fakeDocker) startedNames() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, tag := range f.started {
		out = append(out, strings.TrimSuffix(tag, ":1.0-1"))
	}
	return out
}

func readDockerfile(body io.Reader) string {
	defer io.Copy(io.Discard, body)
	tr := tar.NewReader(body)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return ""
		}
		if hdr.Name == "Dockerfile" {
			b, _ := io.ReadAll(tr)
			return string(b)
		}
	}
}

// recorder keeps every event, and checks they come one at a time.
type recorder struct {
	inside atomic.Bool
	mu     sync.Mutex
	events []Event
}

func (r *recorder) event(e Event) {
	if !r.inside.CompareAndSwap(false, true) {
		panic("events delivered concurrently")
	}
	defer r.inside.Store(false)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// phases returns, per image, its phases in order, with reasons.
func (r *recorder) phases() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for _, e := range r.events {
		p := string(e.Phase)
		if e.Phase == PhaseSkipped {
			p += ": " + e.Reason
		}
		out[e.Image.Name] = append(out[e.Image.Name], p)
	}
	return out
}

// outcome is an image's final phase with the skip reason or failing stage.
func outcome(ir ImageResult) string {
	switch ir.Phase {
	case PhaseSkipped:
		return "skipped: " + ir.Reason
	case PhaseFailed:
		var be *image.BuildError
		if errors.As(ir.Err, &be) {
			return "failed at " + string(be.Stage)
		}
		return "failed: " + ir.Reason
	}
	return string(ir.Phase)
}

func outcomes(res *Result) map[string]string {
	out := map[string]string{}
	for _, ir := range res.Images {
		out[ir.Image.Name] = outcome(ir)
	}
	return out
}

func chainNames(p *Plan) []string {
	var out []string
	for _, img := range p.Chain() {
		out = append(out, img.Name)
	}
	return out
}

func planAll(t *testing.T, tree *Tree, states States) *Plan {
	t.Helper()
	p, err := tree.plan(states, "*")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewRejectsJobs(t *testing.T) {
	tests := []struct {
		name string
		jobs int
		ok   bool
	}{
		{"one", 1, true},
		{"many", 16, true},
		{"zero", 0, false},
		{"negative", -2, false},
	}
	root := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(t.Context(), root, execConfig(), WithJobs(tt.jobs))
			if (err == nil) != tt.ok {
				t.Errorf("New(WithJobs(%d)) = %v, want ok %v", tt.jobs, err, tt.ok)
			}
		})
	}
}

func TestBuildOneJobFollowsPlanOrder(t *testing.T) {
	cfg := execConfig()
	tree := execTree(t, cfg,
		execImage{name: "e", depends: "c, d"},
		execImage{name: "d", depends: "b"},
		execImage{name: "c", depends: "a"},
		execImage{name: "f"},
		execImage{name: "b"},
		execImage{name: "a"},
		execImage{name: "g", depends: "a"},
	)
	plan := planAll(t, tree, nil)
	want := chainNames(plan)
	// Timing varies between runs; the order must not.
	for range 20 {
		eng := newFakeDocker()
		rec := &recorder{}
		res, err := builderFor(t, tree, cfg, WithEngine(eng), WithJobs(1), WithEvents(rec.event)).Build(t.Context(), plan, BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := eng.startedNames(); !reflect.DeepEqual(got, want) {
			t.Fatalf("built in order %v, want the plan's %v", got, want)
		}
		for _, name := range want {
			if got := rec.phases()[name]; !reflect.DeepEqual(got, []string{"building", "built", "verified"}) {
				t.Errorf("%s went through %v", name, got)
			}
		}
		if res.Failed() != 0 {
			t.Errorf("Failed() = %d, want 0", res.Failed())
		}
	}
}

func TestBuildJobsRunInParallel(t *testing.T) {
	cfg := execConfig()
	tree := execTree(t, cfg, execImage{name: "a"}, execImage{name: "b"}, execImage{name: "c"}, execImage{name: "d"}, execImage{name: "e", depends: "a"})
	eng := newFakeDocker()
	eng.quorum = 2 // no build ends before two ran at once
	rec := &recorder{}
	res, err := builderFor(t, tree, cfg, WithEngine(eng), WithJobs(2), WithEvents(rec.event)).Build(t.Context(), planAll(t, tree, nil), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if eng.peak != 2 {
		t.Errorf("at most %d builds ran at once, want 2 (--jobs 2)", eng.peak)
	}
	if res.Failed() != 0 {
		t.Errorf("outcomes %v", outcomes(res))
	}
	for _, ir := range res.Images {
		if ir.Size != 4200 || ir.Duration <= 0 {
			t.Errorf("%s: size %d, duration %s; want the inspected size and a duration", ir.Image.Name, ir.Size, ir.Duration)
		}
	}
	checkLanes(t, res, rec, 2)
}

// checkLanes checks that every image built holds a slot from 1 to jobs,
// the same in its events and its result, that two images of one slot
// never overlap, and that event times never go back.
func checkLanes(t *testing.T, res *Result, rec *recorder, jobs int) {
	t.Helper()
	type span struct {
		name       string
		start, end time.Time
	}
	lanes := map[int][]span{}
	for _, ir := range res.Images {
		if ir.Start.IsZero() {
			continue
		}
		if ir.Slot < 1 || ir.Slot > jobs {
			t.Errorf("%s: slot %d, want 1 to %d", ir.Image.Name, ir.Slot, jobs)
		}
		lanes[ir.Slot] = append(lanes[ir.Slot], span{ir.Image.Name, ir.Start, ir.Start.Add(ir.Duration)})
	}
	for slot, spans := range lanes {
		slices.SortFunc(spans, func(a, b span) int { return a.start.Compare(b.start) })
		for k := 1; k < len(spans); k++ {
			if spans[k].start.Before(spans[k-1].end) {
				t.Errorf("slot %d: %s started before %s ended", slot, spans[k].name, spans[k-1].name)
			}
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var last time.Time
	for _, e := range rec.events {
		if e.Time.Before(last) || e.Time.IsZero() {
			t.Errorf("%s %s at %v, after an event at %v", e.Image.Name, e.Phase, e.Time, last)
		}
		last = e.Time
		switch e.Phase {
		case PhaseBuilding, PhaseBuilt, PhaseVerified:
			if want := res.Images[slices.IndexFunc(res.Images, func(ir ImageResult) bool { return ir.Image == e.Image })].Slot; e.Slot != want {
				t.Errorf("%s %s: slot %d, want %d, its result's", e.Image.Name, e.Phase, e.Slot, want)
			}
		case PhaseSkipped:
			if e.Slot != 0 {
				t.Errorf("%s skipped in slot %d", e.Image.Name, e.Slot)
			}
		}
	}
}

func TestBuildSkipsOnlyDescendantsOfFailure(t *testing.T) {
	cfg := execConfig()
	tree := execTree(t, cfg,
		execImage{name: "base"},
		execImage{name: "bad", depends: "base", body: "RUN FAIL"},
		execImage{name: "child", depends: "bad"},
		execImage{name: "grandchild", depends: "child, sibling"},
		execImage{name: "sibling", depends: "base"},
		execImage{name: "untested", depends: "sibling", test: "echo checking $1; exit 3"},
		execImage{name: "after-untested", depends: "untested"},
	)
	eng := newFakeDocker()
	rec := &recorder{}
	var log bytes.Buffer
	res, err := builderFor(t, tree, cfg, WithEngine(eng), WithJobs(3), WithEvents(rec.event), WithLog(&log)).Build(t.Context(), planAll(t, tree, nil), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"base":           "verified",
		"bad":            "failed at build",
		"child":          "skipped: parent bad failed",
		"grandchild":     "skipped: parent bad failed",
		"sibling":        "verified",
		"untested":       "failed at verify",
		"after-untested": "skipped: parent untested failed",
	}
	if got := outcomes(res); !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes\n%v\nwant\n%v", got, want)
	}
	if res.Failed() != 5 {
		t.Errorf("Failed() = %d, want 5", res.Failed())
	}
	for _, name := range []string{"child", "grandchild"} {
		if slices.Contains(eng.startedNames(), name) {
			t.Errorf("%s was built though its parent failed", name)
		}
		if got := rec.phases()[name]; !reflect.DeepEqual(got, []string{"skipped: parent bad failed"}) {
			t.Errorf("%s events %v, want one skip", name, got)
		}
	}
	if got := rec.phases()["bad"]; !reflect.DeepEqual(got, []string{"building", "failed"}) {
		t.Errorf("bad events %v", got)
	}
	// The error carries the log's tail; the log holds the test's output.
	for _, ir := range res.Images {
		var be *image.BuildError
		if ir.Image.Name == "bad" && (!errors.As(ir.Err, &be) || !slices.Contains(be.Tail, "ERROR: boom")) {
			t.Errorf("bad's error %#v lacks the log tail", ir.Err)
		}
	}
	if !strings.Contains(log.String(), "[untested] checking untested:1.0-1\n") {
		t.Errorf("log lacks the test's output:\n%s", log.String())
	}
}

func TestBuildRenderFailures(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		numeric bool
		want    error  // matched with errors.Is, when set
		says    string // in the message
	}{
		{name: "undefined variable", body: "RUN echo {{ nope }}", want: dockerfile.ErrUndefined, says: "Dockerfile.template:2"},
		{name: "non-numeric user", body: "USER nobody", numeric: true, want: dockerfile.ErrNonNumericUser, says: "Dockerfile.template, rendered: line 2"},
		{name: "numeric user", body: "USER 65534", numeric: true},
		{name: "non-numeric user allowed", body: "USER nobody"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := execConfig()
			cfg.ForceNumericUser = tt.numeric
			tree := execTree(t, cfg, execImage{name: "x", body: tt.body})
			eng := newFakeDocker()
			res, err := builderFor(t, tree, cfg, WithEngine(eng)).Build(t.Context(), planAll(t, tree, nil), BuildOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ir := res.Images[0]
			if tt.want == nil {
				if ir.Phase != PhaseVerified {
					t.Errorf("got %s: %v, want verified", ir.Phase, ir.Err)
				}
				return
			}
			if got := outcome(ir); got != "failed at render" || !errors.Is(ir.Err, tt.want) || !strings.Contains(ir.Reason, tt.says) {
				t.Errorf("got %s: %v; want a render failure matching %v and saying %q", got, ir.Err, tt.want, tt.says)
			}
			if len(eng.startedNames()) != 0 {
				t.Error("the daemon was asked to build an image that did not render")
			}
		})
	}
}

func TestBuildFailFast(t *testing.T) {
	cfg := execConfig()
	tree := execTree(t, cfg,
		execImage{name: "bad", body: "RUN FAIL"},
		execImage{name: "slow", body: "RUN HANG"},
		execImage{name: "later", depends: "slow"},
	)
	eng := newFakeDocker()
	eng.quorum = 2 // bad fails only once slow is building
	res, err := builderFor(t, tree, cfg, WithEngine(eng), WithJobs(2)).Build(t.Context(), planAll(t, tree, nil), BuildOptions{FailFast: true})
	if err != nil {
		t.Fatalf("Build = %v; a fail-fast stop is in the result, not an error", err)
	}
	want := map[string]string{"bad": "failed at build", "slow": "skipped: cancelled", "later": "skipped: cancelled"}
	if got := outcomes(res); !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
}

func TestBuildCancelled(t *testing.T) {
	cfg := execConfig()
	tree := execTree(t, cfg,
		execImage{name: "a"},
		execImage{name: "slow", depends: "a", body: "RUN HANG"},
		execImage{name: "later", depends: "slow"},
	)
	eng := newFakeDocker()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type built struct {
		res *Result
		err error
	}
	done := make(chan built)
	go func() {
		res, err := builderFor(t, tree, cfg, WithEngine(eng), WithJobs(2)).Build(ctx, planAll(t, tree, nil), BuildOptions{})
		done <- built{res, err}
	}()
	eng.waitStarted(t, "slow")
	cancel()
	b := <-done
	if !errors.Is(b.err, context.Canceled) {
		t.Errorf("Build = %v, want context.Canceled", b.err)
	}
	want := map[string]string{"a": "verified", "slow": "skipped: cancelled", "later": "skipped: cancelled"}
	if got := outcomes(b.res); !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
}

// fakeRegistry records pulls and publishes; labels in fail fail.
type fakeRegistry struct {
	Registry
	creds bool
	fail  map[string]bool

	mu        sync.Mutex
	pulled    []string
	published []string
}

func (f *fakeRegistry) Credentials(context.Context) (bool, error) { return f.creds, nil }

func (f *fakeRegistry) Pull(_ context.Context, _ registry.Puller, label string, log io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pulled = append(f.pulled, label)
	fmt.Fprintf(log, "pulled %s\n", label)
	if f.fail[label] {
		return fmt.Errorf("pulling %s: manifest unknown", label)
	}
	return nil
}

func (f *fakeRegistry) Publish(_ context.Context, _ registry.Pusher, label string, _ io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail[label] {
		return errors.New("denied")
	}
	f.published = append(f.published, label)
	return nil
}

func TestBuildPulls(t *testing.T) {
	cfg := execConfig()
	cfg.BaseImages = []string{"base:1", "unused:2"}
	tree := execTree(t, cfg,
		execImage{name: "on-base", body: `RUN echo {{ "base" | image_tag }}`},
		execImage{name: "after-base", depends: "on-base"},
		execImage{name: "pub"},
		execImage{name: "on-pub", depends: "pub"},
		execImage{name: "alone"},
	)
	states := States{"pub": {State: Published}}
	reg := &fakeRegistry{fail: map[string]bool{"base:1": true}}
	b := builderFor(t, tree, cfg, WithEngine(newFakeDocker()), withRegistry(reg))
	res, err := b.Build(t.Context(), planFrom(t, b, states, "*", sources{remote: in(), pull: true}), BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"on-base":    "failed at pull",
		"after-base": "skipped: parent on-base failed",
		"on-pub":     "verified",
		"alone":      "verified",
	}
	if got := outcomes(res); !reflect.DeepEqual(got, want) {
		t.Errorf("outcomes %v, want %v", got, want)
	}
	slices.Sort(reg.pulled)
	if want := []string{"base:1", "pub:1.0-1", "unused:2"}; !reflect.DeepEqual(reg.pulled, want) {
		t.Errorf("pulled %v, want each base image and published parent once: %v", reg.pulled, want)
	}
	if res.Pulls["base:1"] == nil || res.Pulls["unused:2"] != nil || len(res.Pulls) != 3 {
		t.Errorf("Pulls = %v", res.Pulls)
	}
}

func TestPublish(t *testing.T) {
	cfg := execConfig()
	tree := execTree(t, cfg,
		execImage{name: "new"},
		execImage{name: "broken"},
		execImage{name: "old"},
		execImage{name: "old-failing", test: "exit 1"},
		execImage{name: "elsewhere"},
	)
	byName := func(n string) *image.Image { return tree.Image(n) }
	res := &Result{Images: []ImageResult{
		{Image: byName("new"), Phase: PhaseVerified},
		{Image: byName("broken"), Phase: PhaseFailed},
	}}
	allGood := &Result{Images: []ImageResult{{Image: byName("new"), Phase: PhaseVerified}}}
	states := States{"old": {State: Built}, "old-failing": {State: Built}, "elsewhere": {State: Published}}
	oldOnly := States{"old": {State: Built}}

	tests := []struct {
		name      string
		reg       Registry
		res       *Result
		states    States
		opts      PublishOptions
		wantErr   error
		outcomes  map[string]string
		published []string
	}{
		{name: "no registry", reg: nil, res: res, states: states, wantErr: registry.ErrNoCredentials},
		{name: "no credentials", reg: &fakeRegistry{}, res: res, states: states, wantErr: registry.ErrNoCredentials},
		{
			name: "earlier builds verified first", reg: &fakeRegistry{creds: true}, res: res, states: states,
			outcomes:  map[string]string{"new": "published", "old": "published", "old-failing": "failed at verify"},
			published: []string{"new:1.0-1", "old:1.0-1"},
		},
		{
			name: "push fails", reg: &fakeRegistry{creds: true, fail: map[string]bool{"old:1.0-1": true}}, res: allGood, states: oldOnly,
			outcomes:  map[string]string{"new": "published", "old": "failed at publish"},
			published: []string{"new:1.0-1"},
		},
		{
			name: "atomic with a failed build", reg: &fakeRegistry{creds: true}, res: res, states: oldOnly, opts: PublishOptions{Atomic: true},
			wantErr: ErrIncomplete, outcomes: map[string]string{"new": "verified", "old": "verified"},
		},
		{
			name: "atomic with a failing earlier build", reg: &fakeRegistry{creds: true}, res: allGood, states: states, opts: PublishOptions{Atomic: true},
			wantErr: ErrIncomplete, outcomes: map[string]string{"new": "verified", "old": "verified", "old-failing": "failed at verify"},
		},
		{
			name: "atomic and all verified", reg: &fakeRegistry{creds: true}, res: allGood, states: oldOnly, opts: PublishOptions{Atomic: true},
			outcomes:  map[string]string{"new": "published", "old": "published"},
			published: []string{"new:1.0-1", "old:1.0-1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := builderFor(t, tree, cfg, WithEngine(newFakeDocker()), withRegistry(tt.reg))
			got, err := b.Publish(t.Context(), planAll(t, tree, tt.states), tt.res, tt.opts)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Publish = %v, want %v", err, tt.wantErr)
			}
			if tt.outcomes != nil || len(got) > 0 {
				if o := outcomes(&Result{Images: got}); !reflect.DeepEqual(o, tt.outcomes) {
					t.Errorf("outcomes %v, want %v", o, tt.outcomes)
				}
			}
			if fr, ok := tt.reg.(*fakeRegistry); ok {
				slices.Sort(fr.published)
				if !reflect.DeepEqual(fr.published, tt.published) {
					t.Errorf("published %v, want %v", fr.published, tt.published)
				}
			}
		})
	}
}

func TestLogLinesStayWhole(t *testing.T) {
	var out bytes.Buffer
	log := &lineLog{w: &out}
	const writers, lines = 8, 300
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			pw := log.writer(fmt.Sprint("img", w))
			var text strings.Builder
			for l := range lines {
				fmt.Fprintf(&text, "line %d of writer %d\n", l, w)
			}
			// Odd-sized pieces, so lines arrive split across writes.
			s := text.String()
			for len(s) > 0 {
				n := min(len(s), 7+w)
				pw.Write([]byte(s[:n]))
				s = s[n:]
			}
			pw.Write([]byte("unfinished"))
			pw.Close()
		})
	}
	wg.Wait()
	valid := regexp.MustCompile(`^\[img(\d)\] (line (\d+) of writer (\d)|unfinished)$`)
	next := map[string]int{}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		m := valid.FindStringSubmatch(line)
		if m == nil || (m[2] != "unfinished" && m[1] != m[4]) {
			t.Fatalf("line mixes writers or is cut: %q", line)
		}
		if m[2] == "unfinished" {
			next[m[1]] = -1
			continue
		}
		if fmt.Sprint(next[m[1]]) != m[3] {
			t.Fatalf("writer %s: line %q out of order", m[1], line)
		}
		next[m[1]]++
	}
	for w := range writers {
		if next[fmt.Sprint(w)] != -1 {
			t.Errorf("writer %d: last line missing", w)
		}
	}
}

// asking waits until image i of s is in acquire.
func asking(t *testing.T, s *slots, i int) {
	t.Helper()
	for {
		s.mu.Lock()
		st := s.state[i]
		s.mu.Unlock()
		if st == slotAsking || st == slotHolding {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func granted(s *slots, i int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state[i] == slotHolding
}

func TestSlotsGoInPlanOrder(t *testing.T) {
	ctx := t.Context()
	// 0 and 1 need nothing, 2 needs 0; one slot.
	s := newSlots(1, [][]int{{}, {}, {0}})
	got := make(chan int, 3)
	go func() {
		if _, err := s.acquire(ctx, 1); err == nil {
			got <- 1
		}
	}()
	asking(t, s, 1)
	if granted(s, 1) {
		t.Fatal("image 1 took the slot while image 0, before it in the plan, was about to ask")
	}
	if _, err := s.acquire(ctx, 0); err != nil {
		t.Fatal(err)
	}
	go func() {
		if _, err := s.acquire(ctx, 2); err == nil {
			got <- 2
		}
	}()
	asking(t, s, 2)
	s.finish(0, true)
	if first := <-got; first != 1 {
		t.Fatalf("image %d got the slot after image 0, want 1", first)
	}
	if granted(s, 2) {
		t.Fatal("two images hold the one slot")
	}
	s.finish(1, true)
	if next := <-got; next != 2 {
		t.Fatalf("got %d, want 2", next)
	}
}

func TestSlotsSkipImagesThatWillNotAsk(t *testing.T) {
	ctx := t.Context()
	// 1 needs 0, which fails: 2 must not wait for 1.
	s := newSlots(1, [][]int{{}, {0}, {}})
	if _, err := s.acquire(ctx, 0); err != nil {
		t.Fatal(err)
	}
	s.finish(0, false)
	done := make(chan error)
	go func() { _, err := s.acquire(ctx, 2); done <- err }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSlotsCancelledAcquireHoldsNothing(t *testing.T) {
	s := newSlots(1, [][]int{{}, {}, {}})
	if _, err := s.acquire(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { _, err := s.acquire(ctx, 1); done <- err }()
	asking(t, s, 1)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("acquire = %v, want context.Canceled", err)
	}
	s.finish(1, false)
	s.finish(0, true)
	go func() { _, err := s.acquire(t.Context(), 2); done <- err }()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSlotsNumbered(t *testing.T) {
	ctx := t.Context()
	s := newSlots(2, [][]int{{}, {}, {}, {}})
	acquire := func(i int) int {
		t.Helper()
		l, err := s.acquire(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		return l.slot
	}
	if a, b := acquire(0), acquire(1); a != 1 || b != 2 {
		t.Fatalf("images 0 and 1 got slots %d and %d, want 1 and 2", a, b)
	}
	s.finish(0, true)
	if c := acquire(2); c != 1 {
		t.Errorf("image 2 got slot %d, want 1, the one image 0 gave back", c)
	}
	s.finish(1, true)
	if d := acquire(3); d != 2 {
		t.Errorf("image 3 got slot %d, want 2, the one image 1 gave back", d)
	}
}
