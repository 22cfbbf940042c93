package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// run runs docker-pkg with args against the fixtures, with no user config
// file and no Docker daemon, so every image is to_build.
func run(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the label cache: never the user's
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no-daemon.sock")
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"-c", "../../fixtures/config.yaml"}, args...))
	err = root.Execute()
	return out.String(), errOut.String(), err
}

func TestPlanFixtures(t *testing.T) {
	stdout, stderr, err := run(t, "plan", "../../fixtures/images")
	if err != nil {
		t.Fatal(err)
	}
	want := `BUILD  STATE     LABEL                                    REASON
1      to_build  docker-pkg-fixtures/core:1.2.0-1         not checked: no Docker daemon
2      to_build  docker-pkg-fixtures/build-tools:0.9.0-1  not checked: no Docker daemon
3      to_build  docker-pkg-fixtures/runtime:2.3.1-2-s1   not checked: no Docker daemon
4      to_build  docker-pkg-fixtures/tools:4.2.0-1        not checked: no Docker daemon
5      to_build  docker-pkg-fixtures/app:1.0-3            not checked: no Docker daemon
6      to_build  docker-pkg-fixtures/ci-runner:3.1.4-1    not checked: no Docker daemon
7      to_build  docker-pkg-fixtures/app-plugin:0.1.0-1   not checked: no Docker daemon
7 of 7 images to build.
`
	if stdout != want {
		t.Errorf("plan printed\n%s\nwant\n%s", stdout, want)
	}
	for _, said := range []string{"no Docker daemon answers at ", "warning: 1 problem; see docker-pkg lint ../../fixtures/images\n"} {
		if n := strings.Count(stderr, said); n != 1 {
			t.Errorf("stderr says %q %d times, want once:\n%s", said, n, stderr)
		}
	}
}

