package image

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
)

// contextFile is one entry of an image folder for the digest tests.
type contextFile struct {
	path    string
	mode    os.FileMode // os.ModeDir and os.ModeSymlink as in fs
	content string      // the target of a symbolic link
}

var recordFolder = []contextFile{
	{".dockerignore", 0o644, "*.log\n!keep.log\nsecret/\n"},
	{"Dockerfile", 0o644, "FROM scratch\n"}, // replaced by the rendered one
	{"Dockerfile.template", 0o644, "FROM {{ \"base\" | image_tag }}\nCOPY . /srv/\n"},
	{"changelog", 0o644, "app (1.0-1) wikimedia; urgency=medium\n"},
	{"bin", os.ModeDir | 0o755, ""},
	{"bin/run", 0o755, "#!/bin/sh\necho hi\n"},
	{"bin/run.sh", os.ModeSymlink, "run"},
	{"conf", os.ModeDir | 0o750, ""},
	{"conf/app.yaml", 0o640, "port: 8080\n"},
	{"build.log", 0o644, "ignored\n"},
	{"keep.log", 0o644, "kept by an exception\n"},
	{"secret", os.ModeDir | 0o700, ""},
	{"secret/key", 0o600, "ignored\n"},
}

// writeFolder writes files into a new folder in the given order, each with
// its own modification time, and returns the folder.
func writeFolder(t *testing.T, files []contextFile, mtime time.Time) string {
	t.Helper()
	dir := t.TempDir()
	for i, f := range files {
		path := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case f.mode&os.ModeDir != 0:
			err = os.MkdirAll(path, 0o700)
		case f.mode&os.ModeSymlink != 0:
			err = os.Symlink(f.content, path)
		default:
			err = os.WriteFile(path, []byte(f.content), 0o600)
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.mode&os.ModeSymlink == 0 {
			// Past the umask: the test's modes must be exact.
			if err := os.Chmod(path, f.mode.Perm()); err != nil {
				t.Fatal(err)
			}
			at := mtime.Add(time.Duration(i) * time.Minute)
			if err := os.Chtimes(path, at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

var recordInputs = Inputs{
	Dockerfile: []byte("FROM ns/base:1.0\nCOPY . /srv/\n"),
	Parents:    map[string]string{"ns/base:1.0": "sha256:1111111111111111111111111111111111111111111111111111111111111111"},
}

func digest(t *testing.T, dir string, in Inputs) string {
	t.Helper()
	d, err := InputsDigest(context.Background(), dir, "", in)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestRecordInputsDigestStable builds the digest from two copies of a
// folder written in opposite orders with different times, as two
// checkouts on two machines would be.
func TestRecordInputsDigestStable(t *testing.T) {
	reversed := make([]contextFile, 0, len(recordFolder))
	for i := len(recordFolder) - 1; i >= 0; i-- {
		f := recordFolder[i]
		// Different content where .dockerignore drops it, or the rendered
		// Dockerfile replaces it.
		if f.path == "build.log" || f.path == "secret/key" || f.path == "Dockerfile" {
			f.content = "something else entirely\n"
		}
		reversed = append(reversed, f)
	}
	a := writeFolder(t, recordFolder, time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC))
	b := writeFolder(t, reversed, time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))

	first, second, other := digest(t, a, recordInputs), digest(t, a, recordInputs), digest(t, b, recordInputs)
	if first != second {
		t.Errorf("two runs on one folder: %s then %s", first, second)
	}
	if first != other {
		t.Errorf("two copies of one folder: %s and %s", first, other)
	}
	// Pinned: a change in how the digest is made changes it for every image
	// ever built, which then all look changed; that must be deliberate.
	const want = "sha256:97731bc012dec25583bec96ee8a09f1e5a99bd9a6fe3202bd05b1239b8d4a2be"
	if first != want {
		t.Errorf("InputsDigest() = %s, want %s", first, want)
	}
}

func TestRecordInputsDigestChanges(t *testing.T) {
	base := digest(t, writeFolder(t, recordFolder, time.Now()), recordInputs)
	with := func(change func([]contextFile) []contextFile) []contextFile {
		files := append([]contextFile(nil), recordFolder...)
		return change(files)
	}
	set := func(path string, f func(*contextFile)) func([]contextFile) []contextFile {
		return func(files []contextFile) []contextFile {
			for i := range files {
				if files[i].path == path {
					f(&files[i])
				}
			}
			return files
		}
	}
	other := recordInputs
	other.Parents = map[string]string{"ns/base:1.0": "sha256:2222222222222222222222222222222222222222222222222222222222222222"}
	tests := []struct {
		name    string
		files   []contextFile
		in      Inputs
		changed bool
	}{
		{"file mode", with(set("conf/app.yaml", func(f *contextFile) { f.mode = 0o644 })), recordInputs, true},
		{"file content", with(set("bin/run", func(f *contextFile) { f.content += "echo bye\n" })), recordInputs, true},
		{"folder mode", with(set("conf", func(f *contextFile) { f.mode = os.ModeDir | 0o755 })), recordInputs, true},
		{"symbolic link target", with(set("bin/run.sh", func(f *contextFile) { f.content = "./run" })), recordInputs, true},
		{"file renamed", with(set("conf/app.yaml", func(f *contextFile) { f.path = "conf/app.yml" })), recordInputs, true},
		{"file added", append(with(func(f []contextFile) []contextFile { return f }), contextFile{"new", 0o644, ""}), recordInputs, true},
		{"content moved between files", with(func(files []contextFile) []contextFile {
			files = set("bin/run", func(f *contextFile) { f.content = "#!/bin/sh\n" })(files)
			return set("conf/app.yaml", func(f *contextFile) { f.content = "echo hi\nport: 8080\n" })(files)
		}), recordInputs, true},
		{"rendered Dockerfile", recordFolder, Inputs{Dockerfile: []byte("FROM ns/base:1.0\nCOPY . /opt/\n"), Parents: recordInputs.Parents}, true},
		{"build Dockerfile added", recordFolder, Inputs{Dockerfile: recordInputs.Dockerfile, BuildDockerfile: []byte{}, Parents: recordInputs.Parents}, true},
		{"parent rebuilt", recordFolder, other, true},
		{"ignored file", with(set("secret/key", func(f *contextFile) { f.content = "new\n" })), recordInputs, false},
		{"folder's own Dockerfile", with(set("Dockerfile", func(f *contextFile) { f.content = "FROM busybox\n" })), recordInputs, false},
		{"nothing", recordFolder, recordInputs, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := digest(t, writeFolder(t, tt.files, time.Now().Add(-time.Hour)), tt.in)
			if changed := got != base; changed != tt.changed {
				t.Errorf("digest changed = %v (%s -> %s), want %v", changed, base, got, tt.changed)
			}
		})
	}
}

func TestRecordParents(t *testing.T) {
	tests := []struct {
		name     string
		df, bdf  string
		wantBase string
		wantAll  []string
	}{
		{"one FROM", "FROM ns/base:1.0\nRUN true\n", "", "ns/base:1.0", []string{"ns/base:1.0"}},
		{"platform flag and lower case", "from --platform=linux/amd64 ns/base:1.0\n", "", "ns/base:1.0", []string{"ns/base:1.0"}},
		{"scratch", "FROM scratch\nCOPY x /\n", "", "", nil},
		{"continued line", "FROM \\\n  127.0.0.1:5000/ns/base:1.0 AS build\n", "", "127.0.0.1:5000/ns/base:1.0", []string{"127.0.0.1:5000/ns/base:1.0"}},
		{"multi-stage", "FROM ns/build:2 AS build\nRUN make\nFROM ns/run:1\nCOPY --from=build /out /\nCOPY --from=ns/tools:3 /bin/t /bin/\nCOPY --from=0 /x /\n",
			"", "ns/build:2", []string{"ns/build:2", "ns/run:1", "ns/tools:3"}},
		{"stage used as a base", "FROM ns/a:1 AS Base\nFROM base\n", "", "ns/a:1", []string{"ns/a:1"}},
		{"variable", "ARG BASE=x\nFROM $BASE\nFROM ns/b:1\n", "", "", []string{"ns/b:1"}},
		{"build Dockerfile", "FROM ns/run:1\n", "FROM ns/sdk:1\nRUN make\n", "ns/run:1", []string{"ns/run:1", "ns/sdk:1"}},
		{"repeated", "FROM ns/a:1\n", "FROM ns/a:1\n", "ns/a:1", []string{"ns/a:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var bdf []byte
			if tt.bdf != "" {
				bdf = []byte(tt.bdf)
			}
			base, all, err := Parents([]byte(tt.df), bdf)
			if err != nil {
				t.Fatal(err)
			}
			if base != tt.wantBase || !reflect.DeepEqual(all, tt.wantAll) {
				t.Errorf("Parents() = %q, %q; want %q, %q", base, all, tt.wantBase, tt.wantAll)
			}
		})
	}
	if _, _, err := Parents([]byte("FROM a\n"), []byte("")); err == nil || !strings.Contains(err.Error(), "build Dockerfile") {
		t.Errorf("Parents() of an empty build Dockerfile: error = %v, want one naming the build Dockerfile", err)
	}
}

func TestRecordLabels(t *testing.T) {
	img := &Image{Name: "app", Version: "1.0-1"}
	rec := Record{
		Title: "app", Version: "1.0-1", Created: time.Date(2026, 1, 5, 10, 0, 0, 0, time.FixedZone("CET", 3600)),
		BaseName: "ns/base:1.0", BaseDigest: "sha256:11", Inputs: "sha256:22",
		Parents: map[string]string{"ns/base:1.0": "sha256:11", "127.0.0.1:5000/ns/other:2": "sha256:33"},
	}
	labels := rec.Labels()
	// One label, the tool's own, so one LABEL step and nothing an image
	// built FROM this one would take for its own identity.
	want := `{"v":1,"name":"app","version":"1.0-1","created":"2026-01-05T09:00:00Z","base":"ns/base:1.0","inputs":"sha256:22",` +
		`"parents":{"127.0.0.1:5000/ns/other:2":"sha256:33","ns/base:1.0":"sha256:11"}}`
	if len(labels) != 1 || labels[LabelRecord] != want {
		t.Errorf("Labels() = %q\nwant only %s = %s", labels, LabelRecord, want)
	}
	got, ok := ParseRecord(img, labels)
	if !ok || !got.Created.Equal(rec.Created) {
		t.Fatalf("ParseRecord() = %+v, %v", got, ok)
	}
	got.Created = rec.Created
	if !reflect.DeepEqual(got, rec) {
		t.Errorf("ParseRecord() = %+v, want %+v", got, rec)
	}

	tests := []struct {
		name   string
		labels map[string]string
	}{
		{"no labels", nil},
		{"a parent's record, inherited", (Record{Title: "base", Version: "1.0", Inputs: "sha256:33"}).Labels()},
		{"an older version's", (Record{Title: "app", Version: "0.9-1", Inputs: "sha256:33"}).Labels()},
		{"no inputs digest", (Record{Title: "app", Version: "1.0-1"}).Labels()},
		{"not JSON", map[string]string{LabelRecord: "app 1.0-1"}},
		{"a later format", map[string]string{LabelRecord: `{"v":2,"name":"app","version":"1.0-1","inputs":"sha256:22"}`}},
		{"legacy, no inputs digest", map[string]string{legacyTitle: "app", legacyVersion: "1.0-1"}},
		{"legacy, inherited", legacyLabels(Record{Title: "base", Version: "1.0", Inputs: "sha256:33"})},
		{"legacy labels inherited, own record a parent's", func() map[string]string {
			l := legacyLabels(rec) // what an old parent left, as if it were app
			l[LabelRecord] = (Record{Title: "base", Version: "1.0", Inputs: "sha256:33"}).Labels()[LabelRecord]
			return l
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, ok := ParseRecord(img, tt.labels); ok {
				t.Errorf("ParseRecord() = %+v, true; want no record", r)
			}
		})
	}
}

// legacyLabels writes r as docker-pkg did before LabelRecord: a label
// each.
func legacyLabels(r Record) map[string]string {
	return map[string]string{
		legacyTitle:      r.Title,
		legacyVersion:    r.Version,
		legacyCreated:    r.Created.UTC().Format(time.RFC3339),
		legacyRevision:   r.Revision,
		legacyBaseName:   r.BaseName,
		legacyBaseDigest: r.BaseDigest,
		legacyInputs:     r.Inputs,
		legacyParents:    formatParentsForTest(r.Parents),
	}
}

func formatParentsForTest(parents map[string]string) string {
	var pairs []string
	for label, id := range parents {
		pairs = append(pairs, label+"="+id)
	}
	slices.Sort(pairs)
	return strings.Join(pairs, " ")
}

// TestRecordLegacyLabels reads a record as earlier versions wrote it, so
// that their images keep their record (and are not all "changed").
func TestRecordLegacyLabels(t *testing.T) {
	img := &Image{Name: "core", Version: "1.2.0-1"}
	// The labels of fixtures/images/core built by the previous version.
	labels := map[string]string{
		"org.opencontainers.image.title":       "core",
		"org.opencontainers.image.version":     "1.2.0-1",
		"org.opencontainers.image.created":     "2026-11-29T03:55:29Z",
		"org.opencontainers.image.revision":    "",
		"org.opencontainers.image.base.name":   "ns/busybox:static",
		"org.opencontainers.image.base.digest": "sha256:fe55",
		"org.docker-pkg.parents":               "ns/busybox:static=sha256:fe55",
		"org.docker-pkg.inputs.digest":         "sha256:1839",
	}
	got, ok := ParseRecord(img, labels)
	want := Record{
		Title: "core", Version: "1.2.0-1", Created: time.Date(2026, 11, 29, 3, 55, 29, 0, time.UTC),
		BaseName: "ns/busybox:static", BaseDigest: "sha256:fe55", Inputs: "sha256:1839",
		Parents: map[string]string{"ns/busybox:static": "sha256:fe55"},
	}
	if !ok || !reflect.DeepEqual(got, want) {
		t.Errorf("ParseRecord(legacy labels) = %+v, %v\nwant %+v", got, ok, want)
	}
	// A child built now on that parent inherits the legacy labels beside
	// its own record: its own wins.
	child := &Image{Name: "runtime", Version: "2.0"}
	labels[LabelRecord] = (Record{Title: "runtime", Version: "2.0", Inputs: "sha256:44", BaseName: "ns/core:1.2.0-1", BaseDigest: "sha256:c0",
		Parents: map[string]string{"ns/core:1.2.0-1": "sha256:c0"}}).Labels()[LabelRecord]
	if r, ok := ParseRecord(child, labels); !ok || r.Inputs != "sha256:44" || r.BaseDigest != "sha256:c0" {
		t.Errorf("ParseRecord(own record beside inherited legacy labels) = %+v, %v", r, ok)
	}
}

func TestRecordAnnotations(t *testing.T) {
	rec := Record{Title: "app", Version: "1.0-1", Created: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC),
		BaseName: "ns/base:1.0", BaseDigest: "sha256:11", Inputs: "sha256:22"}
	want := map[string]string{
		"org.opencontainers.image.title":       "app",
		"org.opencontainers.image.version":     "1.0-1",
		"org.opencontainers.image.created":     "2026-01-05T09:00:00Z",
		"org.opencontainers.image.base.name":   "ns/base:1.0",
		"org.opencontainers.image.base.digest": "sha256:11",
	}
	if got := rec.Annotations(); !reflect.DeepEqual(got, want) {
		t.Errorf("Annotations() = %v, want %v", got, want)
	}
}

func TestRecordRevision(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	repo := t.TempDir()
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	for _, args := range [][]string{
		{"init", "-q"},
		{"-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "first"},
	} {
		if out, err := exec.Command("git", append([]string{"-C", repo}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(repo, "images", "app")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if got, want := Revision(context.Background(), sub), strings.TrimSpace(string(head)); got != want || len(got) != 40 {
		t.Errorf("Revision() in a repository = %q, want %q", got, want)
	}
	if got := Revision(context.Background(), t.TempDir()); got != "" {
		t.Errorf("Revision() outside a repository = %q, want empty", got)
	}
}

// TestRecordBuildDaemon builds an image with its record and reads it back:
// the base is the image the daemon had under the FROM's name.
func TestRecordBuildDaemon(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	ctx := t.Context()
	dir := writeFolder(t, recordFolder, time.Now())
	var buildLog bytes.Buffer
	img := daemonImage(t, cli, dir, &buildLog)
	img.Name, img.Version = "app", "1.0-1"
	df := []byte("FROM " + base + "\nCOPY bin /bin2/\n")

	rec, err := NewRecord(ctx, img, df, nil, "0123456789012345678901234567890123456789", inspectID(cli))
	if err != nil {
		t.Fatal(err)
	}
	baseInfo, err := cli.ImageInspect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if rec.BaseName != base || rec.BaseDigest != baseInfo.ID || time.Since(rec.Created) > time.Hour {
		t.Errorf("NewRecord() = %+v, want base %s %s, created now", rec, base, baseInfo.ID)
	}
	if want := digest(t, dir, Inputs{Dockerfile: df, Parents: map[string]string{base: baseInfo.ID}}); rec.Inputs != want {
		t.Errorf("NewRecord() inputs %s, want %s", rec.Inputs, want)
	}
	if _, err := build(ctx, cli, img, BuildRequest{Dockerfile: df, NoCache: true, Labels: rec.Labels(), Log: &buildLog}); err != nil {
		t.Fatalf("%v\n%s", err, buildLog.String())
	}
	info, err := cli.ImageInspect(ctx, img.Label())
	if err != nil {
		t.Fatal(err)
	}
	got, ok := ParseRecord(img, info.Config.Labels)
	if !ok || got.Inputs != rec.Inputs || got.BaseDigest != rec.BaseDigest || got.Revision != rec.Revision {
		t.Errorf("record read back = %+v, %v; want %+v", got, ok, rec)
	}
	// The classic builder makes a LABEL step, and a history entry, of
	// each label: the record is one.
	hist, err := cli.ImageHistory(ctx, img.Label())
	if err != nil {
		t.Fatal(err)
	}
	labelSteps := 0
	for _, h := range hist.Items {
		if strings.Contains(h.CreatedBy, "LABEL ") {
			labelSteps++
		}
	}
	if labelSteps != 1 || len(info.Config.Labels) != 1 {
		t.Errorf("the record took %d LABEL steps and %d labels, want 1 and 1: %v", labelSteps, len(info.Config.Labels), info.Config.Labels)
	}

	_, err = NewRecord(ctx, img, []byte("FROM docker-pkg-test/never-built:0\n"), nil, "", inspectID(cli))
	if err == nil || !strings.Contains(err.Error(), "docker-pkg-test/never-built:0 is not in the local daemon") {
		t.Errorf("NewRecord() with a missing parent: error = %v", err)
	}
}

// inspectID resolves parents in the daemon, as a local build does.
func inspectID(cli *client.Client) Resolver {
	return func(ctx context.Context, label string) (string, error) {
		res, err := cli.ImageInspect(ctx, label)
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("parent image %s is not in the local daemon", label)
		}
		return res.ID, err
	}
}
