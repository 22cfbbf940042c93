package dockerfile

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
)

// TestImageRefs: the cases builder's templateRefs had (moved here), and
// the ones a string search got wrong: text outside tags, comments, raw
// blocks.
func TestImageRefs(t *testing.T) {
	tests := []struct {
		name   string
		engine string
		src    string
		want   []string // name:line
	}{
		{"jinja filter", "jinja2", `FROM {{ "core" | image_tag }}`, []string{"core:1"}},
		{"default engine is jinja2", "", `FROM {{ "core" | image_tag }}`, []string{"core:1"}},
		{"single quotes, no spaces", "jinja2", `FROM {{'core'|image_tag}}`, []string{"core:1"}},
		{"go template call", "go", "\n\nFROM {{ image_tag \"core\" }}", []string{"core:3"}},
		{"go pipe", "go", "FROM {{ \"core\" | image_tag }}", []string{"core:1"}},
		{"go raw string", "go", "FROM {{ image_tag `core` }}", []string{"core:1"}},
		{"go call with parentheses", "go", `{{ image_tag ("a.b+c-1") }}`, []string{"a.b+c-1:1"}},
		{"jinja literal in parentheses is not seen", "jinja2", `{{ ("a") | image_tag }}`, nil},
		{"several on several lines", "jinja2", "FROM {{ \"a\" | image_tag }}\nCOPY --from={{ \"b\" | image_tag }} / /\n\nFROM {{ 'c' | image_tag }}",
			[]string{"a:1", "b:2", "c:4"}},
		{"go several on several lines", "go", "FROM {{ \"a\" | image_tag }}\nCOPY --from={{ image_tag \"b\" }} / /\n\n{{ define \"x\" }}FROM {{ image_tag \"c\" }}{{ end }}",
			[]string{"a:1", "b:2", "c:4"}},
		{"filter split over lines", "jinja2", "{{ \"a\"\n   | image_tag }}", []string{"a:2"}},
		{"go split over lines", "go", "{{ \"a\"\n   | image_tag }}", []string{"a:2"}},
		{"a variable, not a literal", "jinja2", `{{ base | image_tag }}`, nil},
		{"go variable, not a literal", "go", `{{ image_tag .base }}{{ base | image_tag }}`, nil},
		{"a longer identifier", "jinja2", `{{ "a" | image_tags }} {{ "b" | my_image_tag }}`, nil},
		{"go longer identifier", "go", `{{ image_tags "a" }} {{ my_image_tag "b" }}`, nil},
		{"mismatched quotes", "jinja2", `{{ "a' | image_tag }}`, nil},
		{"any literal is given", "jinja2", `{{ "a b" | image_tag }} {{ "" | image_tag }}`, []string{"a b:1", ":1"}},
		{"no helper", "jinja2", `FROM scratch`, nil},
		{"in a statement", "jinja2", "{% set base = 'core' | image_tag %}\n{% if 'x' | image_tag %}{% endif %}", []string{"core:1", "x:2"}},
		{"another filter first", "jinja2", `{{ "a" | lower | image_tag }}`, nil},
		{"another filter after", "jinja2", `{{ "a" | image_tag | lower }}`, []string{"a:1"}},
		{"concatenation binds looser", "jinja2", `{{ "a" ~ "b" | image_tag }}`, []string{"b:1"}},
		{"adjacent literals join", "jinja2", `{{ "co" 're' | image_tag }}`, []string{"core:1"}},
		{"escapes are not names", "jinja2", `{{ "c\x6fre" | image_tag }}`, nil},
		{"text outside tags", "jinja2", "# \"core\" | image_tag\nFROM scratch", nil},
		{"comment", "jinja2", "{# FROM {{ \"old\" | image_tag }} #}\nFROM {{ \"new\" | image_tag }}", []string{"new:2"}},
		{"raw block", "jinja2", "{% raw %}{{ \"old\" | image_tag }}{% endraw %}\nFROM {{ \"new\" | image_tag }}", []string{"new:2"}},
		{"CRLF lines", "jinja2", "FROM scratch\r\n\r\nFROM {{ \"a\" | image_tag }}", []string{"a:3"}},
		{"go text outside actions", "go", "# image_tag \"old\"\nFROM {{ image_tag \"new\" }}", []string{"new:2"}},
		{"go comment", "go", "{{/* image_tag \"old\" */}}\nFROM {{ image_tag \"new\" }}", []string{"new:2"}},
		{"go inside if and range", "go", "{{ if .x }}{{ image_tag \"a\" }}{{ else }}{{ range .l }}{{ image_tag \"b\" }}{{ end }}{{ end }}", []string{"a:1", "b:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refs, err := ImageRefs(tt.engine, "T", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range refs {
				got = append(got, fmt.Sprintf("%s:%d", r.Name, r.Line))
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ImageRefs(%q, %q) = %q, want %q", tt.engine, tt.src, got, tt.want)
			}
		})
	}
}

func TestImageRefsErrors(t *testing.T) {
	_, err := ImageRefs("go", "T", []byte("{{ image_tag \"a\" }}\n{{ if }}"))
	var e *Error
	if !errors.As(err, &e) || e.Path != "T" || e.Line != 2 {
		t.Errorf("Go syntax error: %v, want an *Error at T:2", err)
	}
	if _, err := ImageRefs("mako", "T", []byte("image_tag")); err == nil {
		t.Error("unknown engine: no error")
	}
	// Jinja2 is read leniently: an unclosed tag is not an error here.
	if refs, err := ImageRefs("jinja2", "T", []byte(`{{ "a" | image_tag }} {{ "b" | image_tag `)); err != nil || len(refs) != 2 {
		t.Errorf("unclosed tag: %v, %v; want both refs, no error", refs, err)
	}
}

// TestImageRefsAgreesWithRender: in every golden template that renders,
// every name ImageRefs finds is one image_tag resolves: none comes from
// text the engine does not evaluate.
func TestImageRefsAgreesWithRender(t *testing.T) {
	for _, dialect := range []string{"jinja", "go"} {
		engine := map[string]string{"jinja": "jinja2", "go": "go"}[dialect]
		cfg, err := config.LoadFiles("", filepath.Join("testdata", dialect, "config.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		h := newHelpers(cfg, testImages, slog.New(slog.DiscardHandler))
		r := newTestRenderer(t, filepath.Join("testdata", dialect, "config.yaml"))
		templates, _ := filepath.Glob(filepath.Join("testdata", dialect, "*.template"))
		found := 0
		for _, path := range templates {
			if strings.Count(filepath.Base(path), ".") > 1 {
				continue // PREFIX.NAME.template: another configuration
			}
			if _, err := r.RenderFile(t.Context(), path); err != nil {
				continue
			}
			src, _ := os.ReadFile(path)
			refs, err := ImageRefs(engine, path, src)
			if err != nil {
				t.Fatal(err)
			}
			for _, ref := range refs {
				found++
				if _, err := h.imageTag(ref.Name); err != nil {
					t.Errorf("%s:%d: ImageRefs found %q, which the render does not resolve: %v", path, ref.Line, ref.Name, err)
				}
			}
		}
		if found == 0 {
			t.Errorf("%s: no image_tag in the golden templates: the test checks nothing", dialect)
		}
	}
}
