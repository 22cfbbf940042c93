package builder

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/dockerfile"
	"github.com/docker-pkg/docker-pkg/image"
)

// scanTree scans dir as New does, for tests of the tree alone.
func scanTree(ctx context.Context, dir string, cfg *config.Config, n image.Naming, opts ...Option) (*Tree, error) {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	return scan(ctx, dir, cfg, n, o.strict, o.lenient, o.logger)
}

// builderFor is a Builder over an already scanned tree, as New makes it.
func builderFor(t testing.TB, tree *Tree, cfg *config.Config, opts ...Option) *Builder {
	t.Helper()
	o := options{jobs: 4, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = discard{}
	}
	r, err := dockerfile.New(cfg, repoLabels(tree), dockerfile.WithLogger(o.logger))
	if err != nil {
		t.Fatal(err)
	}
	return &Builder{
		cfg: cfg, tree: tree, engine: o.engine, reg: o.reg, backend: o.backend,
		jobs: o.jobs, logger: o.logger, log: o.log, events: o.events, render: r,
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// withRegistry sets a fake registry.
func withRegistry(r Registry) Option {
	return func(o *options) { o.reg = r }
}

// placeFunc is a place answering with a function.
type placeFunc func(ctx context.Context, label string) (found, error)

func (f placeFunc) find(ctx context.Context, label string) (found, error) { return f(ctx, label) }

// in is a place holding exactly the given labels, without records.
func in(labels ...string) place {
	return placeFunc(func(_ context.Context, label string) (found, error) {
		for _, l := range labels {
			if l == label {
				return found{ok: true, id: "id-of-" + l}, nil
			}
		}
		return found{}, nil
	})
}

// failing is a place that cannot be asked.
var failing place = placeFunc(func(context.Context, string) (found, error) {
	return found{}, errors.New("boom")
})

// sources says where a test's assessment looks: nil places are missing.
type sources struct {
	local, remote place
	pull          bool
}

func (s sources) locator() *locator {
	return &locator{local: s.local, remote: s.remote, pull: s.pull && s.remote != nil, lookups: map[lookupKey]*lookup{}}
}

// assessWith assesses b's tree from s.
func assessWith(ctx context.Context, b *Builder, s sources) (States, error) {
	return b.assess(ctx, s.locator())
}

// planFrom is b's plan of glob over states, read from s (for pulls).
func planFrom(t testing.TB, b *Builder, states States, glob string, s sources) *Plan {
	t.Helper()
	p, err := b.tree.plan(states, glob)
	if err != nil {
		t.Fatal(err)
	}
	p.loc = s.locator()
	return p
}
