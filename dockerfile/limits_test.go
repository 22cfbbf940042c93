package dockerfile

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostileEnv marks the child process TestHostile starts.
const hostileEnv = "DOCKER_PKG_TEST_HOSTILE"

// TestHostile runs TestHostileCases in a child process under ulimit -v (3
// GB, of which the test binary reserves about 1.3 at start): if a bound
// regresses (a read of /dev/zero, an unbounded render), the child fails
// instead of exhausting the machine; a blocking read fails by its timeout.
func TestHostile(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "/bin/sh", "-c",
		`ulimit -v 3000000 && exec "$0" -test.run='^TestHostileCases$' -test.v -test.count=1 -test.timeout=5m`, exe)
	cmd.Env = append(os.Environ(), hostileEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("hostile cases under ulimit -v: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestHostileCases") {
		t.Fatalf("the child did not run the hostile cases:\n%s", out)
	}
	t.Logf("%s", out)
}

func TestHostileCases(t *testing.T) {
	if os.Getenv(hostileEnv) == "" {
		t.Skip("runs in a child process under ulimit -v: see TestHostile")
	}
	t.Run("read", testHostileRead)
	t.Run("render", testHostileRender)
	t.Run("cancel", testHostileCancel)
}

// testHostileRead: template files that are not regular, or too large, are
// refused before anything is read.
func testHostileRead(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }
	if err := syscall.Mkfifo(path("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"zero": "/dev/zero", "fifo-link": path("fifo"), "ok-link": path("ok"), "dir-link": dir} {
		if err := os.Symlink(target, path(link)); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, size int64) {
		f, err := os.Create(path(name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := f.Truncate(size); err != nil { // sparse: no disk used
			t.Fatal(err)
		}
	}
	write("ok", MaxTemplateSize)
	write("over", MaxTemplateSize+1)
	write("huge", 64<<30)
	tests := []struct {
		name string
		is   error // nil: read
	}{
		{"ok", nil},
		{"ok-link", nil},
		{"over", ErrTooLarge},
		{"huge", ErrTooLarge},
		{"fifo", ErrNotRegular},
		{"fifo-link", ErrNotRegular},
		{"zero", ErrNotRegular},
		{"dir-link", ErrNotRegular},
		{"missing", fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := ReadTemplate(path(tt.name))
			if tt.is == nil {
				if err != nil || len(src) != MaxTemplateSize {
					t.Fatalf("ReadTemplate: %d bytes, %v; want %d bytes", len(src), err, MaxTemplateSize)
				}
				return
			}
			var pe *fs.PathError
			if !errors.Is(err, tt.is) || !errors.As(err, &pe) || pe.Path != path(tt.name) {
				t.Fatalf("ReadTemplate: %v, want a *PathError naming the file, matching %v", err, tt.is)
			}
			_, err = newTestRenderer(t, "testdata/jinja/config.yaml").RenderFile(t.Context(), path(tt.name))
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), "rendering "+path(tt.name)) {
				t.Fatalf("RenderFile: %v, want an error naming the file, matching %v", err, tt.is)
			}
		})
	}
}

// testHostileRender: templates that would render without end, or too
// much, fail with an error naming the template.
func testHostileRender(t *testing.T) {
	tests := []struct {
		name, dialect, src string
		steps              int // 0: the default
		is                 error
	}{
		{"jinja output", "jinja", `{% for i in range(100000) %}{{ "x" * 1000 }}{% endfor %}`, 0, ErrTooLarge},
		{"go output", "go", `{{ range until 100000 }}{{ repeat 1000 "x" }}{{ end }}`, 0, ErrTooLarge},
		{"go repeat", "go", `{{ repeat 100000000 "xx" }}`, 0, ErrTooLarge},
		{"go until", "go", `{{ until 100000000 }}`, 0, ErrTooLarge},
		{"go untilStep", "go", `{{ untilStep 0 100000000 1 }}`, 0, ErrTooLarge},
		{"go seq", "go", `{{ seq 100000000 }}`, 0, ErrTooLarge},
		{"jinja loops", "jinja", `{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}`, 100_000, ErrTooLong},
		{"jinja recursion", "jinja", `{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}`, 100_000, ErrTooLong},
		{"go loops", "go", `{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}`, 100_000, ErrTooLong},
		{"go recursion", "go", `{{ define "f" }}{{ template "f" }}{{ template "f" }}{{ end }}{{ template "f" }}`, 10_000, ErrTooLong},
		{"jinja default budget", "jinja", `{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}`, 0, ErrTooLong},
		{"template too large", "jinja", strings.Repeat("x", MaxTemplateSize+1), 0, ErrTooLarge},
		{"tags too many to parse", "jinja", strings.Repeat("{{ x }}\n", MaxTemplateSize/8), 0, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var opts []Option
			if tt.steps > 0 {
				opts = append(opts, WithMaxSteps(tt.steps))
			}
			r := newTestRenderer(t, "testdata/"+tt.dialect+"/config.yaml", opts...)
			_, err := r.Render(t.Context(), "Dockerfile.template", []byte(tt.src))
			var e *Error
			if !errors.Is(err, tt.is) || !errors.As(err, &e) || e.Path != "Dockerfile.template" {
				t.Fatalf("error %v, want an *Error for Dockerfile.template matching %v", err, tt.is)
			}
		})
	}
}

// testHostileCancel: a render that would not end stops as soon as its
// context is done, although its step budget would last for hours: a loop
// iteration, a macro or template call, an output checks the context.
func testHostileCancel(t *testing.T) {
	tests := []struct{ name, dialect, src string }{
		{"loops", "jinja", `{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}`},
		{"loops printing", "jinja", `{% for a in range(100000) %}{% for b in range(100000) %}{{ b }}{% endfor %}{% endfor %}`},
		{"recursion", "jinja", `{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}`},
		{"loops", "go", `{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}`},
		{"loops printing", "go", `{{ range 100000 }}{{ range 100000 }}{{ . }}{{ end }}{{ end }}`},
		{"recursion", "go", `{{ define "f" }}{{ if . }}{{ template "f" 1 }}{{ template "f" 1 }}{{ end }}{{ end }}{{ template "f" 1 }}`},
	}
	for _, tt := range tests {
		t.Run(tt.dialect+"/"+tt.name, func(t *testing.T) {
			r := newTestRenderer(t, "testdata/"+tt.dialect+"/config.yaml", WithMaxSteps(math.MaxInt32))
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			time.AfterFunc(50*time.Millisecond, cancel)
			_, err := r.Render(ctx, "Dockerfile.template", []byte(tt.src))
			var e *Error
			if !errors.Is(err, context.Canceled) || !errors.As(err, &e) || e.Path != "Dockerfile.template" {
				t.Fatalf("error %v, want context.Canceled naming the template", err)
			}
		})
	}
	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := newTestRenderer(t, "testdata/jinja/config.yaml").Render(ctx, "Dockerfile.template", []byte("FROM x"))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	})
}
