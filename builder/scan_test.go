package builder

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
)

// entry is a changelog with one entry.
func entry(name, version string) string {
	return name + " (" + version + ") wikimedia; urgency=medium\n\n  * Change.\n\n" +
		" -- Author <a@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n"
}

// img returns the files of an image folder: changelog, template and, when
// depends is not empty, control.
func img(dir, name, version, depends, template string) map[string]string {
	files := map[string]string{
		dir + "/changelog":           entry(name, version),
		dir + "/Dockerfile.template": template,
	}
	if depends != "" {
		files[dir+"/control"] = "Source: " + name + "\nDepends: " + depends + "\n"
	}
	return files
}

// writeTree writes files (slash-separated paths relative to the root) into
// a new directory and returns it.
func writeTree(t testing.TB, parts ...map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for _, files := range parts {
		for name, content := range files {
			path := filepath.Join(root, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

func testConfig() *config.Config {
	return &config.Config{ScanWorkers: 3, BaseImages: []string{"example.org/ns/debian:bookworm", "127.0.0.1:5000/ns/alpine:3"}}
}

func names(imgs []*image.Image) []string {
	out := []string{}
	for _, i := range imgs {
		out = append(out, i.Name)
	}
	return out
}

func warnings(t *Tree, root string) []string {
	out := []string{}
	for _, w := range t.Warnings {
		out = append(out, strings.ReplaceAll(w.String(), root, "ROOT"))
	}
	return out
}

func TestScanFixtures(t *testing.T) {
	cfg, err := config.LoadFiles("", "../fixtures/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := image.Naming{Registry: cfg.Registry, Namespace: cfg.Namespace}
	tree, err := scanTree(context.Background(), "../fixtures/images", cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{"core", "build-tools", "runtime", "tools", "app", "ci-runner", "app-plugin"}
	if got := names(tree.Images); !reflect.DeepEqual(got, wantOrder) {
		t.Errorf("Images = %v, want %v", got, wantOrder)
	}
	if got, want := warnings(tree, tree.Dir), []string{"ROOT/wip: has Dockerfile.template but no changelog; skipped"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings = %q, want %q", got, want)
	}
	if got := tree.Image("app-plugin"); got == nil || got.Label() != "docker-pkg-fixtures/app-plugin:0.1.0-1" ||
		got.Dir != filepath.Join(tree.Dir, "app", "plugins", "app-plugin") {
		t.Errorf("Image(app-plugin) = %+v", got)
	}
	if got, want := tree.Bases("core"), []string{"docker-pkg-fixtures/busybox:static"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Bases(core) = %v, want %v", got, want)
	}
	if got, want := names(tree.Parents("ci-runner")), []string{"build-tools", "runtime"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Parents(ci-runner) = %v, want %v", got, want)
	}
	if got, want := names(tree.Parents("tools")), []string{"core"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Parents(tools) = %v, want %v (from Build-Depends)", got, want)
	}
	if !tree.Image("build-tools").BuildStage {
		t.Error("build-tools has no build stage")
	}
	if len(tree.Missing()) != 0 {
		t.Errorf("Missing() = %v", tree.Missing())
	}
}

// TestScanFixturesWithFailing scans fixtures/ whole: fixtures/failing adds
// images built on fixtures/images.
func TestScanFixturesWithFailing(t *testing.T) {
	cfg, err := config.LoadFiles("", "../fixtures/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := scanTree(context.Background(), "../fixtures", cfg, image.Naming{Namespace: cfg.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{"core", "build-tools", "runtime", "tools", "app", "ci-runner", "legacy-app", "app-plugin", "legacy-plugin"}
	if got := names(tree.Images); !reflect.DeepEqual(got, wantOrder) {
		t.Errorf("Images = %v, want %v", got, wantOrder)
	}
	if got, want := warnings(tree, tree.Dir), []string{"ROOT/images/wip: has Dockerfile.template but no changelog; skipped"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Warnings = %q, want %q", got, want)
	}
	if got, want := names(tree.Descendants("runtime")), []string{"app", "ci-runner", "legacy-app", "app-plugin", "legacy-plugin"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Descendants(runtime) = %v, want %v", got, want)
	}
}

func TestScan(t *testing.T) {
	tests := []struct {
		name     string
		files    []map[string]string
		opts     []Option
		want     []string // Images, in order
		warnings []string
		missing  []string
	}{
		{
			name: "nested image and hidden folder",
			files: []map[string]string{
				img("a", "a", "1", "", "FROM scratch"),
				img("a/sub/b", "b", "1", "a", `FROM {{ "a" | image_tag }}`),
				img(".git/c", "c", "1", "", "FROM scratch"),
				img("x/.hidden/d", "d", "1", "", "FROM scratch"),
			},
			want: []string{"a", "b"},
		},
		{
			name: "half-defined folders",
			files: []map[string]string{
				img("a", "a", "1", "", "FROM scratch"),
				{"only-template/Dockerfile.template": "FROM scratch", "only-changelog/changelog": entry("x", "1"), "neither/README": "x"},
			},
			want: []string{"a"},
			warnings: []string{
				"ROOT/only-changelog: has changelog but no Dockerfile.template; skipped",
				"ROOT/only-template: has Dockerfile.template but no changelog; skipped",
			},
		},
		{
			name: "template names an image control forgot",
			files: []map[string]string{
				img("a", "a", "1", "", "FROM scratch"),
				img("b", "b", "1", "", "FROM scratch"),
				img("c", "c", "1", "b", "FROM {{ 'a'|image_tag }}\nCOPY --from={{ \"b\" | image_tag }} / /\n# itself: {{ \"c\" | image_tag }}\n"),
				img("d", "d", "1", "", "FROM scratch\n\nFROM {{ \"c\" | image_tag }}\n"),
				{"d/Dockerfile.build.template": `FROM {{ "a" | image_tag }}`},
				img("e", "e", "1", "", `FROM {{ "unknown" | image_tag }}`),
			},
			want: []string{"a", "b", "e", "c", "d"},
			warnings: []string{
				`ROOT/c/Dockerfile.template:1: c uses image a (image_tag) but does not depend on it: add "a" to Depends in ROOT/c/control`,
				`ROOT/d/Dockerfile.build.template:1: d uses image a (image_tag) but does not depend on it: add "a" to Depends in ROOT/d/control`,
				`ROOT/d/Dockerfile.template:3: d uses image c (image_tag) but does not depend on it: add "c" to Depends in ROOT/d/control`,
			},
		},
		{
			name: "dependencies outside the tree",
			files: []map[string]string{
				img("a", "a", "1", "debian, alpine, ghost", `FROM {{ "debian" | image_tag }}`),
			},
			want:     []string{"a"},
			warnings: []string{`ROOT/a/control:2: a depends on "ghost", which is neither an image under ROOT nor in base_images`},
			missing:  []string{"ghost"},
		},
		{
			name: "versioned dependencies that hold",
			files: []map[string]string{
				img("a", "a", "1.2.0-1", "", "FROM scratch"),
				img("b", "b", "1", "a (>= 1.0), a (<< 2), a (<= 1.2.0-1), a (>> 1.2.0), a (= 1.2.0-1)", "FROM scratch"),
			},
			want: []string{"a", "b"},
		},
		{
			name:  "an empty tree",
			files: []map[string]string{{"README": "nothing here"}},
			want:  []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files...)
			tree, err := scanTree(context.Background(), root, testConfig(), image.Naming{Registry: "example.org", Namespace: "ns"}, tt.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(tree.Images); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Images = %v, want %v", got, tt.want)
			}
			if tt.warnings == nil {
				tt.warnings = []string{}
			}
			if got := warnings(tree, root); !reflect.DeepEqual(got, tt.warnings) {
				t.Errorf("Warnings =\n%q\nwant\n%q", got, tt.warnings)
			}
			missing := []string{}
			for _, d := range tree.Missing() {
				missing = append(missing, d.Name)
			}
			if tt.missing == nil {
				tt.missing = []string{}
			}
			if !reflect.DeepEqual(missing, tt.missing) {
				t.Errorf("Missing() = %v, want %v", missing, tt.missing)
			}
		})
	}
}

func TestScanErrors(t *testing.T) {
	tests := []struct {
		name   string
		files  []map[string]string
		opts   []Option
		want   []string // substrings of the error, ROOT for the tree
		target error
	}{
		{
			name:   "duplicate short names",
			files:  []map[string]string{img("one", "a", "1", "", ""), img("two/deep", "a", "2", "", "")},
			want:   []string{`duplicate image name "a": defined in ROOT/one and in ROOT/two/deep`},
			target: ErrDuplicate,
		},
		{
			name:   "cycle",
			files:  []map[string]string{img("z", "z", "1", "y", ""), img("y", "y", "1", "x", ""), img("x", "x", "1", "z", ""), img("w", "w", "1", "x", "")},
			want:   []string{"dependency cycle: x -> z -> y -> x (each image depends on the next)"},
			target: ErrCycle,
		},
		{
			name:   "cycle through a template",
			files:  []map[string]string{img("a", "a", "1", "b", ""), img("b", "b", "1", "", `FROM {{ "a" | image_tag }}`)},
			want:   []string{"dependency cycle: a -> b -> a"},
			target: ErrCycle,
		},
		{
			name:   "depends on itself",
			files:  []map[string]string{img("a", "a", "1", "a", "")},
			want:   []string{"dependency cycle: a -> a"},
			target: ErrCycle,
		},
		{
			name: "constraints not met",
			files: []map[string]string{
				img("a", "a", "1.2.0-1", "", ""),
				img("b", "b", "1", "a (>= 2.0)", ""),
				img("c", "c", "1", "a (<< 1.2), a (>> 1.2.0-1), a (= 1.2.0), a (<= 1.1)", ""),
			},
			want: []string{
				"ROOT/b/control:2: version constraint not met: b needs a (>= 2.0), but a is 1.2.0-1 (ROOT/a/changelog)",
				"ROOT/c/control:2: version constraint not met: c needs a (<< 1.2), but a is 1.2.0-1",
				"c needs a (>> 1.2.0-1)", "c needs a (= 1.2.0)", "c needs a (<= 1.1)",
			},
			target: ErrConstraint,
		},
		{
			name:   "constraint on a version Debian cannot compare",
			files:  []map[string]string{img("a", "a", "x1", "", ""), img("b", "b", "1", "a (>= 1)", "")},
			want:   []string{`ROOT/a/changelog: version constraint not met: version "x1" cannot be compared with the constraint a (>= 1) in ROOT/b/control:2`},
			target: ErrConstraint,
		},
		{
			name:   "strict about missing dependencies",
			files:  []map[string]string{img("a", "a", "1", "ghost, debian", "")},
			opts:   []Option{WithStrictDependencies()},
			want:   []string{`ROOT/a/control:2: unknown dependency: a depends on "ghost", which is neither an image under ROOT nor in base_images`},
			target: ErrMissing,
		},
		{
			name: "every broken image at once",
			files: []map[string]string{
				img("a", "a", "1~1", "", ""),
				img("b", "b", "1", "x | y", ""),
				{"c/changelog": "garbage\n", "c/Dockerfile.template": ""},
			},
			want:   []string{"ROOT/a/changelog: invalid image definition", `ROOT/b/control:2: invalid image definition: "x | y"`, "ROOT/c/changelog:1: malformed changelog"},
			target: changelog.ErrMalformed,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.files...)
			_, err := scanTree(context.Background(), root, testConfig(), image.Naming{}, tt.opts...)
			if err == nil {
				t.Fatal("Scan() succeeded, want an error")
			}
			msg := strings.ReplaceAll(err.Error(), root, "ROOT")
			for _, want := range tt.want {
				if !strings.Contains(msg, want) {
					t.Errorf("Scan() error =\n%s\nwant it to contain\n%s", msg, want)
				}
			}
			if !errors.Is(err, tt.target) {
				t.Errorf("Scan() error = %v, want errors.Is %v", err, tt.target)
			}
		})
	}
}

func TestScanCancelled(t *testing.T) {
	root := writeTree(t, img("a", "a", "1", "", ""))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := scanTree(ctx, root, testConfig(), image.Naming{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Scan() error = %v, want context.Canceled", err)
	}
}

// TestScanTemplateRefsDialect: Scan reads image_tag with the tree's
// template_engine, so only references the engine evaluates order the graph.
func TestScanTemplateRefsDialect(t *testing.T) {
	for _, tt := range []struct{ engine, template string }{
		{"jinja2", "{# {{ \"c\" | image_tag }} #}\nFROM {{ \"a\" | image_tag }}\n"},
		{"go", "{{/* image_tag \"c\" */}}\nFROM {{ image_tag \"a\" }}\n"},
	} {
		t.Run(tt.engine, func(t *testing.T) {
			root := writeTree(t, img("a", "a", "1", "", "FROM scratch"), img("b", "b", "1", "", tt.template), img("c", "c", "1", "b", "FROM scratch"))
			cfg := testConfig()
			cfg.TemplateEngine = tt.engine
			tree, err := scanTree(context.Background(), root, cfg, image.Naming{})
			if err != nil {
				t.Fatal(err)
			}
			if got, want := names(tree.Images), []string{"a", "b", "c"}; !reflect.DeepEqual(got, want) {
				t.Errorf("Images = %v, want %v (b after a, which it uses; c after b, not before)", got, want)
			}
			want := []string{`ROOT/b/Dockerfile.template:2: b uses image a (image_tag) but does not depend on it: add "a" to Depends in ROOT/b/control`}
			if got := warnings(tree, root); !reflect.DeepEqual(got, want) {
				t.Errorf("Warnings =\n%q\nwant\n%q", got, want)
			}
		})
	}
}
