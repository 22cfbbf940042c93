package builder

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
)

var updateDate = time.Date(2026, time.January, 5, 10, 0, 0, 0, time.FixedZone("CET", 3600))

// fixtureCopy copies fixtures/images into a temporary folder and returns
// it with the fixtures' configuration.
func fixtureCopy(t *testing.T) (string, *config.Config) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "images")
	if err := os.CopyFS(dir, os.DirFS("../fixtures/images")); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFiles("", "../fixtures/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return dir, cfg
}

// snapshot maps every file under dir to its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files[path] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// assertUnchanged fails for every file added, removed or changed since
// before was taken.
func assertUnchanged(t *testing.T, dir string, before map[string]string) {
	t.Helper()
	after := snapshot(t, dir)
	for path, old := range before {
		if got, ok := after[path]; !ok {
			t.Errorf("%s was removed", path)
		} else if got != old {
			t.Errorf("%s changed:\n%s", path, got)
		}
	}
	for path := range after {
		if _, ok := before[path]; !ok {
			t.Errorf("%s was created", path)
		}
	}
}

// request is the request of the tests: a fixed date and maintainer.
func request(t *testing.T, cfg *config.Config) UpdateRequest {
	t.Helper()
	t.Setenv("DEBFULLNAME", "Jane Doe")
	t.Setenv("DEBEMAIL", "jane@example.org")
	return NewUpdateRequest(t.Context(), cfg, updateDate)
}

