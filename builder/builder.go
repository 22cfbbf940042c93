package builder

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/dockerfile"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/registry"
	"github.com/moby/moby/client"
)

// Engine is the part of the Docker Engine API docker-pkg uses, with the
// pinned moby client's signatures: a *client.Client is one.
type Engine interface {
	image.Engine
	registry.Puller
	registry.Pusher
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
}

var _ Engine = (*client.Client)(nil)

// Registry is what docker-pkg needs of the registry. A *registry.Client is
// one.
type Registry interface {
	// Holds says whether label names an image of this registry.
	Holds(label string) bool
	// Config returns the image ID and labels of label, without pulling it;
	// registry.ErrNotPublished when it is absent.
	Config(ctx context.Context, label string) (id string, labels map[string]string, err error)
	Credentials(ctx context.Context) (bool, error)
	Pull(ctx context.Context, eng registry.Puller, label string, log io.Writer) error
	Publish(ctx context.Context, eng registry.Pusher, label string, log io.Writer) error

	// For a fleet of builders, which hand images over through the
	// registry (see registry.Client):
	Resolve(ctx context.Context, label string) (registry.Image, error)
	Tag(ctx context.Context, digestRef string, tags ...string) error
	PullPlatform(ctx context.Context, eng registry.PlatformPuller, digestRef, platform string, log io.Writer, tags ...string) error
	CredentialFor(ctx context.Context, host string) (registry.Credential, error)
	Insecure(label string) bool
	Redact(err error) error
}

var _ Registry = (*registry.Client)(nil)

// Backend builds one rendered image: the local engine's classic builder
// (image.Classic) or its BuildKit (image.Session). The scheduler knows no
// other.
type Backend interface {
	Build(ctx context.Context, req image.BuildRequest) (image.Built, error)
}

// Builder is a repository of image definitions, scanned, with what it is
// built on: the Docker Engine, the registry and the backend. Every command
// goes through one.
type Builder struct {
	cfg  *config.Config
	tree *Tree

	engine  Engine   // nil: no daemon
	reg     Registry // nil: no registry configured
	backend Backend  // nil: from cfg.Builder on engine
	jobs    int
	logger  *slog.Logger
	log     io.Writer
	events  func(Event)
	warn    func(Warning)
	render  *dockerfile.Renderer
}

// Option configures a Builder.
type Option func(*options)

type options struct {
	engine    Engine
	reg       Registry
	backend   Backend
	jobs      int
	tagSuffix string
	strict    bool
	lenient   bool
	logger    *slog.Logger
	log       io.Writer
	events    func(Event)
	warn      func(Warning)
}

// WithEngine sets the local Docker Engine. Default: none; plan then says
// every image not published is to_build, and build fails.
func WithEngine(e Engine) Option {
	return func(o *options) { o.engine = e }
}

// WithRegistry sets the registry client. Default (and nil): no registry,
// nothing is published, pulled or checked.
func WithRegistry(r *registry.Client) Option {
	return func(o *options) {
		if r != nil {
			o.reg = r
		}
	}
}

// WithBackend builds every image with b. Default: the local engine's
// builder that the configuration's builder key names (classic or
// buildkit).
func WithBackend(b Backend) Option {
	return func(o *options) { o.backend = b }
}

// WithJobs sets how many images are rendered, built and verified at once
// (and published). Default: runtime.NumCPU(). Below 1 is an error.
func WithJobs(n int) Option {
	return func(o *options) { o.jobs = n }
}

// WithTagSuffix appends s to every tag (--nightly, --snapshot). Default: "".
func WithTagSuffix(s string) Option {
	return func(o *options) { o.tagSuffix = s }
}

// WithStrictDependencies makes a dependency on an image that is neither
// scanned nor in base_images an error (update needs every image it must
// bump). Default: such a dependency is a Warning.
func WithStrictDependencies() Option {
	return func(o *options) { o.strict = true }
}

// WithLenient makes a version constraint that is not met (`core (>= 2)`
// while core is 1.0) a Warning of ProblemConstraint, so the tree can be
// scanned and linted whole. Default: such a constraint is an error.
func WithLenient() Option {
	return func(o *options) { o.lenient = true }
}

// WithLogger sends messages (each image loaded, template warnings) to l.
// Default (and nil): none.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithLog sends the full output of every render, build, verify, pull and
// push to w, each line whole and prefixed with "[short name] ", so that
// parallel builds never interleave within a line. Default: discarded.
func WithLog(w io.Writer) Option {
	return func(o *options) {
		if w != nil {
			o.log = w
		}
	}
}

// WithEvents calls f on every change of an image's phase, one call at a
// time. Default: nothing is called.
func WithEvents(f func(Event)) Option {
	return func(o *options) { o.events = f }
}

// WithWarnings calls f with each warning a Build gives as it goes (a
// builder that cannot be reached, one lost mid-run). Default: they go to
// the WithLogger logger.
func WithWarnings(f func(Warning)) Option {
	return func(o *options) { o.warn = f }
}

// New scans dir, the repository of image definitions, with cfg. Errors in
// several images are reported together; each names the file to fix.
func New(ctx context.Context, dir string, cfg *config.Config, opts ...Option) (*Builder, error) {
	o := options{jobs: runtime.NumCPU(), log: io.Discard, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if o.jobs < 1 {
		return nil, fmt.Errorf("jobs: want at least 1 image at a time, got %d", o.jobs)
	}
	n := image.Naming{Registry: cfg.Registry, Namespace: cfg.Namespace, TagSuffix: o.tagSuffix}
	tree, err := scan(ctx, dir, cfg, n, o.strict, o.lenient, o.logger)
	if err != nil {
		return nil, err
	}
	b := &Builder{
		cfg: cfg, tree: tree,
		engine: o.engine, reg: o.reg, backend: o.backend,
		jobs: o.jobs, logger: o.logger, log: o.log, events: o.events, warn: o.warn,
	}
	b.render, err = dockerfile.New(cfg, repoLabels(tree), dockerfile.WithLogger(o.logger))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// warnf gives a warning of the run.
func (b *Builder) warnf(format string, args ...any) {
	w := Warning{Message: fmt.Sprintf(format, args...)}
	if b.warn != nil {
		b.warn(w)
		return
	}
	b.logger.Warn(w.Message)
}

// Tree is the scanned repository: its images and the graph between them.
func (b *Builder) Tree() *Tree { return b.tree }

// Config is the configuration the Builder was made with.
func (b *Builder) Config() *config.Config { return b.cfg }

// repoLabels maps every scanned image's repository to its full label, as
// the image_tag helper looks them up.
func repoLabels(t *Tree) map[string]string {
	out := make(map[string]string, len(t.Images))
	for _, img := range t.Images {
		out[img.Repo] = img.Label()
	}
	return out
}

// defaultBackend is the backend the configuration names, on the engine.
func (b *Builder) defaultBackend() (Backend, error) {
	if b.backend != nil {
		return b.backend, nil
	}
	if b.engine == nil {
		return nil, ErrNoEngine
	}
	if err := image.ValidateBuilder(b.cfg); err != nil {
		return nil, err
	}
	switch b.cfg.Builder {
	case "", "classic":
		return image.NewClassic(b.engine), nil
	case "buildkit":
		kit, ok := b.engine.(image.BuildKitEngine)
		if !ok {
			return nil, fmt.Errorf("builder buildkit: this Docker client cannot open a BuildKit session")
		}
		return image.NewSession(kit, b.cfg.Secrets), nil
	}
	return nil, fmt.Errorf("builder: want classic or buildkit, got %q", b.cfg.Builder)
}
