package image

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/changelog"
)

func entry(name, version string) string {
	return name + " (" + version + ") wikimedia; urgency=medium\n\n  * Change.\n\n" +
		" -- Author <a@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n"
}

// writeImage makes an image folder from a map of file name to content.
func writeImage(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoad(t *testing.T) {
	const tmpl = "FROM scratch\n"
	tests := []struct {
		name    string
		files   map[string]string
		naming  Naming
		want    Image // Dir and Dependency.File are filled in by the test
		wantErr string
	}{
		{
			name:  "no control file",
			files: map[string]string{"changelog": entry("core", "1.0-1")},
			want:  Image{Name: "core", Version: "1.0-1", Repo: "core", Tag: "1.0-1"},
		},
		{
			name:   "naming with a registry port, namespace and nightly suffix",
			files:  map[string]string{"changelog": entry("node20", "20.11.0-1")},
			naming: Naming{Registry: "127.0.0.1:5000", Namespace: "releng", TagSuffix: "-20260105"},
			want: Image{Name: "node20", Version: "20.11.0-1", Repo: "127.0.0.1:5000/releng/node20",
				Tag: "20.11.0-1-20260105"},
		},
		{
			name:  "build stage",
			files: map[string]string{"changelog": entry("tools", "2.3.1-2-s1"), "Dockerfile.build.template": tmpl},
			want:  Image{Name: "tools", Version: "2.3.1-2-s1", Repo: "tools", Tag: "2.3.1-2-s1", BuildStage: true},
		},
		{
			name: "depends and build-depends of every paragraph",
			files: map[string]string{
				"changelog": entry("app", "1.0-1"),
				"control": "# a comment\nSource: app\nbuild-depends: builder\n\n" +
					"Package: app\nDepends: core,\n runtime (>= 2.3),\n\t,\n  ,libs(<< 3)\nDescription: x\n more\n\n" +
					"Package: app-extra\nDEPENDS:   exact (= 1:1.0~rc1-1) , ,\n",
			},
			want: Image{Name: "app", Version: "1.0-1", Repo: "app", Tag: "1.0-1", Depends: []Dependency{
				{Name: "builder", Line: 3},
				{Name: "core", Line: 6},
				{Name: "runtime", Op: ">=", Version: "2.3", Line: 7},
				{Name: "libs", Op: "<<", Version: "3", Line: 9},
				{Name: "exact", Op: "=", Version: "1:1.0~rc1-1", Line: 14},
			}},
		},
		{
			name:  "every operator",
			files: map[string]string{"changelog": entry("a", "1"), "control": "Depends: b (>= 1), c (<= 1), d (>> 1), e (<< 1), f (= 1)\n"},
			want: Image{Name: "a", Version: "1", Repo: "a", Tag: "1", Depends: []Dependency{
				{Name: "b", Op: ">=", Version: "1", Line: 1},
				{Name: "c", Op: "<=", Version: "1", Line: 1},
				{Name: "d", Op: ">>", Version: "1", Line: 1},
				{Name: "e", Op: "<<", Version: "1", Line: 1},
				{Name: "f", Op: "=", Version: "1", Line: 1},
			}},
		},
		{
			name:  "empty depends",
			files: map[string]string{"changelog": entry("a", "1"), "control": "Source: a\nDepends:\nBuild-Depends: ,\n"},
			want:  Image{Name: "a", Version: "1", Repo: "a", Tag: "1"},
		},
		{
			name:    "alternatives",
			files:   map[string]string{"changelog": entry("a", "1"), "control": "Source: a\nDepends: core,\n b | c\n"},
			wantErr: `control:3: invalid image definition: "b | c": alternatives (a | b) are not supported`,
		},
		{
			name:    "architecture restriction",
			files:   map[string]string{"changelog": entry("a", "1"), "control": "Depends: b [amd64]\n"},
			wantErr: `control:1: invalid image definition: "b [amd64]": architecture and build-profile restrictions are not supported`,
		},
		{
			name:    "build profile",
			files:   map[string]string{"changelog": entry("a", "1"), "control": "Depends: b <!nocheck>\n"},
			wantErr: `control:1: invalid image definition: "b <!nocheck>": architecture and build-profile`,
		},
		{
			name:    "deprecated operator",
			files:   map[string]string{"changelog": entry("a", "1"), "control": "Depends: b (> 1)\n"},
			wantErr: `control:1: invalid image definition: "b (> 1)": want "name" or "name (op version)" with op one of >=, <=, >>, <<, =`,
		},
		{
			name:    "missing constraint version",
			files:   map[string]string{"changelog": entry("a", "1"), "control": "Depends: b (>=)\n"},
			wantErr: `control:1: invalid image definition: "b (>=)": want "name"`,
		},
		{
			name:    "invalid constraint version",
			files:   map[string]string{"changelog": entry("a", "1"), "control": "Depends: b (>= x1)\n"},
			wantErr: `control:1: invalid image definition: "b (>= x1)": invalid version "x1": version number does not start with digit`,
		},
		{
			name:    "substitution variable",
			files:   map[string]string{"changelog": entry("a", "1"), "control": "Depends: ${misc:Depends}\n"},
			wantErr: `control:1: invalid image definition: "${misc:Depends}": want "name"`,
		},
		{
			name:    "continuation outside a field",
			files:   map[string]string{"changelog": entry("a", "1"), "control": "Source: a\n\n core\n"},
			wantErr: "control:3: invalid image definition: continuation line outside a field",
		},
		{
			name:    "line without a colon",
			files:   map[string]string{"changelog": entry("a", "1"), "control": "Source: a\nDepends core\n"},
			wantErr: `control:2: invalid image definition: expected "Field: value", got "Depends core"`,
		},
		{
			name:    "tilde in the tag",
			files:   map[string]string{"changelog": entry("a", "1.0~rc1-1")},
			wantErr: `changelog: invalid image definition: version "1.0~rc1-1" gives the tag "1.0~rc1-1", which Docker does not accept: '~' is not allowed in a tag`,
		},
		{
			name:    "plus in the tag",
			files:   map[string]string{"changelog": entry("a", "1.0+dfsg-1")},
			wantErr: `'+' is not allowed in a tag`,
		},
		{
			name:    "epoch in the tag",
			files:   map[string]string{"changelog": entry("a", "1:1.0-1")},
			wantErr: `version "1:1.0-1" gives the tag "1:1.0-1", which Docker does not accept: ':' is not allowed in a tag`,
		},
		{
			name:    "tag too long with the suffix",
			files:   map[string]string{"changelog": entry("a", strings.Repeat("1", 120))},
			naming:  Naming{TagSuffix: "-20260105"},
			wantErr: "which Docker does not accept: it is 129 characters long, the limit is 128",
		},
		{
			name:  "tag of exactly 128 characters",
			files: map[string]string{"changelog": entry("a", strings.Repeat("1", 128))},
			want:  Image{Name: "a", Version: strings.Repeat("1", 128), Repo: "a", Tag: strings.Repeat("1", 128)},
		},
		{
			name:    "tag starting with a dot",
			files:   map[string]string{"changelog": entry("a", ".1")},
			wantErr: `which Docker does not accept: a tag cannot start with '.'`,
		},
		{
			name:    "upper case name",
			files:   map[string]string{"changelog": entry("Core", "1")},
			wantErr: `changelog: invalid image definition: Docker does not accept "Core" in a repository name`,
		},
		{
			name:    "plus in the name",
			files:   map[string]string{"changelog": entry("g++", "1")},
			wantErr: `Docker does not accept "g++" in a repository name: lower-case letters, digits and single separators (., _, __, -) only`,
		},
		{
			name:  "separators in the name",
			files: map[string]string{"changelog": entry("php8.1-fpm", "1")},
			want:  Image{Name: "php8.1-fpm", Version: "1", Repo: "php8.1-fpm", Tag: "1"},
		},
		{
			name:    "malformed changelog",
			files:   map[string]string{"changelog": "not a changelog\n"},
			wantErr: "changelog:1: malformed changelog",
		},
		{
			name:    "no changelog",
			files:   map[string]string{},
			wantErr: "changelog: no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"Dockerfile.template": tmpl}
			for k, v := range tt.files {
				files[k] = v
			}
			dir := writeImage(t, files)
			got, err := Load(dir, tt.naming)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load() error = %v, want it to contain %q", err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), dir) {
					t.Errorf("Load() error = %v, want it to name the file in %s", err, dir)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			want := tt.want
			want.Dir = dir
			for i := range want.Depends {
				want.Depends[i].File = filepath.Join(dir, "control")
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("Load() = %+v\nwant %+v", *got, want)
			}
		})
	}
}

