package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/dockerfile"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"
)

// Engine is the part of the Docker Engine API a run uses, with the pinned
// moby client's signatures: a *client.Client is one.
type Engine interface {
	image.Engine
	image.Puller
	image.Pusher
	ImageInspector
}

var _ Engine = (*client.Client)(nil)

// Registry is what a run needs of the registry. An *image.Registry is one,
// a nil one included: no credentials, nothing to pull.
type Registry interface {
	Credentials(ctx context.Context) (bool, error)
	Pull(ctx context.Context, eng image.Puller, label string, log io.Writer) error
	Publish(ctx context.Context, eng image.Pusher, img *image.Image, log io.Writer) error
}

var _ Registry = (*image.Registry)(nil)

// Stages of an image's work besides those of image.Build and image.Verify.
const (
	StagePull    image.Stage = "pull"    // pulling a base image or a published parent
	StagePublish image.Stage = "publish" // tagging and pushing
)

// Phase is how far an image got in a run. Events report every change.
type Phase string

// The phases, in the order an image goes through them.
const (
	PhaseBuilding   Phase = "building"   // rendering, building, then verifying
	PhaseBuilt      Phase = "built"      // in the local daemon, not verified yet
	PhaseVerifying  Phase = "verifying"  // Publish: testing an image built by an earlier run
	PhaseVerified   Phase = "verified"   // built and its test passed, or it has none
	PhasePublishing Phase = "publishing" // tagging latest and pushing
	PhasePublished  Phase = "published"  // pushed, its tag and latest
	PhaseFailed     Phase = "failed"     // Err says at which stage and why
	PhaseSkipped    Phase = "skipped"    // never tried: a parent failed, or the run was cancelled
)

// Event is one change of an image's phase.
type Event struct {
	Image *image.Image
	Phase Phase
	// Reason: for failed, the error; for skipped, "parent X failed" or
	// "cancelled"; for verified, "no test" when there was none to run.
	Reason string
	// Err is the failure, an *image.BuildError: its Tail holds the last
	// lines of the failing stage's log.
	Err error
	// Elapsed is the time since the image started building (or, in
	// Publish, started verifying or publishing).
	Elapsed time.Duration
}

// ImageResult is what became of one image.
type ImageResult struct {
	Image    *image.Image
	Phase    Phase  // after Build: verified, failed or skipped
	Reason   string // as Event.Reason
	Err      error  // as Event.Err
	Duration time.Duration
	Size     int64 // bytes, of the image built; 0 when none was
}

// Result is what a Build did.
type Result struct {
	Images []ImageResult // the build chain, in plan order
	// Pulls holds every image pulled before building and its error, nil
	// for a pull that worked.
	Pulls map[string]error
}

// Failed counts the images that were not verified.
func (r *Result) Failed() int {
	n := 0
	for _, ir := range r.Images {
		if ir.Phase != PhaseVerified {
			n++
		}
	}
	return n
}

// BuildOption changes how Build and Publish work.
type BuildOption func(*buildOptions)

type buildOptions struct {
	jobs     int
	failFast bool
	cache    bool
	atomic   bool
	events   func(Event)
	log      io.Writer
	pull     Registry
	states   States
}

// WithJobs sets how many images are rendered, built and verified at once
// (and published, in Publish). Default: runtime.NumCPU(). Below 1 is an
// error.
func WithJobs(n int) BuildOption {
	return func(o *buildOptions) { o.jobs = n }
}

// WithFailFast stops the run at the first failure: the images being built
// are interrupted and every other one is skipped ("cancelled"). Default:
// keep going; only the descendants of a failed image are skipped.
func WithFailFast() BuildOption {
	return func(o *buildOptions) { o.failFast = true }
}

// WithCache lets the daemon use its build cache (--use-cache). Default:
// every step runs again.
func WithCache() BuildOption {
	return func(o *buildOptions) { o.cache = true }
}

// WithAtomic makes Publish publish nothing unless every image of the build
// was verified and every image left built by an earlier run passes its
// test. Default: publish every image that is verified.
func WithAtomic() BuildOption {
	return func(o *buildOptions) { o.atomic = true }
}

// WithEvents calls f on every change of an image's phase, one call at a
// time. Default: nothing is called.
func WithEvents(f func(Event)) BuildOption {
	return func(o *buildOptions) { o.events = f }
}