func scanFor(t *testing.T, dir string, cfg *config.Config) *Tree {
	t.Helper()
	tree, err := scanTree(context.Background(), dir, cfg, image.Naming{Registry: cfg.Registry, Namespace: cfg.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// versions lists "name old -> new" for each change.
func versions(res *UpdateResult) []string {
	out := []string{}
	for _, c := range res.Changes {
		out = append(out, c.Image.Name+" "+c.Old+" -> "+c.New)
	}
	return out
}

func TestUpdateCascade(t *testing.T) {
	tests := []struct {
		name   string
		update string
		reason string
		want   []string // parents first
		// The entry expected on top of one changelog, relative to the tree.
		file, entry string
	}{
		{
			name:   "from the root, four levels",
			update: "core",
			want: []string{
				"core 1.2.0-1 -> 1.2.0-1-s1",
				"build-tools 0.9.0-1 -> 0.9.0-1-s1",
				"runtime 2.3.1-2-s1 -> 2.3.1-2-s2",
				"tools 4.2.0-1 -> 4.2.0-1-s1",
				"app 1.0-3 -> 1.0-3-s1",
				"ci-runner 3.1.4-1 -> 3.1.4-1-s1",
				"app-plugin 0.1.0-1 -> 0.1.0-1-s1",
			},
			file: "app/plugins/app-plugin/changelog",
			entry: "app-plugin (0.1.0-1-s1) wikimedia; urgency=high\n\n" +
				"   Refresh for update in parent image core:\n   Security update\n\n" +
				" -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n\n",
		},
		{
			name:   "the named image gets the reason as given",
			update: "core",
			reason: "CVE-2026-0001\nCVE-2026-0002",
			want: []string{
				"core 1.2.0-1 -> 1.2.0-1-s1",
				"build-tools 0.9.0-1 -> 0.9.0-1-s1",
				"runtime 2.3.1-2-s1 -> 2.3.1-2-s2",
				"tools 4.2.0-1 -> 4.2.0-1-s1",
				"app 1.0-3 -> 1.0-3-s1",
				"ci-runner 3.1.4-1 -> 3.1.4-1-s1",
				"app-plugin 0.1.0-1 -> 0.1.0-1-s1",
			},
			file: "core/changelog",
			entry: "core (1.2.0-1-s1) wikimedia; urgency=high\n\n" +
				"   CVE-2026-0001\n   CVE-2026-0002\n\n" +
				" -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n\n",
		},
		{
			name:   "from the middle: parents and siblings untouched",
			update: "runtime",
			want: []string{
				"runtime 2.3.1-2-s1 -> 2.3.1-2-s2",
				"app 1.0-3 -> 1.0-3-s1",
				"ci-runner 3.1.4-1 -> 3.1.4-1-s1",
				"app-plugin 0.1.0-1 -> 0.1.0-1-s1",
			},
			file: "app/changelog",
			entry: "app (1.0-3-s1) wikimedia; urgency=high\n\n" +
				"   Refresh for update in parent image runtime:\n   Security update\n\n" +
				" -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n\n",
		},
		{
			name:   "a leaf alone",
			update: "app-plugin",
			want:   []string{"app-plugin 0.1.0-1 -> 0.1.0-1-s1"},
			file:   "app/plugins/app-plugin/changelog",
			entry: "app-plugin (0.1.0-1-s1) wikimedia; urgency=high\n\n   Security update\n\n" +
				" -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, cfg := fixtureCopy(t)
			before := snapshot(t, dir)
			req := request(t, cfg)
			req.Name = tc.update
			if tc.reason != "" {
				req.Reason = tc.reason
			}
			res, err := scanFor(t, dir, cfg).update(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := versions(res); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("changes = %q\nwant %q", got, tc.want)
			}
			assertUnchanged(t, dir, before) // Update alone writes nothing
			if err := res.Write(context.Background()); err != nil {
				t.Fatal(err)
			}

			path := filepath.Join(dir, filepath.FromSlash(tc.file))
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if want := tc.entry + before[path]; string(got) != want {
				t.Errorf("%s =\n%q\nwant\n%q", tc.file, got, want)
			}
			// Every changelog in the cascade got exactly its entry on top of
			// the old bytes; every other file is as it was.
			changed := map[string]bool{}
			for _, c := range res.Changes {
				changed[c.Path] = true
				if !strings.HasPrefix(string(c.Entry), c.Image.Name+" ("+c.New+") wikimedia; urgency=high\n") {
					t.Errorf("%s entry = %q", c.Image.Name, c.Entry)
				}
			}
			after := snapshot(t, dir)
			for path, old := range before {
				want := old
				if changed[path] {
					want = string(resEntry(res, path)) + old
				}
				if after[path] != want {
					t.Errorf("%s = %q, want %q", path, after[path], want)
				}
			}
			if len(after) != len(before) {
				t.Errorf("%d files after the update, %d before", len(after), len(before))
			}
			// The tree reads back with the new versions.
			again := scanFor(t, dir, cfg)
			for _, c := range res.Changes {
				if v := again.Image(c.Image.Name).Version; v != c.New {
					t.Errorf("%s reads back as %s, want %s", c.Image.Name, v, c.New)
				}
			}
		})
	}
}

func resEntry(res *UpdateResult, path string) []byte {
	for _, c := range res.Changes {
		if c.Path == path {
			return c.Entry
		}
	}
	return nil
}

// setVersion rewrites the version in the top entry of a changelog.
func setVersion(t *testing.T, path, version string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.IndexByte(s, ')')
	if err := os.WriteFile(path, []byte(s[:open+1]+version+s[end:]), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestUpdateAllOrNothing(t *testing.T) {
	dir, cfg := fixtureCopy(t)
	// 126 characters: a valid tag whose bump (129) is not.
	long := "1." + strings.Repeat("0", 124)
	setVersion(t, filepath.Join(dir, "ci-runner", "changelog"), long)
	// A version that does not start with a digit cannot be ordered.
	setVersion(t, filepath.Join(dir, "app", "plugins", "app-plugin", "changelog"), "v0.1")
	// An unknown dependency outside the cascade still stops it: it may be a
	// typo hiding an image that should be updated.
	control := filepath.Join(dir, "tools", "control")
	b, err := os.ReadFile(control)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(control, []byte(strings.Replace(string(b), "core (>= 1.0)", "core (>= 1.0), runtme", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, dir)

	req := request(t, cfg)
	req.Name = "runtime"
	res, err := scanFor(t, dir, cfg).update(req)
	var uerr *UpdateError
	if !errors.As(err, &uerr) {
		t.Fatalf("Update() = %v, %v; want an *UpdateError", res, err)
	}
	wantProblems := []string{
		control + `:3: unknown dependency: tools depends on "runtme", which is neither an image under ` + dir + " nor in base_images",
		filepath.Join(dir, "ci-runner", "changelog") + `: ci-runner: cannot bump version "` + long + `": "` + long + `-s1" is not a valid Docker tag`,
		filepath.Join(dir, "app", "plugins", "app-plugin", "changelog") + `: app-plugin: cannot bump version "v0.1": invalid Debian version "v0.1-s1": version number does not start with digit`,
	}
	var got []string
	for _, p := range uerr.Problems {
		got = append(got, p.Error())
	}
	if !reflect.DeepEqual(got, wantProblems) {
		t.Errorf("problems =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantProblems, "\n"))
	}
	if !errors.Is(err, changelog.ErrCannotBump) || !errors.Is(err, ErrMissing) {
		t.Errorf("error %v does not match ErrCannotBump and ErrMissing", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "cannot update runtime: 3 problems, nothing written:\n  ") {
		t.Errorf("message = %q", msg)
	}
	assertUnchanged(t, dir, before)
}

func TestUpdateCycle(t *testing.T) {
	dir := writeTree(t,
		img("a", "a", "1.0", "b", "FROM scratch\n"),
		img("b", "b", "1.0", "a", "FROM scratch\n"),
		img("c", "c", "1.0", "", "FROM scratch\n"),
	)
	before := snapshot(t, dir)
	cfg := testConfig()
	_, err := scanTree(context.Background(), dir, cfg, image.Naming{})
	if !errors.Is(err, ErrCycle) || !strings.Contains(err.Error(), "a -> b -> a") {
		t.Fatalf("Scan() error = %v, want the cycle a -> b -> a", err)
	}
	assertUnchanged(t, dir, before)
}

func TestUpdateVersion(t *testing.T) {
	tests := []struct {
		name    string
		version string
		wantErr error  // nil: accepted
		problem string // the one problem, after the changelog path
	}{
		{name: "above", version: "1.3.0-1"},
		{name: "above under Debian rules, not as strings", version: "1.10.0-1"},
		{name: "lower", version: "1.1.9-1", wantErr: ErrNotAbove,
			problem: `core: version does not sort above the current one: the new version "1.1.9-1" is not above "1.2.0-1"`},
		{name: "equal", version: "1.2.0-1", wantErr: ErrNotAbove,
			problem: `core: version does not sort above the current one: the new version "1.2.0-1" is not above "1.2.0-1"`},
		{name: "tilde sorts below", version: "1.2.0-1~rc1", wantErr: ErrNotAbove,
			problem: `core: version does not sort above the current one: the new version "1.2.0-1~rc1" is not above "1.2.0-1"`},
		{name: "not a Debian version", version: "latest", wantErr: changelog.ErrInvalidVersion,
			problem: `core: invalid Debian version "latest": version number does not start with digit`},
		{name: "not a Docker tag", version: "1.2.0+dfsg-1", wantErr: ErrInvalidTag,
			problem: `core: version is not a valid Docker tag: "1.2.0+dfsg-1" (letters, digits, '_', '.' and '-', at most 128)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, cfg := fixtureCopy(t)
			req := request(t, cfg)
			req.Name, req.Version = "core", tc.version
			res, err := scanFor(t, dir, cfg).update(req)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got := versions(res)[:2]; !reflect.DeepEqual(got, []string{"core 1.2.0-1 -> " + tc.version, "build-tools 0.9.0-1 -> 0.9.0-1-s1"}) {
					t.Errorf("changes start %q", got)
				}
				return
			}
			var uerr *UpdateError
			if !errors.As(err, &uerr) || !errors.Is(err, tc.wantErr) {
				t.Fatalf("Update() error = %v, want an *UpdateError matching %v", err, tc.wantErr)
			}
			want := filepath.Join(dir, "core", "changelog") + ": " + tc.problem
			if len(uerr.Problems) != 1 || uerr.Problems[0].Error() != want {
				t.Errorf("problems = %q, want [%q]", uerr.Problems, want)
			}
		})
	}
}

func TestUpdateSelection(t *testing.T) {
	dir := writeTree(t,
		img("php", "php", "8.3.33-1", "", "FROM scratch\n"),
		img("sury-php", "sury-php", "8.2.1-1", "", "FROM scratch\n"),
		img("php-fpm", "php-fpm", "8.3.33-1", "php", "FROM scratch\n"),
		img("php-sury-fpm", "php-sury-fpm", "1.0", "php, sury-php", "FROM scratch\n"),
	)
	cfg, err := config.LoadFiles("", "../fixtures/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Namespace = "ns"
	tree := scanFor(t, dir, cfg)
	tests := []struct {
		name       string
		pick       func(*UpdateRequest)
		want       []string
		wantReason map[string]string // first reason line, by image
		wantErr    string
	}{
		{
			name: "a name is matched exactly",
			pick: func(r *UpdateRequest) { r.Name = "php" },
			want: []string{"php 8.3.33-1 -> 8.3.33-1-s1", "php-fpm 8.3.33-1 -> 8.3.33-1-s1", "php-sury-fpm 1.0 -> 1.0-s1"},
			wantReason: map[string]string{
				"php":          "Security update",
				"php-sury-fpm": "Refresh for update in parent image php:",
			},
		},
		{
			name: "the reference's glob, through Select",
			pick: func(r *UpdateRequest) { r.Select = "*php:*" },
			want: []string{"php 8.3.33-1 -> 8.3.33-1-s1", "sury-php 8.2.1-1 -> 8.2.1-1-s1", "php-fpm 8.3.33-1 -> 8.3.33-1-s1", "php-sury-fpm 1.0 -> 1.0-s1"},
			wantReason: map[string]string{
				"sury-php":     "Security update",
				"php-sury-fpm": "Refresh for update in parent images php, sury-php:",
			},
		},
		{
			name:       "a selected child gets the reason as given",
			pick:       func(r *UpdateRequest) { r.Select = "ns/php*" },
			want:       []string{"php 8.3.33-1 -> 8.3.33-1-s1", "php-fpm 8.3.33-1 -> 8.3.33-1-s1", "php-sury-fpm 1.0 -> 1.0-s1"},
			wantReason: map[string]string{"php-fpm": "Security update", "php-sury-fpm": "Security update"},
		},
		{
			name:    "unknown name",
			pick:    func(r *UpdateRequest) { r.Name = "ph" },
			wantErr: "updating ph: no such image under " + tree.Dir + " nor in base_images (the name is the short name from the changelog, or a base image as image_tag names it; use a selection for a pattern)",
		},
		{
			name:    "selection matching nothing",
			pick:    func(r *UpdateRequest) { r.Select = "php" },
			wantErr: `updating "php": no such image: no full label under ` + tree.Dir + " matches",
		},
		{
			name:    "version with a selection",
			pick:    func(r *UpdateRequest) { r.Select, r.Version = "*", "9.0" },
			wantErr: "updating: a new version applies to one named image, not to a selection",
		},
		{
			name:    "name and selection",
			pick:    func(r *UpdateRequest) { r.Name, r.Select = "php", "*" },
			wantErr: "updating: give an image name or a selection, not both",
		},
		{
			name:    "neither",
			pick:    func(r *UpdateRequest) {},
			wantErr: "updating: no image name or selection given",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := request(t, cfg)
			tc.pick(&req)
			res, err := tree.update(req)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("Update() = %v, %v; want error %q", res, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := versions(res); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("changes = %q\nwant %q", got, tc.want)
			}
			for _, c := range res.Changes {
				want, ok := tc.wantReason[c.Image.Name]
				if !ok {
					continue
				}
				if got := strings.SplitN(string(c.Entry), "\n", 4)[2]; got != "   "+want {
					t.Errorf("%s reason starts %q, want %q", c.Image.Name, got, "   "+want)
				}
			}
		})
	}
}

// A version constraint the new versions would break is a problem like the
// others.
func TestUpdateBreaksConstraint(t *testing.T) {
	dir := writeTree(t,
		img("base", "base", "1.0", "", "FROM scratch\n"),
		img("pinned", "pinned", "2.0", "base (= 1.0)", "FROM scratch\n"),
		img("loose", "loose", "2.0", "base (>= 1.0)", "FROM scratch\n"),
	)
	cfg, err := config.LoadFiles("", "../fixtures/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	req := request(t, cfg)
	req.Name = "base"
	_, err = scanFor(t, dir, cfg).update(req)
	want := filepath.Join(dir, "pinned", "control") + ":2: version constraint not met: pinned needs base (= 1.0), which the update would make 1.0-s1"
	var uerr *UpdateError
	if !errors.As(err, &uerr) || len(uerr.Problems) != 1 || uerr.Problems[0].Error() != want {
		t.Fatalf("Update() error = %v, want the one problem %q", err, want)
	}
}

func TestUpdateInterrupted(t *testing.T) {
	boom := errors.New("interrupted between stage and commit")
	tests := []struct {
		name    string
		fault   changelog.Fault // through a lock the test holds
		cancel  bool
		meddle  bool // change one changelog between Update and Write
		wantErr error
	}{
		{name: "failure after staging", fault: func(_ context.Context, s changelog.Step, _ int) error {
			if s == changelog.StepPrepared {
				return boom
			}
			return nil
		}, wantErr: boom},
		{name: "interrupt (cancelled context)", cancel: true, wantErr: context.Canceled},
		{name: "changelog changed meanwhile", meddle: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir, cfg := fixtureCopy(t)
			req := request(t, cfg)
			req.Name = "core"
			res, err := scanFor(t, dir, cfg).update(req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.meddle {
				setVersion(t, filepath.Join(dir, "app", "changelog"), "1.0-4")
			}
			before := snapshot(t, dir)
			if tc.fault != nil {
				res.Lock, err = changelog.Acquire(t.Context(), dir, changelog.WithFault(tc.fault))
				if err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			err = res.Write(ctx)
			if err == nil || !strings.HasPrefix(err.Error(), "updating changelogs, nothing written: ") {
				t.Fatalf("Write() error = %v, want nothing written", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("Write() error = %v, want %v", err, tc.wantErr)
			}
			if err := res.Lock.Release(); err != nil {
				t.Fatal(err)
			}
			// Every original intact, no staged file left behind.
			assertUnchanged(t, dir, before)
		})
	}
}

// A tree scanned for a nightly build has tags with a date suffix; the
// update bumps the changelog version, not that tag.
func TestUpdateNightlyTree(t *testing.T) {
	dir, cfg := fixtureCopy(t)
	n := image.Naming{Namespace: cfg.Namespace, TagSuffix: "-20260816"}
	tree, err := scanTree(context.Background(), dir, cfg, n)
	if err != nil {
		t.Fatal(err)
	}
	req := request(t, cfg)
	req.Name = "app"
	res, err := tree.update(req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := versions(res), []string{"app 1.0-3 -> 1.0-3-s1", "app-plugin 0.1.0-1 -> 0.1.0-1-s1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("changes = %q, want %q", got, want)
	}
}

// TestUpdateBaseImage updates a base_images entry, named as image_tag
// names it: every image built on it (a template's image_tag, or Depends)
// and their descendants are bumped, each entry saying, as the reference
// does, "Refresh for update in parent image NAME:" and the reason.
func TestUpdateBaseImage(t *testing.T) {
	dir, cfg := fixtureCopy(t)
	cfg.BaseImages = append(cfg.BaseImages, "docker-pkg-fixtures/bookworm:20260101")
	// tools names the second base through Depends only.
	control := filepath.Join(dir, "tools", "control")
	data, err := os.ReadFile(control)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(control, []byte(strings.Replace(string(data), "Build-Depends: core (>= 1.0)", "Build-Depends: core (>= 1.0), bookworm", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	tree := scanFor(t, dir, cfg)

	tests := []struct {
		name, base string
		want       []string
		file       string
	}{
		{"image_tag, the whole tree", "busybox", []string{
			"core 1.2.0-1 -> 1.2.0-1-s1",
			"build-tools 0.9.0-1 -> 0.9.0-1-s1",
			"runtime 2.3.1-2-s1 -> 2.3.1-2-s2",
			"tools 4.2.0-1 -> 4.2.0-1-s1",
			"app 1.0-3 -> 1.0-3-s1",
			"ci-runner 3.1.4-1 -> 3.1.4-1-s1",
			"app-plugin 0.1.0-1 -> 0.1.0-1-s1",
		}, "app/changelog"},
		{"Depends, one image", "bookworm", []string{"tools 4.2.0-1 -> 4.2.0-1-s1"}, "tools/changelog"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(t, cfg)
			req.Name, req.Reason = tt.base, "Weekly refresh of the base"
			res, err := tree.update(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := versions(res); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("versions\n%q\nwant\n%q", got, tt.want)
			}
			for _, c := range res.Changes {
				if !strings.Contains(string(c.Entry), "\n   Refresh for update in parent image "+tt.base+":\n   Weekly refresh of the base\n") {
					t.Errorf("%s: entry\n%s\ndoes not say it refreshes for %s", c.Image.Name, c.Entry, tt.base)
				}
				if c.Path == filepath.Join(dir, filepath.FromSlash(tt.file)) {
					want := c.Image.Name + " (" + c.New + ") wikimedia; urgency=high\n\n" +
						"   Refresh for update in parent image " + tt.base + ":\n   Weekly refresh of the base\n\n" +
						" -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n\n"
					if string(c.Entry) != want {
						t.Errorf("%s entry\n%q\nwant\n%q", tt.file, c.Entry, want)
					}
				}
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		req := request(t, cfg)
		req.Name, req.Version = "busybox", "2"
		if _, err := tree.update(req); err == nil || !strings.Contains(err.Error(), "is a base image") {
			t.Errorf("--version on a base image: error = %v", err)
		}
		req.Name, req.Version = "nosuch", ""
		if _, err := tree.update(req); !errors.Is(err, ErrNoSuchImage) || !strings.Contains(err.Error(), "base_images") {
			t.Errorf("an unknown name: error = %v, want ErrNoSuchImage naming base_images", err)
		}
		cfg := *cfg
		cfg.BaseImages = append(cfg.BaseImages, "docker-pkg-fixtures/unused:1")
		req.Name = "unused"
		if _, err := scanFor(t, dir, &cfg).update(req); err == nil || !strings.Contains(err.Error(), "no image under") {
			t.Errorf("a base no image uses: error = %v", err)
		}
	})
}