func TestLoadErrorKinds(t *testing.T) {
	tests := []struct {
		name   string
		files  map[string]string
		target error
	}{
		{"bad tag", map[string]string{"Dockerfile.template": "", "changelog": entry("a", "1~1")}, ErrInvalid},
		{"bad control", map[string]string{"Dockerfile.template": "", "changelog": entry("a", "1"), "control": "Depends: a | b\n"}, ErrInvalid},
		{"bad changelog", map[string]string{"Dockerfile.template": "", "changelog": "x\n"}, changelog.ErrMalformed},
		{"no template", map[string]string{"changelog": entry("a", "1")}, os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(writeImage(t, tt.files), Naming{})
			if !errors.Is(err, tt.target) {
				t.Errorf("Load() error = %v, want errors.Is %v", err, tt.target)
			}
		})
	}
}

func TestLoadRelativeDir(t *testing.T) {
	dir := writeImage(t, map[string]string{"Dockerfile.template": "", "changelog": entry("a", "1")})
	t.Chdir(filepath.Dir(dir))
	img, err := Load(filepath.Base(dir), Naming{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Dir != dir {
		t.Errorf("Dir = %q, want the absolute %q", img.Dir, dir)
	}
}

func TestLoadPlatforms(t *testing.T) {
	tests := []struct {
		name    string
		control string
		want    []string
		wantErr string
	}{
		{"none", "Source: app\n", nil, ""},
		{"commas", "Source: app\nPlatforms: linux/amd64, linux/arm64/v8\n", []string{"linux/amd64", "linux/arm64"}, ""},
		{"folded", "Source: app\nPlatforms: linux/amd64\n linux/arm64\n  linux/amd64\nDepends: core\n", []string{"linux/amd64", "linux/arm64"}, ""},
		{"in the binary paragraph", "Source: app\n\nPackage: app\nPlatforms: linux/arm64\n", []string{"linux/arm64"}, ""},
		{"bad", "Source: app\nPlatforms: linux/amd64,\n arm64\n", nil, "control:3: invalid image definition: Platforms: platform \"arm64\""},
		{"empty", "Source: app\nPlatforms:\n", nil, "control:2: invalid image definition: Platforms: empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeImage(t, map[string]string{
				"changelog": entry("app", "1.0-1"), "Dockerfile.template": "FROM scratch\n", "control": tt.control,
			})
			img, err := Load(dir, Naming{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalid) {
					t.Fatalf("Load = %v, want an ErrInvalid saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(img.Platforms, tt.want) {
				t.Errorf("Platforms = %q, want %q", img.Platforms, tt.want)
			}
		})
	}
}