// WithLog sends the full output of every render, build, verify, pull and
// push to w, each line whole and prefixed with "[short name] ", so that
// parallel builds never interleave within a line. Default: discarded.
func WithLog(w io.Writer) BuildOption {
	return func(o *buildOptions) { o.log = w }
}

// WithPull pulls, from reg, every base_images entry and each parent of an
// image to build that states say is published, before that image builds
// (nothing when there is nothing to build). An image whose pull fails
// fails, and its descendants are skipped. Default: nothing is pulled.
func WithPull(reg Registry, states States) BuildOption {
	return func(o *buildOptions) { o.pull, o.states = reg, states }
}

// CheckOptions says whether opts are valid: Build and Publish fail with the
// same error. Callers check early, before any work.
func CheckOptions(opts ...BuildOption) error {
	_, err := newBuildOptions(opts)
	return err
}

func newBuildOptions(opts []BuildOption) (buildOptions, error) {
	o := buildOptions{jobs: runtime.NumCPU(), log: io.Discard}
	for _, opt := range opts {
		opt(&o)
	}
	if o.jobs < 1 {
		return o, fmt.Errorf("jobs: want at least 1 image at a time, got %d", o.jobs)
	}
	if o.log == nil {
		o.log = io.Discard
	}
	return o, nil
}

// errFailFast is why a fail-fast run cancels the images still running.
var errFailFast = errors.New("an image failed and fail-fast is set")

// Build renders, builds and verifies the images of plan's build chain, as
// many at once as WithJobs allows, each after its parents. An image that
// fails has its descendants skipped while independent images go on (see
// WithFailFast). With one job at a time images build in plan order.
//
// Build returns an error without building anything when the options or
// the builder configuration are invalid, and the partial result with
// ctx's error when ctx is cancelled: the images being built are then
// interrupted, their temporary contexts and containers removed. Failed
// images are in the Result, not the error.
func Build(ctx context.Context, t *Tree, plan *Plan, eng Engine, cfg *config.Config, opts ...BuildOption) (*Result, error) {
	o, err := newBuildOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := image.ValidateBuilder(cfg); err != nil {
		return nil, err
	}
	build, err := builderFor(eng, cfg)
	if err != nil {
		return nil, err
	}
	log := &lineLog{w: o.log}
	warnings := log.writer("render")
	defer warnings.Close()
	render, err := dockerfile.New(cfg, repoLabels(t), dockerfile.WithLogger(slog.New(slog.NewTextHandler(warnings, nil))))
	if err != nil {
		return nil, err
	}

	chain := plan.Chain()
	r := &run{
		tree: t, cfg: cfg, eng: eng, o: o, build: build, render: render, log: log,
		revision: image.Revision(ctx, t.Dir),
		chain:    chain,
		index:    make(map[string]int, len(chain)),
		done:     make([]chan struct{}, len(chain)),
		results:  make([]ImageResult, len(chain)),
		causes:   make([]string, len(chain)),
		pulls:    map[string]*pull{},
	}
	for i, img := range chain {
		r.index[img.Name] = i
		r.done[i] = make(chan struct{})
		r.results[i].Image = img
	}
	r.slots = newSlots(o.jobs, r.chainParents())

	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.cancel = cancel
	var g errgroup.Group
	r.startPulls(runCtx, &g)
	for i := range chain {
		g.Go(func() error {
			r.image(runCtx, i)
			return nil
		})
	}
	g.Wait()

	res := &Result{Images: r.results, Pulls: map[string]error{}}
	for label, p := range r.pulls {
		res.Pulls[label] = p.err
	}
	return res, ctx.Err()
}

// buildFunc builds one image with the configured builder.
type buildFunc func(ctx context.Context, img *image.Image, opts image.BuildOptions) (string, error)

func builderFor(eng Engine, cfg *config.Config) (buildFunc, error) {
	switch cfg.Builder {
	case "", "classic":
		return func(ctx context.Context, img *image.Image, opts image.BuildOptions) (string, error) {
			return image.Build(ctx, eng, img, opts)
		}, nil
	case "buildkit":
		kit, ok := eng.(image.BuildKitEngine)
		if !ok {
			return nil, errors.New("builder buildkit: this Docker client cannot open a BuildKit session")
		}
		return func(ctx context.Context, img *image.Image, opts image.BuildOptions) (string, error) {
			return image.BuildKit(ctx, kit, img, opts, cfg.Secrets)
		}, nil
	}
	return nil, fmt.Errorf("builder: want classic or buildkit, got %q", cfg.Builder)
}

