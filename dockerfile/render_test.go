package dockerfile

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// testImages are the scanned images every golden template sees.
var testImages = map[string]string{
	"docker-registry.example.org/releng/node20":    "docker-registry.example.org/releng/node20:20.11.0-1",
	"docker-registry.example.org/releng/jaeger":    "docker-registry.example.org/releng/jaeger:1.2.3-1-20241211",
	"docker-registry.example.org/releng/ambiguous": "docker-registry.example.org/releng/ambiguous:1.0",
	"docker-registry.example.org/releng/php":       "docker-registry.example.org/releng/php:8.2.7-1~deb12u1-s2",
	"127.0.0.1:5000/ns/x":                          "127.0.0.1:5000/ns/x:1.0-1",
}

// TestGolden renders testdata/DIALECT/NAME.template with the configuration
// testdata/DIALECT/config.yaml, or PREFIX.yaml for a NAME of the form
// PREFIX.rest, and compares the result with NAME.golden, or the error with
// the text in NAME.err. The Jinja2 goldens are the bytes Jinja2 3.1 and
// docker-pkg's filters produce.
func TestGolden(t *testing.T) {
	for _, dialect := range []string{"jinja", "go"} {
		templates, err := filepath.Glob(filepath.Join("testdata", dialect, "*.template"))
		if err != nil || len(templates) == 0 {
			t.Fatalf("no templates in testdata/%s: %v", dialect, err)
		}
		for _, path := range templates {
			name := strings.TrimSuffix(filepath.Base(path), ".template")
			t.Run(dialect+"/"+name, func(t *testing.T) {
				cfgName := "config"
				if prefix, _, ok := strings.Cut(name, "."); ok {
					cfgName = prefix
				}
				r := newTestRenderer(t, filepath.Join("testdata", dialect, cfgName+".yaml"))
				got, err := r.RenderFile(t.Context(), path)
				base := strings.TrimSuffix(path, ".template")
				if want, readErr := os.ReadFile(base + ".err"); readErr == nil {
					if err == nil {
						t.Fatalf("rendered %q, want an error containing %q", got, strings.TrimSpace(string(want)))
					}
					if !strings.Contains(err.Error(), strings.TrimSpace(string(want))) {
						t.Fatalf("error %q\ndoes not contain %q", err, strings.TrimSpace(string(want)))
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if *update {
					if err := os.WriteFile(base+".golden", got, 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(base + ".golden")
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("got:\n%q\nwant:\n%q", got, want)
				}
			})
		}
	}
}

func newTestRenderer(t testing.TB, cfgPath string, opts ...Option) *Renderer {
	t.Helper()
	cfg, err := config.LoadFiles("", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, testImages, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name    string
		dialect string
		src     string
		is      error
		line    int
	}{
		{"undefined variable", "jinja", "a\n{{ nope }}", ErrUndefined, 2},
		{"undefined in a filter argument", "jinja", "{{ 'a' | replace('a', nope) }}", ErrUndefined, 1},
		{"undefined called", "jinja", "\n\n{{ nope() }}", ErrUndefined, 3},
		{"unknown image", "jinja", "\n{{ 'nosuch' | image_tag }}", ErrUnknownImage, 2},
		{"unknown user", "jinja", "{{ 'flink' | add_user }}", ErrUnknownUser, 1},
		{"go unknown image", "go", "\n{{ \"nosuch\" | image_tag }}", ErrUnknownImage, 2},
		{"go unknown user", "go", "{{ add_user \"flink\" }}", ErrUnknownUser, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRenderer(t, filepath.Join("testdata", tt.dialect, "config.yaml"))
			_, err := r.Render(t.Context(), "Dockerfile.template", []byte(tt.src))
			if !errors.Is(err, tt.is) {
				t.Fatalf("error %v, want one matching %v", err, tt.is)
			}
			var e *Error
			if !errors.As(err, &e) || e.Path != "Dockerfile.template" || e.Line != tt.line {
				t.Fatalf("error %#v, want an *Error for Dockerfile.template line %d", err, tt.line)
			}
		})
	}
}

func TestUIDWarning(t *testing.T) {
	var logs bytes.Buffer
	r := newTestRenderer(t, "testdata/jinja/config.yaml", WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	out, err := r.Render(t.Context(), "Dockerfile.template", []byte(`USER {{ "ghost" | uid }}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "USER ghost" {
		t.Errorf("rendered %q, want %q", out, "USER ghost")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "UID mapping for user ghost not found") {
		t.Errorf("logged %q, want a warning about ghost", logs.String())
	}
}

// TestReparse checks that a template changed under the same path is parsed
// again rather than served from the cache.
func TestReparse(t *testing.T) {
	r := newTestRenderer(t, "testdata/jinja/config.yaml")
	for _, src := range []string{"one {{ registry }}", "two {{ namespace }}"} {
		out, err := r.Render(t.Context(), "Dockerfile.template", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		want := strings.NewReplacer("{{ registry }}", "docker-registry.example.org", "{{ namespace }}", "releng").Replace(src)
		if string(out) != want {
			t.Errorf("rendered %q, want %q", out, want)
		}
	}
}

func TestTemplateEngine(t *testing.T) {
	cfg := &config.Config{TemplateEngine: "mustache"}
	if _, err := New(cfg, nil); err == nil || !strings.Contains(err.Error(), "mustache") {
		t.Fatalf("New with template_engine mustache: %v, want an error naming it", err)
	}
}

// TestConcurrent renders every golden template from many goroutines with one
// Renderer; run with -race.
func TestConcurrent(t *testing.T) {
	for _, dialect := range []string{"jinja", "go"} {
		r := newTestRenderer(t, filepath.Join("testdata", dialect, "config.yaml"))
		templates, _ := filepath.Glob(filepath.Join("testdata", dialect, "*.template"))
		want := map[string]string{}
		for _, path := range templates {
			if strings.Count(filepath.Base(path), ".") > 1 {
				continue // PREFIX.NAME.template: another configuration
			}
			out, err := r.RenderFile(t.Context(), path)
			want[path] = fmt.Sprintf("%q %v", out, err)
		}
		r = newTestRenderer(t, filepath.Join("testdata", dialect, "config.yaml"))
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for path, w := range want {
					out, err := r.RenderFile(t.Context(), path)
					if got := fmt.Sprintf("%q %v", out, err); got != w {
						t.Errorf("%s: concurrent render gave %s, want %s", path, got, w)
					}
				}
			}()
		}
		wg.Wait()
	}
}
