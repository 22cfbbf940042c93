package builder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/registry"
	"golang.org/x/sync/errgroup"
)

// ErrIncomplete is matched (errors.Is) by the error of a WithAtomic
// Publish that published nothing because some image was not verified.
var ErrIncomplete = errors.New("not every image was built and verified: publishing nothing")

// PublishOptions says how Publish works.
type PublishOptions struct {
	// Atomic publishes nothing unless every image of the build was verified
	// and every image left built by an earlier run passes its test.
	// Default: publish every image that is verified.
	Atomic bool
}

// Publish is the publish step of a run. With credentials for the registry,
// it first verifies the images the plan says are built, left by earlier
// runs, as the reference does for the whole tree, then publishes every
// verified image, those and the ones res verified, each as its tag and
// latest, up to WithJobs at a time. It returns one result per image it
// verified or published, in tree order: PhasePublished, or PhaseFailed
// with the stage that failed.
//
// Without credentials (or a registry) it publishes nothing and returns an
// error matching registry.ErrNoCredentials. With Atomic and any image not
// verified it publishes nothing and returns ErrIncomplete with the
// verification results.
func (b *Builder) Publish(ctx context.Context, plan *Plan, res *Result, opts PublishOptions) ([]ImageResult, error) {
	found := false
	if b.reg != nil {
		var err error
		if found, err = b.reg.Credentials(ctx); err != nil {
			return nil, fmt.Errorf("publishing: %w", err)
		}
	}
	if !found {
		return nil, fmt.Errorf("publishing: %w", registry.ErrNoCredentials)
	}
	if b.engine == nil {
		return nil, fmt.Errorf("publishing: %w", ErrNoEngine)
	}
	p := &publisher{b: b, log: &lineLog{w: b.log}}

	built := map[string]bool{}
	digests := map[string]string{}
	for _, ir := range res.Images {
		if ir.Phase == PhaseVerified {
			built[ir.Image.Name] = true
			digests[ir.Image.Name] = ir.Digest
		}
	}
	var results []*ImageResult
	for _, img := range b.tree.Images {
		if built[img.Name] || plan.states[img.Name].State == Built {
			results = append(results, &ImageResult{Image: img, Phase: PhaseVerified, Digest: digests[img.Name]})
		}
	}

	// Images left built by earlier runs are verified first.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	for _, ir := range results {
		if built[ir.Image.Name] {
			continue
		}
		g.Go(func() error {
			p.verify(gctx, ir)
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return collect(results), err
	}
	if opts.Atomic && (res.Failed() > 0 || failed(results)) {
		return collect(results), ErrIncomplete
	}

	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(b.jobs)
	for _, ir := range results {
		if ir.Phase != PhaseVerified {
			continue
		}
		g.Go(func() error {
			p.publish(gctx, ir)
			return gctx.Err()
		})
	}
	err := g.Wait()
	return collect(results), err
}

type publisher struct {
	b      *Builder
	log    *lineLog
	emitMu sync.Mutex
}

func (p *publisher) verify(ctx context.Context, ir *ImageResult) {
	start := time.Now()
	p.emit(Event{Image: ir.Image, Phase: PhaseVerifying})
	w := p.log.writer(ir.Image.Name)
	defer w.Close()
	skipped, err := p.b.verify(ctx, ir.Image, w)
	ir.Duration = time.Since(start)
	if err != nil {
		ir.Phase, ir.Err, ir.Reason = PhaseFailed, err, err.Error()
		p.emit(Event{Image: ir.Image, Phase: PhaseFailed, Reason: ir.Reason, Err: err, Elapsed: ir.Duration})
		return
	}
	if skipped {
		ir.Reason = "no test"
	}
	p.emit(Event{Image: ir.Image, Phase: PhaseVerified, Reason: ir.Reason, Elapsed: ir.Duration})
}

func (p *publisher) publish(ctx context.Context, ir *ImageResult) {
	start := time.Now()
	p.emit(Event{Image: ir.Image, Phase: PhasePublishing})
	w := p.log.writer(ir.Image.Name)
	defer w.Close()
	var err error
	if ir.Digest != "" {
		// Pushed by a builder, by digest: the verified manifest gets its
		// tags, nothing is uploaded again.
		ref := registry.DigestRef(ir.Image.Label(), ir.Digest)
		fmt.Fprintf(w, "tagging %s as %s and latest\n", ref, ir.Image.Tag)
		err = p.b.reg.Tag(ctx, ref, ir.Image.Tag, "latest")
	} else {
		err = p.b.reg.Publish(ctx, p.b.engine, ir.Image.Label(), w)
	}
	elapsed := time.Since(start)
	if err != nil {
		err = &image.BuildError{Image: ir.Image.Label(), Stage: StagePublish, Err: err}
		ir.Phase, ir.Err, ir.Reason = PhaseFailed, err, err.Error()
		fmt.Fprintf(w, "FAILED: %v\n", err)
		p.emit(Event{Image: ir.Image, Phase: PhaseFailed, Reason: ir.Reason, Err: err, Elapsed: elapsed})
		return
	}
	ir.Phase, ir.Reason = PhasePublished, ""
	p.emit(Event{Image: ir.Image, Phase: PhasePublished, Elapsed: elapsed})
}

func (p *publisher) emit(e Event) {
	if p.b.events == nil {
		return
	}
	p.emitMu.Lock()
	defer p.emitMu.Unlock()
	e.Time = time.Now()
	p.b.events(e)
}

func failed(results []*ImageResult) bool {
	for _, ir := range results {
		if ir.Phase == PhaseFailed {
			return true
		}
	}
	return false
}

func collect(results []*ImageResult) []ImageResult {
	out := make([]ImageResult, len(results))
	for i, ir := range results {
		out[i] = *ir
	}
	return out
}
