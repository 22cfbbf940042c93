package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// archTest checks, under the platform docker-pkg verifies, that the
// image's binaries are that platform's.
const archTest = `arch=$(docker run --rm --label "$DOCKER_PKG_VERIFY_LABEL" "$1" uname -m)
echo "arch=$arch for $DOCKER_DEFAULT_PLATFORM"
case "$DOCKER_DEFAULT_PLATFORM" in
linux/arm64) test "$arch" = aarch64 ;;
linux/amd64) test "$arch" = x86_64 ;;
*) exit 1 ;;
esac`

// TestMultiPlatform builds a three-level tree for linux/amd64 and
// linux/arm64 on a real buildkitd (arm64 emulated), with a parent built
// for amd64 alone whose child needs arm64 too.
func TestMultiPlatform(t *testing.T) {
	testenv.Arm64(t)
	e := newE2E(t)
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	testenv.BusyboxIndex(t, bk, e.host, e.ns)
	root := filepath.Join(e.work, "multi")
	from := func(parent string) string { return "FROM {{ \"" + parent + "\" | image_tag }}\n" }
	writeImage(t, root, "mp-core", from("busybox")+"ARG TARGETARCH\nRUN echo \"$TARGETARCH\" > /targetarch && uname -m > /built-on\n", archTest)
	writeImage(t, root, "mp-mid", from("mp-core")+"RUN cat /targetarch\n", archTest)
	writeImage(t, root, "mp-leaf", from("mp-mid")+"RUN cat /built-on\n", archTest)
	writeImage(t, root, "mp-amd64", from("mp-core")+"RUN true\n", archTest)
	writeImage(t, root, "mp-needs-arm", from("mp-amd64")+"RUN true\n", archTest)
	writeImage(t, root, "mp-skipped", from("mp-needs-arm"), archTest)
	control := map[string]string{
		"mp-mid": "Depends: mp-core\n", "mp-leaf": "Depends: mp-mid\n",
		"mp-amd64":     "Depends: mp-core\nPlatforms: linux/amd64\n",
		"mp-needs-arm": "Depends: mp-amd64\n", "mp-skipped": "Depends: mp-needs-arm\n",
	}
	for img, c := range control {
		if err := os.WriteFile(filepath.Join(root, img, "control"), []byte("Source: "+img+"\n"+c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e.doc["platforms"] = []string{"linux/amd64", "linux/arm64"}
	e.withBuilders(t, fleetBuilder("bk1", bk, 2))
	stdout, stderr, err := e.buildDir(t, "multi")
	if exitCode(err) != 1 {
		t.Fatalf("build: %v, want exit status 1 (mp-needs-arm fails)\nstdout:\n%s\nstderr:\n%s\nlog:\n%s", err, stdout, stderr, e.log(t))
	}
	label := func(n string) string { return e.host + "/" + e.ns + "/" + n + ":1.0-1" }

	// One index per tag, with both platforms.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	auth := remote.WithAuth(&authn.Basic{Username: testenv.RegistryUser, Password: testenv.RegistryPassword})
	for _, n := range []string{"mp-core", "mp-mid", "mp-leaf"} {
		if !summaryRow(label(n), "published").MatchString(stdout) {
			t.Errorf("%s is not published:\n%s", n, stdout)
		}
		ref, err := name.ParseReference(label(n), name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(ref, auth, remote.WithContext(ctx))
		if err != nil {
			t.Errorf("%s: no index in the registry: %v", n, err)
			continue
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, m := range im.Manifests {
			if m.Platform != nil && m.Platform.OS != "unknown" {
				got = append(got, m.Platform.OS+"/"+m.Platform.Architecture)
			}
		}
		slices.Sort(got)
		if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(got, want) {
			t.Errorf("%s: the index holds %v, want %v", n, got, want)
		}
		// Each platform verified, in its own row, by its own test run.
		for _, p := range []string{"linux/arm64", "linux/amd64"} {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(p) + ` +verified`).MatchString(stdout) {
				t.Errorf("no verified row for %s:\n%s", p, stdout)
			}
		}
	}
	log := e.log(t)
	for _, want := range []string{"[mp-leaf] arch=aarch64 for linux/arm64", "[mp-leaf] arch=x86_64 for linux/amd64"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q", want)
		}
	}
	// The image built for amd64 alone is published; its child that needs
	// arm64 fails naming the parent and the platform; only its descendant
	// is skipped.
	if !summaryRow(label("mp-amd64"), "published").MatchString(stdout) {
		t.Errorf("mp-amd64 is not published:\n%s", stdout)
	}
	if !summaryRow(label("mp-needs-arm"), "failed (build)").MatchString(stdout) {
		t.Errorf("mp-needs-arm did not fail to build:\n%s", stdout)
	}
	if want := "parent image " + label("mp-amd64") + " has no linux/arm64 image (it offers linux/amd64)"; !strings.Contains(stdout, want) {
		t.Errorf("the failure does not say %q:\n%s", want, stdout)
	}
	if !summaryRow(label("mp-skipped"), "skipped: parent mp-needs-arm failed").MatchString(stdout) {
		t.Errorf("mp-skipped is not skipped for mp-needs-arm:\n%s", stdout)
	}
	// The local engine keeps its own platform under the label.
	inspect, err := e.cli.ImageInspect(t.Context(), label("mp-leaf"))
	if err != nil || inspect.Architecture != "amd64" {
		t.Errorf("the local mp-leaf is %q (%v), want amd64", inspect.Architecture, err)
	}

	// mp-core changes for arm64 alone: mp-mid, built on it, is stale for
	// arm64, and mp-leaf through it.
	changeOnePlatform(t, label("mp-core"), "arm64")
	out, errOut, err := runBuildCmd(t, e.work, "-c", "config.yaml", "plan", "multi")
	if err != nil {
		t.Fatalf("plan: %v\n%s\n%s", err, out, errOut)
	}
	if !regexp.MustCompile(`mp-mid\S* .*stale for linux/arm64: parent mp-core is now sha256:[0-9a-f]{12}, built on sha256:[0-9a-f]{12}`).MatchString(out) {
		t.Errorf("plan does not say mp-mid is stale for linux/arm64:\n%s", out)
	}
	if strings.Contains(out, "stale for linux/amd64") {
		t.Errorf("plan says an image is stale for linux/amd64:\n%s", out)
	}
	if !regexp.MustCompile(`mp-leaf\S* .*stale: parent mp-mid is stale`).MatchString(out) {
		t.Errorf("plan does not say mp-leaf is stale through mp-mid:\n%s", out)
	}
}

// changeOnePlatform replaces, in the index ref names, the image of arch
// by one with a configuration of its own: the image of that platform
// alone is new, as after a rebuild for it alone.
func changeOnePlatform(t *testing.T, label, arch string) {
	t.Helper()
	ref, err := name.ParseReference(label, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: testenv.RegistryUser, Password: testenv.RegistryPassword})
	idx, err := remote.Index(ref, auth, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range im.Manifests {
		if m.Platform == nil || m.Platform.Architecture != arch {
			continue
		}
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.Config.Env = append(cf.Config.Env, "REBUILT=1")
		changed, err := mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		idx = mutate.AppendManifests(mutate.RemoveManifests(idx, match.Digests(m.Digest)),
			mutate.IndexAddendum{Add: changed, Descriptor: v1.Descriptor{Platform: m.Platform}})
		if err := remote.WriteIndex(ref, idx, auth, remote.WithContext(t.Context())); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("%s has no %s image", label, arch)
}

// TestMultiPlatformLocalEngine: without builders, an image for several
// platforms is an error that says what to configure.
func TestMultiPlatformLocalEngine(t *testing.T) {
	cli := testenv.Docker(t)
	work := fixturesCopy(t, testRepo(t, cli, ""))
	cfgPath := filepath.Join(work, "config.yaml")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgPath, append(raw, "platforms: [linux/amd64, linux/arm64]\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "build", "--select", "*/core:*", "images")
	if exitCode(err) != 1 {
		t.Fatalf("build: %v, want exit status 1\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	for _, want := range []string{
		"it is built for linux/amd64, linux/arm64, and the local Docker engine builds for linux/amd64 alone",
		"configure a BuildKit builder (builders:)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not say %q:\n%s", want, stdout)
		}
	}
}
