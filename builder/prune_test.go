package builder

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// pruneNamespace is a namespace no other test run uses, so the daemon's
// images under it are the test's alone.
func pruneNamespace(t *testing.T) string {
	t.Helper()
	return fmt.Sprintf("docker-pkg-test/prune-%d-%d", os.Getpid(), time.Now().UnixNano())
}

// importImage makes a tiny image of its own (its own ID) tagged ref, and
// removes the tag when the test ends.
func importImage(t *testing.T, cli *client.Client, ref string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte(ref + "\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "ref", Mode: 0o644, Size: int64(len(body))}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	res, err := cli.ImageImport(t.Context(), client.ImageImportSource{Source: &buf, SourceName: "-"}, ref, client.ImageImportOptions{})
	if err != nil {
		t.Fatalf("importing %s: %v", ref, err)
	}
	out, err := io.ReadAll(res)
	res.Close()
	if err != nil || bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("importing %s: %v %s", ref, err, out)
	}
	removeAtEnd(t, cli, ref)
}

func tagImage(t *testing.T, cli *client.Client, source, ref string) {
	t.Helper()
	if _, err := cli.ImageTag(t.Context(), client.ImageTagOptions{Source: source, Target: ref}); err != nil {
		t.Fatal(err)
	}
	removeAtEnd(t, cli, ref)
}

func removeAtEnd(t *testing.T, cli *client.Client, ref string) {
	t.Cleanup(func() {
		_, err := cli.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("cleaning up %s: %v", ref, err)
		}
	})
}

// exists reports which of refs the daemon has.
func exists(t *testing.T, cli *client.Client, refs ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, ref := range refs {
		_, err := cli.ImageInspect(t.Context(), ref)
		switch {
		case err == nil:
			out[ref] = true
		case cerrdefs.IsNotFound(err):
			out[ref] = false
		default:
			t.Fatal(err)
		}
	}
	return out
}

