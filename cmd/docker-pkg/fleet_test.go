package main

import (
	"bytes"
	"context"
	"net"
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
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"
)

// These tests build on real buildkitd processes, started for each test,
// and hand images over through a real registry with htpasswd auth: the
// builders see neither the local engine nor each other.

// fleetBuilder is one entry of builders: for the configuration.
func fleetBuilder(name string, bk *testenv.Buildkitd, jobs int) map[string]any {
	b := map[string]any{"name": name, "address": bk.Addr, "jobs": jobs}
	if bk.CA != "" {
		b["tls"] = map[string]any{"ca": bk.CA, "cert": bk.ClientCert, "key": bk.ClientKey}
	}
	return b
}

// withBuilders writes e's configuration with builders.
func (e *e2e) withBuilders(t testing.TB, builders ...map[string]any) {
	t.Helper()
	list := make([]any, len(builders))
	for i, b := range builders {
		list[i] = b
	}
	e.doc["builders"] = list
	e.config(t, testenv.RegistryPassword)
}

// builderColumn reads the summary table: image label -> BUILDER.
func builderColumn(t testing.TB, stdout string) map[string]string {
	t.Helper()
	out := map[string]string{}
	in := false
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "IMAGE":
			if f[len(f)-1] != "BUILDER" {
				t.Fatalf("the summary has no BUILDER column: %q", line)
			}
			in = true
		case in && (len(f) == 0 || !strings.Contains(f[0], ":")):
			return out
		case in && len(f) >= 5:
			out[f[0]] = f[len(f)-1]
		}
	}
	return out
}

func TestFleetFixtures(t *testing.T) {
	e := newE2E(t)
	bk1 := testenv.BuildKit(t, testenv.BuildKitOptions{})
	bk2 := testenv.BuildKit(t, testenv.BuildKitOptions{})
	// bk2 over its unix socket: both kinds of address.
	onSocket := fleetBuilder("bk2", bk2, 1)
	onSocket["address"] = bk2.Socket
	e.withBuilders(t, fleetBuilder("bk1", bk1, 1), onSocket)
	stdout, stderr, err := e.build(t)
	if err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s\nlog:\n%s", err, stdout, stderr, e.log(t))
	}
	on := builderColumn(t, stdout)
	used := map[string]bool{}
	for _, img := range fixtureImages {
		label := e.host + "/" + e.ns + "/" + img.name + ":" + img.tag
		if !summaryRow(label, "published").MatchString(stdout) {
			t.Errorf("%s is not published:\n%s", label, stdout)
		}
		used[on[label]] = true
	}
	if !used["bk1"] || !used["bk2"] || len(used) != 2 {
		t.Errorf("builders used: %v, want bk1 and bk2 alone:\n%s", used, stdout)
	}
	got := e.contents(t)
	for _, img := range fixtureImages {
		repo := e.ns + "/" + img.name
		if want := []string{img.tag, "latest"}; !slices.Equal(got[repo], want) {
			t.Errorf("registry %s: tags %v, want %v", repo, got[repo], want)
		}
	}
	log := e.log(t)
	for _, b := range []string{"bk1", "bk2"} {
		if !regexp.MustCompile(`\] building on ` + b + ` \(`).MatchString(log) {
			t.Errorf("the log never says an image is built on %s", b)
		}
	}
	if strings.Contains(log, testenv.RegistryPassword) || strings.Contains(stderr, testenv.RegistryPassword) {
		t.Error("the password is in the log")
	}
	// Verified images are in the local engine, under their labels.
	for _, img := range fixtureImages {
		if e.id(t, e.host+"/"+e.ns+"/"+img.name+":"+img.tag) == "" {
			t.Errorf("%s is not in the local engine", img.name)
		}
	}
}

