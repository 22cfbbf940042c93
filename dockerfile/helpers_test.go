package dockerfile

import (
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
)

// helperSamples are an argument for each helper of the table, and one that
// makes it fail ("" where none does).
var helperSamples = map[string]struct{ ok, bad string }{
	"image_tag":        {"node20", "nosuch"},
	"upstream_version": {"x/jaeger:1.2.3-1-20241211", "x/jaeger"},
	"uid":              {"www-data", ""},
	"add_user":         {"somebody", "ghost"},
	"apt_install":      {"curl\ngit", ""},
	"apt_remove":       {"curl", ""},
}

// TestHelpersBothDialects: every helper of the one table works, and fails,
// the same in Jinja2 ({{ "x" | name }}) and Go ({{ name "x" }}, {{ "x" |
// name }}): a helper added to the table needs a sample here, and then
// appears in both.
func TestHelpersBothDialects(t *testing.T) {
	cfg, err := config.LoadFiles("", "testdata/jinja/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	table := newHelpers(cfg, testImages, slog.New(slog.DiscardHandler)).table()
	if len(table) != len(helperSamples) {
		t.Errorf("the table has %d helpers, helperSamples %d: give every helper a sample", len(table), len(helperSamples))
	}
	jinja := newTestRenderer(t, "testdata/jinja/config.yaml")
	goTmpl := newTestRenderer(t, "testdata/go/config.yaml")
	for _, hp := range table {
		t.Run(hp.name, func(t *testing.T) {
			sample, ok := helperSamples[hp.name]
			if !ok {
				t.Fatalf("helper %s has no sample in helperSamples", hp.name)
			}
			for _, arg := range []string{sample.ok, sample.bad} {
				if arg == "" {
					continue
				}
				want, wantErr := hp.fn(arg)
				q := `"` + strings.ReplaceAll(arg, "\n", `\n`) + `"`
				for _, c := range []struct {
					r   *Renderer
					src string
				}{
					{jinja, "{{ " + q + " | " + hp.name + " }}"},
					{goTmpl, "{{ " + hp.name + " " + q + " }}"},
					{goTmpl, "{{ " + q + " | " + hp.name + " }}"},
				} {
					got, err := c.r.Render(t.Context(), "T", []byte(c.src))
					switch {
					case wantErr != nil && err == nil:
						t.Errorf("%s rendered %q, want the error %v", c.src, got, wantErr)
					case wantErr != nil && !strings.Contains(err.Error(), wantErr.Error()):
						t.Errorf("%s: error %v, want it to say %v", c.src, err, wantErr)
					case wantErr == nil && err != nil:
						t.Errorf("%s: %v", c.src, err)
					case wantErr == nil && string(got) != want:
						t.Errorf("%s = %q, want %q", c.src, got, want)
					}
				}
			}
		})
	}
}

// TestHelperNonString: a helper given another type fails in both dialects,
// but uid, which passes it through with a warning, as the reference does.
func TestHelperNonString(t *testing.T) {
	for _, tt := range []struct{ dialect, src, want string }{
		{"jinja", "{{ 33 | uid }}", "33"},
		{"go", "{{ uid 33 }}", "33"},
		{"jinja", "{{ 33 | image_tag }}", ""},
		{"go", "{{ image_tag 33 }}", ""},
	} {
		var logs strings.Builder
		r := newTestRenderer(t, "testdata/"+tt.dialect+"/config.yaml", WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		got, err := r.Render(t.Context(), "T", []byte(tt.src))
		if tt.want == "" {
			if err == nil {
				t.Errorf("%s: rendered %q, want an error", tt.src, got)
			}
			continue
		}
		if err != nil || string(got) != tt.want || !strings.Contains(logs.String(), "UID mapping for user 33 not found") {
			t.Errorf("%s = %q, %v, logged %q; want %q and a warning", tt.src, got, err, logs.String(), tt.want)
		}
	}
}

// TestGoHermetic: the Go dialect has no function that reads the host
// environment, the clock or a random source.
func TestGoHermetic(t *testing.T) {
	t.Setenv("DOCKER_PKG_TEST_SECRET", "s3cret-value")
	r := newTestRenderer(t, "testdata/go/config.yaml")
	for _, src := range []string{
		`{{ env "DOCKER_PKG_TEST_SECRET" }}`,
		`{{ expandenv "$DOCKER_PKG_TEST_SECRET" }}`,
		`{{ now }}`, `{{ date "2006" now }}`, `{{ ago 1 }}`, `{{ toDate "2006" "2024" }}`,
		`{{ randAlpha 8 }}`, `{{ randInt 1 9 }}`, `{{ uuidv4 }}`, `{{ "abc" | shuffle }}`,
		`{{ genPrivateKey "rsa" }}`, `{{ bcrypt "x" }}`, `{{ encryptAES "k" "x" }}`,
		`{{ getHostByName "localhost" }}`,
	} {
		out, err := r.Render(t.Context(), "T", []byte(src))
		var e *Error
		if err == nil || !errors.As(err, &e) || !strings.Contains(err.Error(), "not defined") {
			t.Errorf("%s rendered %q, %v: want a parse error, function not defined", src, out, err)
		}
		if strings.Contains(string(out)+errString(err), "s3cret") {
			t.Errorf("%s leaks the environment: %q %v", src, out, err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestGoDeterministic renders testdata/go/sprig.template and every other
// golden Go template in two runs with different environments: the bytes are
// the same.
func TestGoDeterministic(t *testing.T) {
	templates, _ := filepath.Glob("testdata/go/*.template")
	render := func() map[string]string {
		out := map[string]string{}
		r := newTestRenderer(t, "testdata/go/config.yaml")
		for _, path := range templates {
			got, err := r.RenderFile(t.Context(), path)
			out[path] = string(got) + errString(err)
		}
		return out
	}
	t.Setenv("TZ", "UTC")
	t.Setenv("HOME", "/one")
	first := render()
	t.Setenv("TZ", "Asia/Kolkata")
	t.Setenv("HOME", "/two")
	second := render()
	for path := range first {
		if first[path] != second[path] {
			t.Errorf("%s: rendered %q, then %q", path, first[path], second[path])
		}
	}
}

// TestPassword: the password is not a template variable, and a template
// that uses it is told why, without the password in the message.
func TestPassword(t *testing.T) {
	dir := t.TempDir()
	for _, dialect := range []string{"jinja", "go"} {
		base, err := os.ReadFile("testdata/" + dialect + "/config.yaml")
		if err != nil {
			t.Fatal(err)
		}
		cfgPath := filepath.Join(dir, dialect+".yaml")
		if err := os.WriteFile(cfgPath, append(base, "\nusername: bot\npassword: hunter2-secret\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		r := newTestRenderer(t, cfgPath)
		tests := []struct {
			src  string
			line int
		}{
			{"\n{{ password }}", 2},
			{"{% set p = password %}\n\n{{ p }}", 3}, // where Jinja2 fails too
			{"{{ 'x' ~ password }}", 1},
		}
		if dialect == "go" {
			tests = []struct {
				src  string
				line int
			}{
				{"\n{{ .password }}", 2},
				{"{{ password }}", 1},
				{"{{ if true }}\n{{ $.password }}{{ end }}", 2},
				{"{{ if false }}{{ .password }}{{ end }}", 1},
			}
		}
		for _, tt := range tests {
			out, err := r.Render(t.Context(), "T", []byte(tt.src))
			var e *Error
			if !errors.As(err, &e) || e.Line != tt.line || !strings.Contains(err.Error(), passwordWhy) {
				t.Errorf("%s %q: rendered %q, %v; want an error at line %d saying %q", dialect, tt.src, out, err, tt.line, passwordWhy)
			}
			if strings.Contains(string(out)+errString(err), "hunter2") {
				t.Errorf("%s %q: the password is out: %q %v", dialect, tt.src, out, err)
			}
		}
	}
	// Asking is allowed: a template may check that it is not given.
	r := newTestRenderer(t, "testdata/jinja/config.yaml")
	if out, err := r.Render(t.Context(), "T", []byte("{% if password is defined %}yes{% else %}no{% endif %}")); err != nil || string(out) != "no" {
		t.Errorf("password is defined: %q, %v; want no", out, err)
	}
}