// repoLabels maps every scanned image's repository to its full label, as
// the image_tag helper looks them up.
func repoLabels(t *Tree) map[string]string {
	out := make(map[string]string, len(t.Images))
	for _, img := range t.Images {
		out[img.Repo] = img.Label()
	}
	return out
}

// run is one Build: what its goroutines share.
type run struct {
	tree   *Tree
	cfg    *config.Config
	eng    Engine
	o      buildOptions
	build  buildFunc
	render *dockerfile.Renderer
	log    *lineLog
	// revision is the git commit of the definitions, for build records.
	revision string
	cancel   context.CancelCauseFunc

	chain []*image.Image
	index map[string]int // short name -> position in chain
	// done[i] is closed when image i has its final result: results[i] and
	// causes[i] are written only before that, and read only after.
	done    []chan struct{}
	results []ImageResult
	causes  []string // the failed image that made an image fail or skip
	slots   *slots
	pulls   map[string]*pull // written before any image starts

	emitMu sync.Mutex
}

// chainParents gives, for each image of the chain, the positions of its
// parents that are in the chain too.
func (r *run) chainParents() [][]int {
	out := make([][]int, len(r.chain))
	for i, img := range r.chain {
		for _, p := range r.tree.Parents(img.Name) {
			if j, ok := r.index[p.Name]; ok {
				out[i] = append(out[i], j)
			}
		}
	}
	return out
}

// pull is a future: one pull of one image, however many images wait on it.
type pull struct {
	done chan struct{}
	err  error
}

// startPulls starts pulling every image that some image of the chain may
// need: base_images, and the published parents of images to build.
func (r *run) startPulls(ctx context.Context, g *errgroup.Group) {
	if r.o.pull == nil || len(r.chain) == 0 {
		return
	}
	labels := slices.Clone(r.cfg.BaseImages)
	for _, img := range r.chain {
		labels = append(labels, r.publishedParents(img)...)
	}
	slices.Sort(labels)
	for _, label := range slices.Compact(labels) {
		p := &pull{done: make(chan struct{})}
		r.pulls[label] = p
		g.Go(func() error {
			defer close(p.done)
			w := r.log.writer("pull " + label)
			defer w.Close()
			p.err = r.o.pull.Pull(ctx, r.eng, label, w)
			return nil
		})
	}
}

func (r *run) publishedParents(img *image.Image) []string {
	var out []string
	for _, p := range r.tree.Parents(img.Name) {
		if _, inChain := r.index[p.Name]; !inChain && r.o.states[p.Name].State == Published {
			out = append(out, p.Label())
		}
	}
	return out
}

// image waits for img's parents and pulls, then for a slot, then does its
// work. Whatever happens it leaves a final result.
func (r *run) image(ctx context.Context, i int) {
	img := r.chain[i]
	ok := false
	defer func() {
		r.slots.finish(i, ok)
		close(r.done[i])
	}()
	for _, j := range r.slots.parents[i] {
		select {
		case <-r.done[j]:
		case <-ctx.Done():
			r.skip(i, "")
			return
		}
		if r.results[j].Phase != PhaseVerified {
			r.skip(i, r.causes[j])
			return
		}
	}
	if r.o.pull != nil {
		needs := append(r.tree.Bases(img.Name), r.publishedParents(img)...)
		for _, label := range needs {
			p := r.pulls[label]
			if p == nil {
				continue // a base image only a template names: not in base_images
			}
			select {
			case <-p.done:
			case <-ctx.Done():
				r.skip(i, "")
				return
			}
			if p.err != nil {
				r.fail(i, &image.BuildError{Image: img.Label(), Stage: StagePull, Err: p.err}, 0)
				return
			}
		}
	}
	if err := r.slots.acquire(ctx, i); err != nil {
		r.skip(i, "")
		return
	}
	ok = r.work(ctx, i)
}