// TestFleetFailedVerifyLeavesNoTag builds fixtures/ whole on a builder:
// legacy-app fails its test, so it never gets a tag in the registry (what
// was pushed by digest stays untagged) and legacy-plugin is skipped; the
// others are published.
func TestFleetFailedVerifyLeavesNoTag(t *testing.T) {
	e := newE2E(t)
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	e.withBuilders(t, fleetBuilder("bk1", bk, 2))
	stdout, stderr, err := e.buildDir(t, ".")
	if exitCode(err) != 1 {
		t.Fatalf("build: %v, want exit status 1\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	got := e.contents(t)
	for _, repo := range []string{"legacy-app", "legacy-plugin"} {
		if tags := got[e.ns+"/"+repo]; len(tags) > 0 {
			t.Errorf("%s has tags %v in the registry, want none", repo, tags)
		}
	}
	for _, img := range fixtureImages {
		if !slices.Contains(got[e.ns+"/"+img.name], img.tag) {
			t.Errorf("%s:%s is not in the registry", img.name, img.tag)
		}
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(e.host+"/"+e.ns+"/legacy-app:") + `\S+ +failed \(verify\)`).MatchString(stdout) {
		t.Errorf("no failed (verify) row for legacy-app:\n%s", stdout)
	}
}

// TestFleetAtomic: with --atomic and an image that fails, nothing gets a
// tag, though every image was pushed by digest.
func TestFleetAtomic(t *testing.T) {
	e := newE2E(t)
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	e.withBuilders(t, fleetBuilder("bk1", bk, 2))
	stdout, stderr, err := e.buildDir(t, ".", "--atomic")
	if exitCode(err) != 1 {
		t.Fatalf("build --atomic: %v, want exit status 1\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "NOT publishing images as not every image was built and verified (--atomic)") {
		t.Errorf("stdout does not say why nothing was published:\n%s", stdout)
	}
	for repo, tags := range e.contents(t) {
		if repo != e.ns+"/busybox" {
			t.Errorf("%s has tags %v, want none", repo, tags)
		}
	}
}

// TestFleetRegistryCache builds the fixtures on one builder with the
// registry cache, then builds them again from nothing on a fresh builder,
// whose own state is empty: every step of every image comes from the
// registry cache, and the same inputs give the same manifests. Then a
// leaf image's new version builds on another fresh builder, all cached.
func TestFleetRegistryCache(t *testing.T) {
	e := newE2E(t)
	bk1 := testenv.BuildKit(t, testenv.BuildKitOptions{})
	e.doc["build_cache"] = "registry"
	e.withBuilders(t, fleetBuilder("bk1", bk1, 2))
	if stdout, stderr, err := e.build(t, "--use-cache"); err != nil {
		t.Fatalf("cold build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if !slices.Contains(e.contents(t)[e.ns+"/app"], "buildcache") {
		t.Fatalf("no cache in the registry: %v", e.contents(t))
	}
	digests := map[string]string{}
	for _, img := range e.images(t) {
		digests[img.Name] = e.digest(t, img.Label())
		if _, err := e.cli.ImageRemove(t.Context(), img.Label(), client.ImageRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}

	allCached := func(t *testing.T, log string, names ...string) {
		t.Helper()
		for _, n := range names {
			steps := regexp.MustCompile(`(?m)\[`+regexp.QuoteMeta(n)+`\] #(\d+) \[[^\]]*\d+/\d+\] (RUN|COPY|ADD) `).FindAllStringSubmatch(log, -1)
			if len(steps) == 0 {
				t.Errorf("no step of %s in the log", n)
			}
			for _, st := range steps {
				if !strings.Contains(log, "["+n+"] #"+st[1]+" CACHED") {
					t.Errorf("step %q of %s was not cached", st[0], n)
				}
			}
		}
	}
	names := make([]string, len(fixtureImages))
	for i, img := range fixtureImages {
		names[i] = img.name
	}

	bk2 := testenv.BuildKit(t, testenv.BuildKitOptions{})
	e.withBuilders(t, fleetBuilder("fresh", bk2, 2))
	logBefore := len(e.log(t))
	stdout, stderr, err := e.build(t, "--use-cache", "--no-pull")
	if err != nil {
		t.Fatalf("build on the fresh builder: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	for label, on := range builderColumn(t, stdout) {
		if on != "fresh" {
			t.Errorf("%s built on %q, want fresh", label, on)
		}
	}
	allCached(t, e.log(t)[logBefore:], names...)
	for _, img := range e.images(t) {
		if d := e.digest(t, img.Label()); d != digests[img.Name] {
			t.Errorf("%s is %s rebuilt, was %s: the same inputs, another manifest", img.Name, d, digests[img.Name])
		}
	}

	if _, _, err := runBuildCmd(t, e.work, "-c", "config.yaml", "update", "--reason", "Rebuild", "app-plugin", "images"); err != nil {
		t.Fatal(err)
	}
	bk3 := testenv.BuildKit(t, testenv.BuildKitOptions{})
	e.withBuilders(t, fleetBuilder("fresh2", bk3, 2))
	logBefore = len(e.log(t))
	if stdout, stderr, err := e.build(t, "--use-cache"); err != nil {
		t.Fatalf("build of the new version: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	allCached(t, e.log(t)[logBefore:], "app-plugin")
}

// TestFleetBuilderKilled kills a builder while it builds: the image it
// was building is built again on the other one, and the run ends green.
func TestFleetBuilderKilled(t *testing.T) {
	e := newE2E(t)
	bk1 := testenv.BuildKit(t, testenv.BuildKitOptions{})
	bk2 := testenv.BuildKit(t, testenv.BuildKitOptions{})
	root := filepath.Join(e.work, "slow")
	for _, n := range []string{"slow-a", "slow-b"} {
		writeImage(t, root, n, "FROM {{ \"busybox\" | image_tag }}\nRUN [\"/bin/busybox\", \"sleep\", \"6\"]\n", "")
	}
	e.withBuilders(t, fleetBuilder("bk1", bk1, 1), fleetBuilder("bk2", bk2, 1))
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			data, _ := os.ReadFile(filepath.Join(e.work, logFile))
			if bytes.Contains(data, []byte("building on bk1 (")) {
				time.Sleep(time.Second) // inside the step
				bk1.Kill()
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	stdout, stderr, err := e.buildDir(t, "slow")
	<-killed
	if err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	on := builderColumn(t, stdout)
	for _, n := range []string{"slow-a", "slow-b"} {
		label := e.host + "/" + e.ns + "/" + n + ":1.0-1"
		if !summaryRow(label, "published").MatchString(stdout) {
			t.Errorf("%s is not published:\n%s", n, stdout)
		}
		if on[label] != "bk2" {
			t.Errorf("%s ends on %q, want bk2, the builder left", n, on[label])
		}
	}
	if !strings.Contains(stderr, "warning: builder bk1 was lost") || !strings.Contains(stderr, "building it again on another builder") {
		t.Errorf("stderr does not say bk1 was lost:\n%s", stderr)
	}
}

// TestFleetBuilderDown: a builder that does not answer at the start is a
// warning, and the run goes on with the others; none answering is exit
// status 2.
func TestFleetBuilderDown(t *testing.T) {
	e := newE2E(t)
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nowhere := "tcp://" + l.Addr().String()
	l.Close()
	e.withBuilders(t, fleetBuilder("bk1", bk, 2), map[string]any{"name": "gone", "address": nowhere})
	stdout, stderr, err := e.build(t)
	if err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if !strings.Contains(stderr, "warning: builder gone at "+nowhere+" does not answer") {
		t.Errorf("no warning about the builder down:\n%s", stderr)
	}
	for _, on := range builderColumn(t, stdout) {
		if on != "bk1" {
			t.Errorf("an image was built on %s", on)
		}
	}

	e.withBuilders(t, map[string]any{"name": "gone", "address": nowhere})
	_, stderr, err = e.build(t, "--no-pull")
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "no builder can be reached: gone") {
		t.Errorf("build with no builder up: %v (exit status %d), want exit status 2 naming it\n%s", err, exitCode(err), stderr)
	}
}

// TestFleetMutualTLS builds on a builder that requires a client
// certificate, made by the test; without the certificate the builder is
// not reached.
func TestFleetMutualTLS(t *testing.T) {
	e := newE2E(t)
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{TLS: true})
	e.withBuilders(t, fleetBuilder("secure", bk, 2))
	stdout, stderr, err := e.build(t, "--select", "*/core:*")
	if err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	core := e.image(t, "core")
	if on := builderColumn(t, stdout)[core.Label()]; on != "secure" {
		t.Errorf("core built on %q, want secure", on)
	}
	plain := fleetBuilder("secure", bk, 2)
	delete(plain, "tls")
	e.withBuilders(t, plain)
	_, _, err = e.build(t, "--no-pull")
	if exitCode(err) != 2 {
		t.Errorf("build without the client certificate: %v, want exit status 2", err)
	}
}

// TestFleetNoSecretInImage: the registry password reaches the builder
// through the session only: not in the pushed image's history or config,
// not in the log.
func TestFleetNoSecretInImage(t *testing.T) {
	e := newE2E(t)
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	e.withBuilders(t, fleetBuilder("bk1", bk, 2))
	if stdout, stderr, err := e.build(t, "--select", "*/core:*"); err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	core := e.image(t, "core")
	ref, err := name.ParseReference(core.Label(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	auth := remote.WithAuth(&authn.Basic{Username: testenv.RegistryUser, Password: testenv.RegistryPassword})
	img, err := remote.Image(ref, auth, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	for what, data := range map[string][]byte{"config": raw, "manifest": manifest, "log": []byte(e.log(t))} {
		if bytes.Contains(data, []byte(testenv.RegistryPassword)) {
			t.Errorf("the password is in the %s", what)
		}
	}
	// The OCI keys are annotations of the manifest, not labels.
	if !regexp.MustCompile(`"org.opencontainers.image.title":\s*"core"`).Match(manifest) {
		t.Errorf("the manifest has no title annotation: %s", manifest)
	}
	if bytes.Contains(raw, []byte("org.opencontainers.image.title")) {
		t.Errorf("the config holds an OCI label, which images built on it would inherit")
	}
}