func TestPlanJSON(t *testing.T) {
	stdout, _, err := run(t, "plan", "--json", "--select", "*/app*", "../../fixtures/images")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Images []map[string]any `json:"images"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("plan --json printed invalid JSON: %v\n%s", err, stdout)
	}
	var order []string
	for _, img := range got.Images {
		order = append(order, img["name"].(string))
	}
	if want := []string{"core", "runtime", "app", "app-plugin"}; !reflect.DeepEqual(order, want) {
		t.Errorf("images = %v, want %v", order, want)
	}
	wantPlugin := map[string]any{
		"name": "app-plugin", "tag": "0.1.0-1", "label": "docker-pkg-fixtures/app-plugin:0.1.0-1",
		"dir": "app/plugins/app-plugin", "depends": []any{"app"}, "implied": []any{}, "state": "to_build",
		"reason": "not checked: no Docker daemon", "code": "no_daemon", "selected": true, "build": true,
	}
	if last := got.Images[len(got.Images)-1]; !reflect.DeepEqual(last, wantPlugin) {
		t.Errorf("app-plugin = %v\nwant %v", last, wantPlugin)
	}
	if core := got.Images[0]; core["selected"] != false || core["build"] != true {
		t.Errorf("core = %v, want a dependency the chain adds (selected false, build true)", core)
	}
}

// TestPlanJSONDepends checks depends lists the control file's Depends as
// written, images outside DIR and base images included, and implied the
// images only the templates name.
func TestPlanJSONDepends(t *testing.T) {
	dir := t.TempDir()
	image := func(name, control, template string) {
		t.Helper()
		files := map[string]string{
			"changelog": name + " (1.0-1) wikimedia; urgency=medium\n\n  * Change.\n\n" +
				" -- Author <a@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n",
			"Dockerfile.template": template,
		}
		if control != "" {
			files["control"] = control
		}
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		for f, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name, f), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	image("base", "", `FROM {{ "busybox" | image_tag }}`+"\n")
	image("tool", "", `FROM {{ "busybox" | image_tag }}`+"\n")
	// Depends names an image outside DIR first, a base image, then base;
	// the template also uses tool, which control does not list.
	image("app", "Source: app\nBuild-Depends: elsewhere (>= 2)\n\nPackage: app\nDepends: busybox, base\n",
		`FROM {{ "base" | image_tag }}`+"\n"+`COPY --from={{ "tool" | image_tag }} /bin/sh /tool`+"\n")
	stdout, stderr, err := run(t, "plan", "--json", dir)
	if err != nil {
		t.Fatal(err)
	}
	var got planJSON
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, stdout)
	}
	deps := map[string][2][]string{}
	for _, img := range got.Images {
		deps[img.Name] = [2][]string{img.Depends, img.Implied}
	}
	want := map[string][2][]string{
		"base": {{}, {}},
		"tool": {{}, {}},
		"app":  {{"elsewhere", "busybox", "base"}, {"tool"}},
	}
	if !reflect.DeepEqual(deps, want) {
		t.Errorf("depends and implied:\n%v\nwant\n%v", deps, want)
	}
	for _, said := range []string{"warning: 2 problems; see docker-pkg lint "} {
		if !strings.Contains(stderr, said) {
			t.Errorf("stderr lacks %q:\n%s", said, stderr)
		}
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"bad select", []string{"plan", "--select", "[z-a]", "../../fixtures/images"}, `malformed --select pattern "[z-a]"`},
		{"no dir", []string{"plan"}, "accepts 1 arg(s), received 0"},
		{"bad format", []string{"graph", "--format", "svg", "../../fixtures/images"}, `--format must be dot or mermaid, not "svg"`},
		{"missing dir", []string{"graph", "../../fixtures/nope"}, "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestGraph(t *testing.T) {
	tests := []struct {
		format string
		want   []string // lines the output must hold
	}{
		{"dot", []string{
			"digraph images {",
			"\t\"docker-pkg-fixtures/busybox:static\" [style=dashed];",
			"\t\"app-plugin\" [label=\"app-plugin\\n0.1.0-1\"];",
			"\t\"docker-pkg-fixtures/busybox:static\" -> \"core\";",
			"\t\"build-tools\" -> \"ci-runner\";",
			"\t\"runtime\" -> \"ci-runner\";",
			"\t\"app\" -> \"app-plugin\";",
		}},
		{"mermaid", []string{
			"graph TD",
			`    b0(["docker-pkg-fixtures/busybox:static"])`,
			`    i0["core:1.2.0-1"]`,
			"    b0 -.-> i0",
			"    i0 --> i1",
			"    i4 --> i6",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			stdout, _, err := run(t, "graph", "--format", tt.format, "../../fixtures/images")
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(stdout, "\n")
			for _, want := range tt.want {
				found := false
				for _, l := range lines {
					found = found || l == want
				}
				if !found {
					t.Errorf("graph --format %s lacks the line\n%s\nin\n%s", tt.format, want, stdout)
				}
			}
			if n := strings.Count(stdout, "->"); tt.format == "dot" && n != 8 {
				t.Errorf("graph has %d edges, want 8 (7 between images, 1 from the base image)", n)
			}
		})
	}
}

func TestPlanWhy(t *testing.T) {
	stdout, _, err := run(t, "plan", "--why", "app-plugin", "../../fixtures/images")
	if err != nil {
		t.Fatal(err)
	}
	want := `BUILD  STATE     LABEL                                   REASON
1      to_build  docker-pkg-fixtures/core:1.2.0-1        not checked: no Docker daemon
3      to_build  docker-pkg-fixtures/runtime:2.3.1-2-s1  not checked: no Docker daemon
5      to_build  docker-pkg-fixtures/app:1.0-3           not checked: no Docker daemon
7      to_build  docker-pkg-fixtures/app-plugin:0.1.0-1  not checked: no Docker daemon
`
	if stdout != want {
		t.Errorf("plan --why printed\n%s\nwant\n%s", stdout, want)
	}
	if _, _, err := run(t, "plan", "--why", "nope", "../../fixtures/images"); err == nil || !strings.Contains(err.Error(), "nope: no such image") {
		t.Errorf("plan --why nope: error = %v", err)
	}
}
