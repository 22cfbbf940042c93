package dockerfile

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/docker-pkg/docker-pkg/config"
)

// Error is a template that cannot be parsed or rendered.
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
	parse  func(path string, src []byte) (renderable, error)
	mu     sync.Mutex
	parsed map[string]*parsed // by path
}

type renderable interface {
	render() ([]byte, error)
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

// New returns a renderer for one run. images maps an image's repository name
// (registry/namespace/short, as image.Naming.Repo gives) to its full label
// for every scanned image; cfg.BaseImages are the other known images. The
// dialect is cfg.TemplateEngine: "jinja2" (also when empty) or "go".
func New(cfg *config.Config, images map[string]string, opts ...Option) (*Renderer, error) {
	r := &Renderer{log: slog.New(slog.NewTextHandler(io.Discard, nil)), parsed: map[string]*parsed{}}
	for _, opt := range opts {
		opt(r)
	}
	h := newHelpers(cfg, images, r.log)
	switch cfg.TemplateEngine {
	case "", "jinja2":
		j := newJinja(h, cfg.Vars)
		r.parse = func(path string, src []byte) (renderable, error) { return j.parse(path, src) }
	case "go":
		g := newGoTemplates(h, cfg.Vars)
		r.parse = func(path string, src []byte) (renderable, error) { return g.parse(path, src) }
	default:
		return nil, fmt.Errorf("template_engine: want jinja2 or go, got %q", cfg.TemplateEngine)
	}
	return r, nil
}

// Render renders src, the template at path (used to name it in errors and
// to reuse its parse).
func (r *Renderer) Render(path string, src []byte) ([]byte, error) {
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
	return p.tmpl.render()
}

// RenderFile reads and renders the template at path.
func (r *Renderer) RenderFile(path string) ([]byte, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rendering %s: %w", path, err)
	}
	return r.Render(path, src)
}
