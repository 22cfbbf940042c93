package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/registry"
	"golang.org/x/sync/errgroup"
)

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
	// Slot is the build slot the image holds in Build while it builds and
	// verifies, 1 to WithJobs (to the builder's jobs on a fleet): the
	// images of one slot never overlap, so each slot is a lane of the
	// run's timeline. 0 when it holds none: skipped, failed before it got
	// one (a pull), and in Publish.
	Slot int
	// Builder names the builder of builders: the slot is on; "" for the
	// local engine.
	Builder string
	// Platform, for an image built for several platforms, is the one
	// being verified (verifying) or that failed its test.
	Platform string
	// Time is when the change happened.
	Time time.Time
}

// ImageResult is what became of one image.
type ImageResult struct {
	Image    *image.Image
	Phase    Phase  // after Build: verified, failed or skipped
	Reason   string // as Event.Reason
	Err      error  // as Event.Err
	Duration time.Duration
	Size     int64  // bytes, of the image built; 0 when none was
	ID       string // image ID (config digest) of the image built; "" when none was
	// Start is when its work started (zero when it never did), and Slot
	// the build slot it held, as Event.Slot, on Builder (as
	// Event.Builder).
	Start   time.Time
	Slot    int
	Builder string
	// Held is how long it held its slot: on a fleet, the build, its test
	// running on this machine after; else Duration.
	Held time.Duration
	// Digest is the manifest (or index) a builder elsewhere pushed, by
	// digest and without a tag: Image.Repo@Digest. Publish tags it. ""
	// for the local engine.
	Digest string
	// Platforms has one result per platform the image was built for,
	// when it was built for a list of them, in the order verified.
	Platforms []PlatformResult
}