// pruneTree is x <- y (y depends on x) and z, under namespace ns.
func pruneTree(t *testing.T, ns string) *Tree {
	t.Helper()
	dir := writeTree(t,
		img("x", "x", "1.2", "", "FROM scratch\n"),
		img("y", "y", "2.0", "x", "FROM scratch\n"),
		img("z", "z", "1.0", "", "FROM scratch\n"),
	)
	tree, err := scanTree(context.Background(), dir, testConfig(), image.Naming{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// summary is a report in comparable form.
type summary struct {
	Label   string
	Removed []string
	Errors  []string
}

func summarize(reports []PruneReport) []summary {
	out := []summary{}
	for _, r := range reports {
		s := summary{Label: r.Label, Removed: slices.Sorted(slices.Values(r.Removed))}
		for _, err := range r.Errors {
			s.Errors = append(s.Errors, err.Error())
		}
		out = append(out, s)
	}
	return out
}

func TestPrune(t *testing.T) {
	cli := testenv.Docker(t)
	busybox := testenv.Busybox(t, cli)
	ns := pruneNamespace(t)
	x, y, z := ns+"/x", ns+"/y", ns+"/z"
	for _, ref := range []string{x + ":1.0", x + ":1.1", x + ":1.2", y + ":1.9", y + ":2.0", z + ":0.1"} {
		importImage(t, cli, ref)
	}
	// An old version that is the same image as a tag of another
	// repository: only its own tag goes.
	tagImage(t, cli, busybox, x+":0.9")
	// An old version a container (created, never started) still uses.
	name := strings.NewReplacer("/", "-").Replace(ns) + "-user"
	ctr, err := cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{
		Name:   name,
		Config: &container.Config{Image: x + ":1.1", Cmd: []string{"/never-run"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := cli.ContainerRemove(context.Background(), ctr.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			t.Errorf("cleaning up container %s: %v", name, err)
		}
	})

	var progress []string
	reports, err := builderFor(t, pruneTree(t, ns), testConfig(), WithEngine(cli)).Prune(t.Context(), PruneOptions{
		Select:   "*/[xy]:*",
		Progress: func(r PruneReport) { progress = append(progress, r.Label) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []summary{ // children before parents
		{Label: y + ":2.0", Removed: []string{y + ":1.9"}},
		{Label: x + ":1.2", Removed: []string{x + ":0.9", x + ":1.0"}, Errors: []string{
			fmt.Sprintf("removing %s:1.1: image in use by container %s (%.12s); left in place", x, name, ctr.ID),
		}},
	}
	if got := summarize(reports); !reflect.DeepEqual(got, want) {
		t.Errorf("reports = %+v\nwant %+v", got, want)
	}
	if !errors.Is(reports[1].Errors[0], ErrInUse) || !reports[1].Failed() || reports[0].Failed() {
		t.Errorf("in-use error %v does not match ErrInUse, or Failed is wrong", reports[1].Errors[0])
	}
	if want := []string{y + ":2.0", x + ":1.2"}; !reflect.DeepEqual(progress, want) {
		t.Errorf("progress = %q, want %q", progress, want)
	}
	wantExists := map[string]bool{
		x + ":0.9": false, x + ":1.0": false, x + ":1.1": true, x + ":1.2": true,
		y + ":1.9": false, y + ":2.0": true,
		z + ":0.1": true, // not selected, though old
		busybox:    true, // shared the old x:0.9's image
	}
	if got := exists(t, cli, slices.Collect(maps.Keys(wantExists))...); !reflect.DeepEqual(got, wantExists) {
		t.Errorf("images left = %v\nwant %v", got, wantExists)
	}
}

func TestPruneNightly(t *testing.T) {
	cli := testenv.Docker(t)
	ns := pruneNamespace(t)
	x := ns + "/x"
	for _, tag := range []string{"1.2", "1.2-20260815", "1.2-20260816"} {
		importImage(t, cli, x+":"+tag)
	}
	tree := pruneTree(t, ns)
	opts := PruneOptions{Select: "*/x:*", Nightly: "20260816", DryRun: true}
	want := []summary{{Label: x + ":1.2-20260816", Removed: []string{x + ":1.2", x + ":1.2-20260815"}}}
	all := map[string]bool{x + ":1.2": true, x + ":1.2-20260815": true, x + ":1.2-20260816": true}

	reports, err := builderFor(t, tree, testConfig(), WithEngine(cli)).Prune(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := summarize(reports); !reflect.DeepEqual(got, want) {
		t.Errorf("dry run reports = %+v\nwant %+v", got, want)
	}
	if got := exists(t, cli, slices.Collect(maps.Keys(all))...); !reflect.DeepEqual(got, all) {
		t.Errorf("the dry run removed images: %v", got)
	}

	opts.DryRun = false
	reports, err = builderFor(t, tree, testConfig(), WithEngine(cli)).Prune(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := summarize(reports); !reflect.DeepEqual(got, want) {
		t.Errorf("reports = %+v\nwant %+v", got, want)
	}
	wantLeft := map[string]bool{x + ":1.2": false, x + ":1.2-20260815": false, x + ":1.2-20260816": true}
	if got := exists(t, cli, slices.Collect(maps.Keys(all))...); !reflect.DeepEqual(got, wantLeft) {
		t.Errorf("images left = %v, want %v", got, wantLeft)
	}
}

func TestPruneBadOptions(t *testing.T) {
	tree := pruneTree(t, "ns")
	tests := []struct {
		name    string
		opts    PruneOptions
		wantErr string
		wantIs  error
	}{
		{
			name:    "nightly ID Docker rejects",
			opts:    PruneOptions{Nightly: "2026~08"},
			wantErr: `pruning: nightly ID "2026~08" gives y the tag "2.0-2026~08", which Docker does not accept`,
		},
		{
			name:    "malformed selection",
			opts:    PruneOptions{Select: "*:[z-a]"},
			wantErr: `malformed --select pattern "*:[z-a]": error parsing regexp: invalid character class range: ` + "`z-a`",
			wantIs:  ErrBadPattern,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// No call reaches the client: it is nil.
			_, err := builderFor(t, tree, testConfig(), WithEngine(nopEngine{})).Prune(t.Context(), tc.opts)
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Prune() error = %v, want %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("Prune() error = %v, does not match %v", err, tc.wantIs)
			}
		})
	}
}

// nopEngine panics on any call: for checks that must fail before the
// daemon is asked.
type nopEngine struct{ Engine }

// TestPruneDryRunMatchesRun prunes, dry then for real, old versions that
// containers use: as the only tag of their image (left in place), or
// besides another tag (removed all the same). The dry run must say what
// the run then does.
func TestPruneDryRunMatchesRun(t *testing.T) {
	cli := testenv.Docker(t)
	ns := pruneNamespace(t)
	x := ns + "/x"
	for _, ref := range []string{x + ":1.0", x + ":1.1", x + ":1.2"} {
		importImage(t, cli, ref)
	}
	tagImage(t, cli, x+":1.0", x+":1.0-extra") // two tags of one repository
	var ctrs []string
	for _, ref := range []string{x + ":1.0", x + ":1.1"} {
		ctr, err := cli.ContainerCreate(t.Context(), client.ContainerCreateOptions{
			Config: &container.Config{Image: ref, Cmd: []string{"/never-run"}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ctrs = append(ctrs, ctr.ID)
		t.Cleanup(func() {
			cli.ContainerRemove(context.Background(), ctr.ID, client.ContainerRemoveOptions{Force: true})
		})
	}
	tree := pruneTree(t, ns)
	opts := PruneOptions{Select: "*/x:*", DryRun: true}
	dry, err := builderFor(t, tree, testConfig(), WithEngine(cli)).Prune(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	opts.DryRun = false
	real, err := builderFor(t, tree, testConfig(), WithEngine(cli)).Prune(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	// The daemon lists images of the same second in any order.
	sortErrors := func(s []summary) []summary {
		for i := range s {
			slices.Sort(s[i].Errors)
		}
		return s
	}
	if got, want := sortErrors(summarize(dry)), sortErrors(summarize(real)); !reflect.DeepEqual(got, want) {
		t.Errorf("dry run %+v\nrun     %+v", got, want)
	}
	// Of x:1.0 and x:1.0-extra, the first goes and the second stays:
	// removing the last tag of an image a container uses needs force.
	got := summarize(real)
	if len(got) != 1 || len(got[0].Removed) != 1 || !strings.HasPrefix(got[0].Removed[0], x+":1.0") {
		t.Fatalf("run %+v, want one of %s:1.0 and %[2]s:1.0-extra removed", got, x)
	}
	kept := x + ":1.0"
	if got[0].Removed[0] == kept {
		kept += "-extra"
	}
	want := []summary{{Label: x + ":1.2", Removed: got[0].Removed, Errors: []string{
		fmt.Sprintf("removing %s: image in use by container %s (%.12s); left in place", kept, containerName(t, cli, ctrs[0]), ctrs[0]),
		fmt.Sprintf("removing %s:1.1: image in use by container %s (%.12s); left in place", x, containerName(t, cli, ctrs[1]), ctrs[1]),
	}}}
	if got, want = sortErrors(got), sortErrors(want); !reflect.DeepEqual(got, want) {
		t.Errorf("run %+v\nwant %+v", got, want)
	}
}

func containerName(t *testing.T, cli *client.Client, id string) string {
	t.Helper()
	res, err := cli.ContainerInspect(t.Context(), id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(res.Container.Name, "/")
}
