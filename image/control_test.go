package image

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestAddDepends(t *testing.T) {
	tests := []struct {
		name, in string
		add      []string
		want     string
	}{
		{"one line", "Source: app\n\nPackage: app\nDepends: runtime\nDescription: x\n", []string{"core"},
			"Source: app\n\nPackage: app\nDepends: runtime, core\nDescription: x\n"},
		{"one item per line, trailing comma", "Source: b\n\nPackage: b\nDepends:\n core,\nDescription: y\n", []string{"x", "y"},
			"Source: b\n\nPackage: b\nDepends:\n core,\n x,\n y,\nDescription: y\n"},
		{"folded without trailing comma", "Package: b\nDepends: a,\n\tb\n", []string{"c"},
			"Package: b\nDepends: a,\n\tb,\n\tc\n"},
		{"empty field", "Package: b\nDepends:\nDescription: z\n", []string{"c"},
			"Package: b\nDepends: c\nDescription: z\n"},
		{"no Depends: before the binary package's Description", "Source: t\nBuild-Depends: core (>= 1.0)\n\nPackage: t\nDescription: shell\n tools\n", []string{"core"},
			"Source: t\nBuild-Depends: core (>= 1.0)\n\nPackage: t\nDepends: core\nDescription: shell\n tools\n"},
		{"no Depends, one paragraph, comments kept", "# a comment\nSource: t\n", []string{"a", "b"},
			"# a comment\nSource: t\nDepends: a, b\n"},
		{"no final newline", "Package: t\nDepends: a", []string{"b"}, "Package: t\nDepends: a, b\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), ControlFile)
			if err := os.WriteFile(path, []byte(tt.in), 0o640); err != nil {
				t.Fatal(err)
			}
			if err := AddDepends(path, "img", tt.add); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("control\n%q\nwant\n%q", got, tt.want)
			}
			if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o640 {
				t.Errorf("mode %v, %v; want 0640 kept", info.Mode().Perm(), err)
			}
			c, err := readControl(path)
			if err != nil {
				t.Fatal(err)
			}
			deps := c.depends
			for _, n := range tt.add {
				if !slices.ContainsFunc(deps, func(d Dependency) bool { return d.Name == n }) {
					t.Errorf("%s is not among the dependencies read back: %+v", n, deps)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".control*")); len(left) > 0 {
				t.Errorf("left behind %q", left)
			}
		})
	}
}

func TestAddDependsCreatesControl(t *testing.T) {
	path := filepath.Join(t.TempDir(), ControlFile)
	if err := AddDepends(path, "app", []string{"runtime"}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	if want := "Source: app\n\nPackage: app\nDepends: runtime\n"; string(got) != want {
		t.Errorf("new control %q, want %q", got, want)
	}
}