// PlatformResult is what became of one platform of an image built for
// several.
type PlatformResult struct {
	Platform string
	ID       string // image ID (config digest) for that platform
	Size     int64  // bytes, in the local engine once pulled; 0 if unknown
	Phase    Phase  // verified or failed; skipped when an earlier one failed
	Reason   string
	Err      error
	Duration time.Duration // of its verification
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

// BuildOptions says how Build works.
type BuildOptions struct {
	// FailFast stops the run at the first failure: the images being built
	// are interrupted and every other one is skipped ("cancelled").
	// Default: keep going; only the descendants of a failed image are
	// skipped.
	FailFast bool
	// Cache lets the backend use its build cache (--use-cache). Default:
	// every step runs again.
	Cache bool
}

// ErrNoEngine is matched (errors.Is) by the error of what needs a Docker
// daemon when the Builder has none.
var ErrNoEngine = errors.New("no Docker daemon")

// errFailFast is why a fail-fast run cancels the images still running.
var errFailFast = errors.New("an image failed and fail-fast is set")

// Build renders, builds and verifies the images of plan's build chain, as
// many at once as WithJobs allows, each after its parents. An image that
// fails has its descendants skipped while independent images go on (see
// FailFast). With one job at a time images build in plan order. When the
// plan pulls, every base_images entry and each published parent of an
// image to build is pulled first; an image whose pull fails fails.
//
// Build returns an error without building anything when the backend
// cannot be had (no daemon, an invalid builder configuration) or an image
// of the chain has a symbolic link Build will not follow (image.ErrLink),
// and the
// partial result with ctx's error when ctx is cancelled: the images being
// built are then interrupted, their temporary contexts and containers
// removed. Failed images are in the Result, not the error.
//
// Before anything else, Build removes the temporary build contexts that
// runs killed with SIGKILL left behind (image.RemoveStaleContexts).
func (b *Builder) Build(ctx context.Context, plan *Plan, opts BuildOptions) (*Result, error) {
	if b.engine == nil {
		return nil, ErrNoEngine
	}
	if err := image.ValidateBuilder(b.cfg); err != nil {
		return nil, err
	}
	chain := plan.Chain()
	if err := checkLinks(ctx, chain); err != nil {
		return nil, err
	}
	f, closeFleet, err := b.connect(ctx, chain)
	if err != nil {
		return nil, err
	}
	defer closeFleet()
	removed, err := image.RemoveStaleContexts()
	if err != nil {
		b.logger.Warn("cleaning up", "error", err)
	}
	if len(removed) > 0 {
		b.logger.Info("removed the build contexts of runs that were killed", "count", len(removed))
	}
	r := &run{
		b: b, o: opts, fleet: f, log: &lineLog{w: b.log}, plan: plan,
		revision: image.Revision(ctx, b.tree.Dir),
		chain:    chain,
		index:    make(map[string]int, len(chain)),
		done:     make([]chan struct{}, len(chain)),
		results:  make([]ImageResult, len(chain)),
		causes:   make([]string, len(chain)),
		pulls:    map[string]*pull{},
		handover: handover{pushed: map[string]registry.Image{}},
	}
	for i, img := range chain {
		r.index[img.Name] = i
		r.done[i] = make(chan struct{})
		r.results[i].Image = img
	}
	parents := r.chainParents()
	var order []int
	if f.remote {
		order = criticalOrder(parents)
	}
	r.slots = newPoolSlots(f.pools, parents, order)
	r.verifying = make(chan struct{}, b.jobs)
	r.slots.fits = func(i, p int) bool { return f.fits(b.platformsOf(chain[i]), p) }
	r.slots.unfit = func(i int) error { return f.unfit(b.platformsOf(chain[i])) }

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

// checkLinks refuses, before anything is built, a chain holding an image
// whose folder has a symbolic link that points outside the repository or
// nowhere: every such link is named, with its target.
func checkLinks(ctx context.Context, chain []*image.Image) error {
	var errs []error
	for _, img := range chain {
		if err := image.CheckLinks(ctx, img.Dir, img.Root); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("nothing built: %w", errors.Join(errs...))
	}
	return nil
}

// run is one Build: what its goroutines share.
type run struct {
	b     *Builder
	o     BuildOptions
	fleet *fleet
	log   *lineLog
	plan  *Plan
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
	// handover holds, on a fleet, what each image built was pushed as.
	handover handover
	// verifying bounds, on a fleet, the tests run at once on this
	// machine (WithJobs): a builder's slot is given back once the image
	// is pushed, its test runs here.
	verifying chan struct{}

	emitMu sync.Mutex
}

// chainParents gives, for each image of the chain, the positions of its
// parents that are in the chain too.
func (r *run) chainParents() [][]int {
	out := make([][]int, len(r.chain))
	for i, img := range r.chain {
		for _, p := range r.b.tree.Parents(img.Name) {
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
	// Builders elsewhere take what they build on from the registry.
	if !r.plan.Pull() || len(r.chain) == 0 || r.fleet.remote {
		return
	}
	labels := slices.Clone(r.b.cfg.BaseImages)
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
			p.err = r.b.reg.Pull(ctx, r.b.engine, label, w)
			return nil
		})
	}
}

func (r *run) publishedParents(img *image.Image) []string {
	var out []string
	for _, p := range r.b.tree.Parents(img.Name) {
		if _, inChain := r.index[p.Name]; !inChain && r.plan.states[p.Name].State == Published {
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
	if r.plan.Pull() && !r.fleet.remote {
		needs := append(r.b.tree.Bases(img.Name), r.publishedParents(img)...)
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
	// A builder lost mid-build gives its image back: it is tried once
	// more, on another builder.
	for attempt := 1; ; attempt++ {
		l, err := r.slots.acquire(ctx, i)
		switch {
		case errors.Is(err, errNoPool):
			r.fail(i, &image.BuildError{Image: img.Label(), Stage: image.StageBuild, Err: err}, 0)
			return
		case err != nil:
			r.skip(i, "")
			return
		}
		var retry bool
		ok, retry = r.work(ctx, i, l, attempt)
		if !retry {
			return
		}
	}
}

// work renders, builds and verifies image i, holding the slot l. retry
// is true when l's builder was lost meanwhile, for the first time for i:
// the slot is given back, the builder marked lost, and i is to be built
// again elsewhere.
func (r *run) work(ctx context.Context, i int, l lane, attempt int) (ok, retry bool) {
	img, res := r.chain[i], &r.results[i]
	name := r.fleet.pools[l.pool].name
	start := r.emit(Event{Image: img, Phase: PhaseBuilding, Slot: l.slot, Builder: name})
	res.Start, res.Slot, res.Builder = start, l.slot, name
	log := r.log.writer(img.Name)
	defer log.Close()
	err := r.buildAndVerify(ctx, i, res, log, start, l)
	res.Duration = time.Since(start)
	if res.Held == 0 {
		res.Held = res.Duration
	}
	if errors.Is(err, image.ErrBuilderLost) && ctx.Err() == nil && attempt == 1 {
		var lost *image.LostError
		errors.As(err, &lost)
		r.b.warnf("%v, while building %s: building it again on another builder", r.b.redact(lost), img.Name)
		fmt.Fprintf(log, "builder %s lost: building again elsewhere: %v\n", name, err)
		r.slots.lost(i)
		*res = ImageResult{Image: img}
		return false, true
	}
	switch {
	case err == nil:
		res.Phase = PhaseVerified
		r.emit(Event{Image: img, Phase: PhaseVerified, Reason: res.Reason, Elapsed: res.Duration, Slot: l.slot, Builder: name})
		return true, false
	case ctx.Err() != nil:
		// Interrupted (fail-fast or the caller): the error is the
		// interruption's, not the image's.
		fmt.Fprintf(log, "interrupted: %v\n", err)
		r.skip(i, "")
	default:
		fmt.Fprintf(log, "FAILED: %v\n", err)
		r.fail(i, err, res.Duration)
	}
	return false, false
}

func (r *run) buildAndVerify(ctx context.Context, i int, res *ImageResult, log io.Writer, start time.Time, l lane) error {
	img := r.chain[i]
	if r.fleet.remote {
		return r.buildRemote(ctx, i, res, log, start, l)
	}
	fmt.Fprintf(log, "building %s from %s\n", img.Label(), img.Dir)
	rendered, err := r.b.renderImage(ctx, img)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "rendered %s:\n%s\n", image.TemplateFile, rendered.Dockerfile)
	if rendered.BuildDockerfile != nil {
		fmt.Fprintf(log, "rendered %s:\n%s\n", image.BuildTemplateFile, rendered.BuildDockerfile)
	}
	// The record travels as labels through the build API: the rendered
	// Dockerfile stays byte for byte the reference's.
	rec, err := r.b.record(ctx, rendered, r.revision)
	if err != nil {
		return err
	}
	built, err := r.b.buildImage(ctx, r.fleet.backends[l.pool], rendered, rec, r.o.Cache, log)
	if err != nil {
		return err
	}
	res.ID = built.ID
	if info, err := r.b.engine.ImageInspect(ctx, built.ID); err == nil {
		res.Size = info.Size
	} else {
		fmt.Fprintf(log, "cannot tell the size of %s: %v\n", img.Label(), err)
	}
	r.emit(Event{Image: img, Phase: PhaseBuilt, Elapsed: time.Since(start), Slot: res.Slot, Builder: res.Builder})
	skipped, err := r.b.verify(ctx, img, log)
	if skipped {
		res.Reason = "no test"
	}
	return err
}

func (r *run) fail(i int, err error, elapsed time.Duration) {
	img, res := r.chain[i], &r.results[i]
	res.Phase, res.Err, res.Reason = PhaseFailed, err, err.Error()
	r.causes[i] = img.Name
	r.emit(Event{Image: img, Phase: PhaseFailed, Reason: res.Reason, Err: err, Elapsed: elapsed, Slot: res.Slot, Builder: res.Builder})
	if r.o.FailFast {
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

// emit stamps e with the time, which never goes back from one event to
// the next, delivers it and returns the time.
func (r *run) emit(e Event) time.Time {
	r.emitMu.Lock()
	defer r.emitMu.Unlock()
	e.Time = time.Now()
	if r.b.events != nil {
		r.b.events(e)
	}
	return e.Time
}