// work renders, builds and verifies image i, holding a slot.
func (r *run) work(ctx context.Context, i int) bool {
	img, res := r.chain[i], &r.results[i]
	start := time.Now()
	r.emit(Event{Image: img, Phase: PhaseBuilding})
	log := r.log.writer(img.Name)
	defer log.Close()
	err := r.buildAndVerify(ctx, img, res, log, start)
	res.Duration = time.Since(start)
	switch {
	case err == nil:
		res.Phase = PhaseVerified
		r.emit(Event{Image: img, Phase: PhaseVerified, Reason: res.Reason, Elapsed: res.Duration})
		return true
	case ctx.Err() != nil:
		// Interrupted (fail-fast or the caller): the error is the
		// interruption's, not the image's.
		fmt.Fprintf(log, "interrupted: %v\n", err)
		r.skip(i, "")
	default:
		fmt.Fprintf(log, "FAILED: %v\n", err)
		r.fail(i, err, res.Duration)
	}
	return false
}

func (r *run) buildAndVerify(ctx context.Context, img *image.Image, res *ImageResult, log io.Writer, start time.Time) error {
	fmt.Fprintf(log, "building %s from %s\n", img.Label(), img.Dir)
	opts := image.BuildOptions{
		NoCache:   !r.o.cache,
		HTTPProxy: r.cfg.HTTPProxy,
		Limits:    r.cfg.ContainerLimits,
		Log:       log,
	}
	var err error
	if opts.Dockerfile, err = r.renderFile(ctx, img, image.TemplateFile, log); err != nil {
		return err
	}
	if img.BuildStage {
		if opts.BuildDockerfile, err = r.renderFile(ctx, img, image.BuildTemplateFile, log); err != nil {
			return err
		}
	}
	// The record travels as labels through the build API: the rendered
	// Dockerfile stays byte for byte the reference's.
	rec, err := image.NewRecord(ctx, r.eng, img, opts.Dockerfile, opts.BuildDockerfile, r.revision)
	if err != nil {
		return &image.BuildError{Image: img.Label(), Stage: image.StageBuild, Err: err}
	}
	opts.Labels = rec.Labels()
	id, err := r.build(ctx, img, opts)
	if err != nil {
		return err
	}
	if info, err := r.eng.ImageInspect(ctx, id); err == nil {
		res.Size = info.Size
	} else {
		fmt.Fprintf(log, "cannot tell the size of %s: %v\n", img.Label(), err)
	}
	r.emit(Event{Image: img, Phase: PhaseBuilt, Elapsed: time.Since(start)})
	skipped, err := image.Verify(ctx, img, r.cfg.VerifyCommand, r.cfg.VerifyArgs, r.cfg.HTTPProxy, log)
	if skipped {
		res.Reason = "no test"
		fmt.Fprintln(log, "no test to run: verification skipped")
	}
	return err
}

// renderFile renders one template of img and, for the main Dockerfile,
// enforces force_numeric_user.
func (r *run) renderFile(ctx context.Context, img *image.Image, name string, log io.Writer) ([]byte, error) {
	path := filepath.Join(img.Dir, name)
	fail := func(err error) ([]byte, error) {
		return nil, &image.BuildError{Image: img.Label(), Stage: image.StageRender, Err: err}
	}
	out, err := r.render.RenderFile(ctx, path)
	if err != nil {
		return fail(err)
	}
	if name == image.TemplateFile && r.cfg.ForceNumericUser {
		if err := dockerfile.CheckNumericUser(out); err != nil {
			return fail(fmt.Errorf("%s, rendered: %w", path, err))
		}
	}
	fmt.Fprintf(log, "rendered %s:\n%s\n", name, out)
	return out, nil
}

func (r *run) fail(i int, err error, elapsed time.Duration) {
	img, res := r.chain[i], &r.results[i]
	res.Phase, res.Err, res.Reason = PhaseFailed, err, err.Error()
	r.causes[i] = img.Name
	r.emit(Event{Image: img, Phase: PhaseFailed, Reason: res.Reason, Err: err, Elapsed: elapsed})
	if r.o.failFast {
		r.cancel(errFailFast)
	}
}

// skip marks image i skipped because cause failed; "" means the run was
// cancelled.
func (r *run) skip(i int, cause string) {
	res := &r.results[i]
	res.Phase, res.Reason = PhaseSkipped, "cancelled"
	if cause != "" {
		res.Reason = "parent " + cause + " failed"
	}
	r.causes[i] = cause
	r.emit(Event{Image: r.chain[i], Phase: PhaseSkipped, Reason: res.Reason})
}

func (r *run) emit(e Event) {
	if r.o.events == nil {
		return
	}
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	r.o.events(e)
}
