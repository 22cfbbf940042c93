package dockerfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/internal/readfile"
)

// Bounds of one template. A template is the repository's own code, but a
// mistake in it (an endless loop, a file that is a pipe) must end in an
// error, not a hang or an exhausted machine.
const (
	// MaxTemplateSize is the largest template file read, in bytes.
	MaxTemplateSize = 4 << 20
	// MaxOutputSize is the most a template may render, in bytes.
	MaxOutputSize = 16 << 20
	// DefaultMaxSteps is the step budget of one render (WithMaxSteps).
	DefaultMaxSteps = 1_000_000
)

// ErrTooLarge is matched by the error for a template file larger than
// MaxTemplateSize or a render longer than MaxOutputSize.
var ErrTooLarge = errors.New("too large")

// ErrTooLong is matched by the error for a render that takes more steps
// than any real template does: an endless loop.
var ErrTooLong = errors.New("too many steps (an endless loop?)")

// ErrNotRegular is matched by the error for a template path that is not a
// regular file (a pipe, a device, a directory), which is never read.
var ErrNotRegular = readfile.ErrNotRegular

// Error is a template that cannot be read, parsed or rendered.
type Error struct {
	Path string
	Line int // 0 when unknown
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("rendering %s:%d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("rendering %s: %v", e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Renderer renders the templates of one run. It is safe for concurrent use;
// each template is parsed once and kept.
type Renderer struct {
	log    *slog.Logger
	steps  int
	parse  func(path string, src []byte) (renderable, error)
	mu     sync.Mutex
	parsed map[string]*parsed // by path
}

// renderable is a parsed template. render writes to w, which fails once
// ctx is done or MaxOutputSize is passed, and checks ctx at every loop
// iteration (tickFunc).
type renderable interface {
	render(ctx context.Context, w *output) error
}

// parsed is a template parsed once, by the first render that needs it.
type parsed struct {
	src  string
	once sync.Once
	tmpl renderable
	err  error
}

// Option configures a Renderer.
type Option func(*Renderer)

// WithLogger sets where warnings go (uid of an unknown user). Default: they
// are discarded.
func WithLogger(l *slog.Logger) Option {
	return func(r *Renderer) { r.log = l }
}

// WithMaxSteps bounds the work of one render, which fails with ErrTooLong
// beyond it: in Jinja2 the statements and expressions evaluated, loop
// iterations included; in Go the loop iterations and template calls.
// Default: DefaultMaxSteps, a few seconds of CPU at most, where a real
// template takes a few hundred.
func WithMaxSteps(n int) Option {
	return func(r *Renderer) { r.steps = n }
}

// New returns a renderer for one run. images maps an image's repository name
// (registry/namespace/short, as image.Naming.Repo gives) to its full label
// for every scanned image; cfg.BaseImages are the other known images. The
// dialect is cfg.TemplateEngine: "jinja2" (also when empty) or "go".
func New(cfg *config.Config, images map[string]string, opts ...Option) (*Renderer, error) {
	r := &Renderer{log: slog.New(slog.NewTextHandler(io.Discard, nil)), steps: DefaultMaxSteps, parsed: map[string]*parsed{}}
	for _, opt := range opts {
		opt(r)
	}
	if r.steps <= 0 {
		return nil, fmt.Errorf("render step limit must be positive, got %d", r.steps)
	}
	h := newHelpers(cfg, images, r.log)
	switch cfg.TemplateEngine {
	case "", "jinja2":
		j := newJinja(h, cfg.Vars, r.steps)
		r.parse = func(path string, src []byte) (renderable, error) { return j.parse(path, src) }
	case "go":
		g := newGoTemplates(h, cfg.Vars, r.steps)
		r.parse = func(path string, src []byte) (renderable, error) { return g.parse(path, src) }
	default:
		return nil, fmt.Errorf("template_engine: want jinja2 or go, got %q", cfg.TemplateEngine)
	}
	return r, nil
}

// Render renders src, the template at path (used to name it in errors and
// to reuse its parse). When ctx is done the render stops at its next loop
// iteration, macro or template call, or output, with ctx's error; what
// runs without any of those is bounded by WithMaxSteps.
func (r *Renderer) Render(ctx context.Context, path string, src []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, &Error{Path: path, Err: err}
	}
	if len(src) > MaxTemplateSize {
		return nil, &Error{Path: path, Err: errTemplateSize}
	}
	r.mu.Lock()
	p := r.parsed[path]
	if p == nil || p.src != string(src) {
		p = &parsed{src: string(src)}
		r.parsed[path] = p
	}
	r.mu.Unlock()

	p.once.Do(func() { p.tmpl, p.err = r.parse(path, src) })
	if p.err != nil {
		return nil, p.err
	}
	w := &output{ctx: ctx}
	err := p.tmpl.render(ctx, w)
	switch {
	case ctx.Err() != nil && (err != nil || w.err != nil):
		return nil, &Error{Path: path, Err: ctx.Err()} // not the engine's words for it
	case w.err != nil:
		return nil, &Error{Path: path, Err: w.err}
	case err != nil:
		return nil, err
	}
	return w.buf.Bytes(), nil
}

// RenderFile reads the template at path (see ReadTemplate) and renders it.
func (r *Renderer) RenderFile(ctx context.Context, path string) ([]byte, error) {
	src, err := ReadTemplate(path)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", path, err)
	}
	return r.Render(ctx, path, src)
}

// ReadTemplate reads the template at path, following symbolic links, only
// if it is a regular file of at most MaxTemplateSize bytes: a named pipe
// would block the read, a device (/dev/zero) never end it. Errors are
// *os.PathError values, as os.ReadFile's; ErrNotRegular and ErrTooLarge
// match them.
func ReadTemplate(path string) ([]byte, error) {
	src, info, err := readfile.Read(path, MaxTemplateSize)
	switch {
	case errors.Is(err, readfile.ErrNotRegular):
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, readfile.Kind(info.Mode()))}
	case errors.Is(err, readfile.ErrTooLarge):
		return nil, &os.PathError{Op: "read", Path: path, Err: errTemplateSize}
	}
	return src, err
}

var errTemplateSize = fmt.Errorf("%w: a template is at most %d MiB", ErrTooLarge, MaxTemplateSize>>20)

// output collects a render. It fails every write once ctx is done, or once
// the render passes MaxOutputSize.
type output struct {
	ctx context.Context
	buf bytes.Buffer
	err error // the first failure, reported instead of the engine's error
}

func (w *output) Write(p []byte) (int, error) {
	if err := w.check(len(p)); err != nil {
		return 0, err
	}
	return w.buf.Write(p)
}

func (w *output) WriteString(s string) (int, error) {
	if err := w.check(len(s)); err != nil {
		return 0, err
	}
	return w.buf.WriteString(s)
}

func (w *output) check(n int) error {
	switch {
	case w.err != nil:
	case w.ctx.Err() != nil:
		w.err = w.ctx.Err()
	case w.buf.Len()+n > MaxOutputSize:
		w.err = fmt.Errorf("%w: the rendered Dockerfile passes %d MiB", ErrTooLarge, MaxOutputSize>>20)
	}
	return w.err
}
