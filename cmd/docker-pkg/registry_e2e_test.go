package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/docker-pkg/docker-pkg/registry"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"
	"gopkg.in/yaml.v3"
)

// These tests run the build command in-process against the real daemon
// and a real distribution registry on loopback with htpasswd auth: the
// daemon pulls and pushes, docker-pkg asks the registry what is published.

// e2e is a copy of fixtures/ wired to a registry of its own, in a
// namespace of its own.
type e2e struct {
	cli  *client.Client
	host string // the registry, 127.0.0.1:PORT
	ns   string
	work string // holds config.yaml and images/
	base string // the base image, in the registry only
	stop func() // stops the registry
	reg  *registry.Client
	doc  map[string]any // fixtures/config.yaml as this test writes it
}

// newE2E copies the fixtures and starts a registry holding the fixtures' base image, as a real
// deployment keeps its base images: build pulls it from there. The daemon
// does not have it.
func newE2E(t testing.TB) *e2e {
	t.Helper()
	// No credentials but the configured ones: not the user's.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	cli := testenv.Docker(t)
	host, stop := testenv.Registry(t, testenv.RegistryOptions{Auth: true})
	e := &e2e{cli: cli, host: host, ns: testRepo(t, cli, host), work: t.TempDir(), stop: stop}
	e.base = host + "/" + e.ns + "/busybox:static"
	if err := os.CopyFS(e.work, os.DirFS("../../fixtures")); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(e.work, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &e.doc); err != nil {
		t.Fatal(err)
	}
	// image_tag "busybox" looks for registry/namespace/busybox.
	e.doc["registry"], e.doc["namespace"], e.doc["base_images"] = host, e.ns, []string{e.base}
	e.config(t, testenv.RegistryPassword)
	cfg, err := config.LoadFiles("", filepath.Join(e.work, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if e.reg, err = registry.New(cfg); err != nil {
		t.Fatal(err)
	}
	if err := e.reg.Publish(t.Context(), cli, host+"/"+e.ns+"/busybox"+":static", io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{e.base, host + "/" + e.ns + "/busybox:latest"} {
		if _, err := cli.ImageRemove(t.Context(), ref, client.ImageRemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// config writes config.yaml with the test user and password, or with no
// credentials at all when password is "".
func (e *e2e) config(t testing.TB, password string) {
	t.Helper()
	delete(e.doc, "username")
	delete(e.doc, "password")
	if password != "" {
		e.doc["username"], e.doc["password"] = testenv.RegistryUser, password
	}
	writeYAML(t, filepath.Join(e.work, "config.yaml"), e.doc)
}

// build runs docker-pkg -c config.yaml build ARGS images.
func (e *e2e) build(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return e.buildDir(t, "images", args...)
}

// buildDir runs docker-pkg -c config.yaml build ARGS DIR; DIR "." is
// fixtures/ whole, with the images of failing/.
func (e *e2e) buildDir(t testing.TB, dir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runBuildCmd(t, e.work, append(append([]string{"-c", "config.yaml", "build"}, args...), dir)...)
}

// images are the images of the copy, parents first.
func (e *e2e) images(t *testing.T) []*image.Image {
	t.Helper()
	cfg, err := config.LoadFiles("", filepath.Join(e.work, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := builder.New(t.Context(), filepath.Join(e.work, "images"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b.Tree().Images
}

func (e *e2e) image(t *testing.T, name string) *image.Image {
	t.Helper()
	for _, img := range e.images(t) {
		if img.Name == name {
			return img
		}
	}
	t.Fatalf("no image %s in the fixtures", name)
	return nil
}

// log is the build log file, every run so far.
func (e *e2e) log(t testing.TB) string {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(e.work, logFile))
	if err != nil {
		t.Fatal(err)
	}
	return string(log)
}

// id is the local image ID of ref, "" when the daemon lacks it.
func (e *e2e) id(t testing.TB, ref string) string {
	t.Helper()
	res, err := e.cli.ImageInspect(t.Context(), ref)
	if err != nil {
		return ""
	}
	return res.ID
}

// digest is the manifest digest of label in the registry.
func (e *e2e) digest(t testing.TB, label string) string {
	t.Helper()
	ref, err := name.ParseReference(label, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref, remote.WithContext(t.Context()),
		remote.WithAuth(&authn.Basic{Username: testenv.RegistryUser, Password: testenv.RegistryPassword}))
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	return desc.Digest.String()
}

// removeLocal removes img's tag and latest from the daemon.
func (e *e2e) removeLocal(t testing.TB, img *image.Image) {
	t.Helper()
	for _, ref := range []string{img.Label(), img.Repo + ":latest"} {
		if _, err := e.cli.ImageRemove(t.Context(), ref, client.ImageRemoveOptions{Force: true}); err != nil {
			t.Fatal(err)
		}
	}
}

// contents asks the registry itself, not docker-pkg, what it holds:
// repository -> sorted tags.
func (e *e2e) contents(t testing.TB) map[string][]string {
	t.Helper()
	get := func(path string, v any) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+e.host+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.SetBasicAuth(testenv.RegistryUser, testenv.RegistryPassword)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		// A repository holding only untagged manifests (pushed by
		// digest) has no tag list.
		if resp.StatusCode == http.StatusNotFound && strings.HasSuffix(path, "/tags/list") {
			return
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s", path, resp.Status)
		}
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
	}
	var catalog struct{ Repositories []string }
	get("/v2/_catalog", &catalog)
	out := map[string][]string{}
	for _, repo := range catalog.Repositories {
		var tags struct{ Tags []string }
		get("/v2/"+repo+"/tags/list", &tags)
		if len(tags.Tags) > 0 {
			out[repo] = slices.Sorted(slices.Values(tags.Tags))
		}
	}
	return out
}

// repoPath is img's repository as the registry names it.
func (e *e2e) repoPath(img *image.Image) string {
	return strings.TrimPrefix(img.Repo, e.host+"/")
}

// plan runs plan --json and returns each image's state, code and reason.
func (e *e2e) plan(t *testing.T) map[string]string {
	t.Helper()
	stdout, stderr, err := runBuildCmd(t, e.work, "-c", "config.yaml", "plan", "--json", "images")
	if err != nil {
		t.Fatalf("plan: %v\n%s", err, stderr)
	}
	var out planJSON
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("plan --json: %v\n%s", err, stdout)
	}
	states := map[string]string{}
	for _, img := range out.Images {
		states[img.Name] = fmt.Sprintf("%s (%s): %s", img.State, img.Code, img.Reason)
	}
	return states
}

func mustContain(t *testing.T, where, text string, said ...string) {
	t.Helper()
	for _, s := range said {
		if !strings.Contains(text, s) {
			t.Errorf("%s lacks %q:\n%s", where, s, text)
		}
	}
}

// upToDate is what plan says of an image published whose build record was
// read and matches what a build would make now.
const upToDate = "published (published): published"

// publishedRow matches a row of the summary that says published.
var publishedRow = regexp.MustCompile(`(?m)^\S+ +published( |$)`)

// nothingBuilt says the run's build chain was empty.
const nothingBuilt = "Will build the following images:\n== Step 1: building images ==\n"

func TestRegistryE2EPublishThenNothingToDo(t *testing.T) {
	e := newE2E(t)
	imgs := e.images(t)

	stdout, stderr, err := e.build(t)
	if err != nil {
		t.Fatalf("first run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	want := map[string][]string{e.ns + "/busybox": {"latest", "static"}}
	for _, img := range imgs {
		mustHaveRows(t, stdout, map[string]string{img.Label(): "published"})
		want[e.repoPath(img)] = slices.Sorted(slices.Values([]string{img.Tag, "latest"}))
	}
	mustContain(t, "first run's log", e.log(t), "[pull "+e.base+"] ")
	published := e.contents(t)
	if !reflect.DeepEqual(published, want) {
		t.Fatalf("the registry holds %v, want %v", published, want)
	}
	// The registry has what the daemon built: its config is the image.
	for _, img := range imgs {
		id, _, err := e.reg.Config(t.Context(), img.Repo+":latest")
		if err != nil || id != e.id(t, img.Label()) {
			t.Errorf("%s:latest in the registry is %s (%v), want the image built, %s", img.Repo, id, err, e.id(t, img.Label()))
		}
	}

	nothingToDo := func(t *testing.T, run string) {
		t.Helper()
		stdout, stderr, err := e.build(t)
		if err != nil {
			t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", run, err, stdout, stderr)
		}
		mustContain(t, run+"'s stdout", stdout, nothingBuilt, "== Build done! ==\nNothing to build.\n")
		for _, not := range []string{"IMAGE", "verified", "published", "failed"} {
			if strings.Contains(stdout, not) {
				t.Errorf("%s's stdout says %q:\n%s", run, not, stdout)
			}
		}
		if got := e.contents(t); !reflect.DeepEqual(got, published) {
			t.Errorf("after the %s the registry holds %v, want %v", run, got, published)
		}
	}
	nothingToDo(t, "second run")

	// Without the images in the daemon: published is enough, nothing is
	// built or even pulled.
	for _, img := range imgs {
		e.removeLocal(t, img)
	}
	logBefore := e.log(t)
	nothingToDo(t, "run without local images")
	if since := strings.TrimPrefix(e.log(t), logBefore); strings.Contains(since, "[pull ") {
		t.Errorf("the run pulled, with nothing to build:\n%s", since)
	}
	for _, img := range imgs {
		if id := e.id(t, img.Label()); id != "" {
			t.Errorf("%s is in the daemon again (%s): pulled for nothing", img.Label(), id)
		}
	}
	states := e.plan(t)
	for _, img := range imgs {
		if got := states[img.Name]; got != upToDate {
			t.Errorf("plan says %s is %s, want %s", img.Name, got, upToDate)
		}
	}
}

func TestRegistryE2EWrongPassword(t *testing.T) {
	tests := []struct {
		name string
		args []string
		// What stdout, stderr and the log file must say.
		stdout, stderr, log []string
	}{
		{
			name:   "checking the registry",
			args:   []string{"--select", "*/core:*"},
			stdout: []string{nothingBuilt},
			stderr: []string{"[core] failed: cannot tell whether it is built or published: ", "the registry refused the credentials (401 Unauthorized)"},
			log:    []string{"== docker-pkg build images, "},
		},
		{
			// The image is built without asking the registry, then
			// the push is refused.
			name:   "pushing",
			args:   []string{"--no-pull", "--select", "*/core:*"},
			stdout: []string{" failed (publish) "},
			stderr: []string{"[core] failed: ", ": publish failed: pushing ", ": unauthorized: authentication required\n"},
			log:    []string{"[core] The push refers to repository ", ": unauthorized: authentication required\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newE2E(t)
			password := "wrong-" + rand.Text()
			e.config(t, password)
			if slices.Contains(tt.args, "--no-pull") {
				// The base as someone with the right password pulled it.
				if err := e.reg.Pull(t.Context(), e.cli, e.base, io.Discard); err != nil {
					t.Fatal(err)
				}
			}
			before := e.contents(t)

			stdout, stderr, err := e.build(t, tt.args...)
			if code := exitCode(err); code != 1 {
				t.Fatalf("exit status %d (%v), want 1\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
			}
			mustContain(t, "stdout", stdout, tt.stdout...)
			mustContain(t, "stderr", stderr, tt.stderr...)
			if publishedRow.MatchString(stdout) {
				t.Errorf("stdout says something was published:\n%s", stdout)
			}
			if after := e.contents(t); !reflect.DeepEqual(after, before) {
				t.Errorf("the registry held %v, now %v", before, after)
			}
			log := e.log(t)
			mustContain(t, "log", log, tt.log...)
			encoded := base64.StdEncoding.EncodeToString([]byte(testenv.RegistryUser + ":" + password))
			for where, text := range map[string]string{"stdout": stdout, "stderr": stderr, "log file": log} {
				for _, secret := range []string{password, encoded} {
					if strings.Contains(text, secret) {
						t.Errorf("the %s holds the password", where)
					}
				}
			}
		})
	}
}

func TestRegistryE2EUnreachable(t *testing.T) {
	t.Run("down from the start", func(t *testing.T) {
		e := newE2E(t)
		e.stop()
		stdout, stderr, err := e.build(t, "--select", "*/core:*")
		if code := exitCode(err); code != 1 {
			t.Fatalf("exit status %d (%v), want 1\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
		}
		mustContain(t, "stdout", stdout, nothingBuilt)
		mustContain(t, "stderr", stderr, "[core] failed: cannot tell whether it is built or published: ", "connection refused")
	})

	t.Run("stopped during verify", func(t *testing.T) {
		e := newE2E(t)
		// core's test.sh has the test stop the registry, and waits for
		// it: core is built and verified, then publishing it fails.
		stopFile, stoppedFile := filepath.Join(t.TempDir(), "stop"), filepath.Join(t.TempDir(), "stopped")
		test := filepath.Join(e.work, "images", "core", "test.sh")
		orig, err := os.ReadFile(test)
		if err != nil {
			t.Fatal(err)
		}
		shebang, rest, _ := strings.Cut(string(orig), "\n")
		handshake := fmt.Sprintf("touch %s\nfor i in $(seq 300); do test -e %s && break; sleep 0.1; done\n", stopFile, stoppedFile)
		if err := os.WriteFile(test, []byte(shebang+"\n"+handshake+rest), 0o755); err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				if _, err := os.Stat(stopFile); err == nil {
					e.stop()
					os.WriteFile(stoppedFile, nil, 0o600)
					return
				}
				select {
				case <-t.Context().Done():
					return
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()

		core := e.image(t, "core")
		stdout, stderr, err := e.build(t, "--select", "*/core:*")
		if code := exitCode(err); code != 1 {
			t.Fatalf("exit status %d (%v), want 1\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
		}
		mustHaveRows(t, stdout, map[string]string{core.Label(): "failed (publish)"})
		mustContain(t, "stderr", stderr, "[core] verified ", "[core] failed: ", "connection refused")
	})
}

func TestRegistryE2EPullsPublishedParent(t *testing.T) {
	e := newE2E(t)
	core, tools := e.image(t, "core"), e.image(t, "tools")
	stdout, stderr, err := e.build(t, "--select", "*/core:*")
	if err != nil {
		t.Fatalf("publishing core: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	mustHaveRows(t, stdout, map[string]string{core.Label(): "published"})
	coreID := e.id(t, core.Label())
	e.removeLocal(t, core)

	// tools depends on core, published and no longer in the daemon.
	logBefore := e.log(t)
	stdout, stderr, err = e.build(t, "--select", "*/tools:*")
	if err != nil {
		t.Fatalf("building tools: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	mustContain(t, "stdout", stdout, "Will build the following images:\n* "+tools.Label()+"\n== Step 1: building images ==\n")
	mustHaveRows(t, stdout, map[string]string{tools.Label(): "published"})
	log := strings.TrimPrefix(e.log(t), logBefore)
	pulled := "[pull " + core.Label() + "] Status: Downloaded newer image for " + core.Label() + "\n"
	building := "[tools] building " + tools.Label()
	mustContain(t, "log", log, pulled, building)
	if strings.Index(log, pulled) > strings.Index(log, building) {
		t.Errorf("tools started building before core was pulled:\n%s", log)
	}
	if id := e.id(t, core.Label()); id != coreID {
		t.Errorf("core in the daemon is %q, want %s, the image published", id, coreID)
	}
	// tools was built on the core pulled, not on a stale one.
	states := e.plan(t)
	for _, name := range []string{"core", "tools"} {
		if got := states[name]; got != upToDate {
			t.Errorf("plan says %s is %s, want %s", name, got, upToDate)
		}
	}
}

func TestRegistryE2EAtomic(t *testing.T) {
	e := newE2E(t)
	before := e.contents(t)
	// core and runtime pass their tests, legacy-app (in failing/) fails
	// its own.
	stdout, stderr, err := e.buildDir(t, ".", "--atomic", "--select", "*/legacy-app:*")
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit status %d (%v), want 1\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	mustContain(t, "stdout", stdout,
		"== Step 2: publishing ==\nNOT publishing images as not every image was built and verified (--atomic)\n== Build done! ==\n")
	mustHaveRows(t, stdout, map[string]string{
		e.image(t, "core").Label():                "verified",
		e.image(t, "runtime").Label():             "verified",
		e.host + "/" + e.ns + "/legacy-app:0.5-1": "failed (verify)",
	})
	if publishedRow.MatchString(stdout) {
		t.Errorf("stdout says something was published:\n%s", stdout)
	}
	if after := e.contents(t); !reflect.DeepEqual(after, before) {
		t.Errorf("the registry held %v, now %v", before, after)
	}
}

func TestRegistryE2EResume(t *testing.T) {
	e := newE2E(t)
	core, runtime := e.image(t, "core"), e.image(t, "runtime")
	// Someone without credentials pushes nothing, and cannot pull from
	// this registry either: the base is in the daemon already.
	if err := e.reg.Pull(t.Context(), e.cli, e.base, io.Discard); err != nil {
		t.Fatal(err)
	}
	e.config(t, "")
	before := e.contents(t)
	stdout, stderr, err := e.build(t, "--no-pull", "--select", "*/runtime:*")
	if err != nil {
		t.Fatalf("run without credentials: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	mustContain(t, "stdout", stdout, "NOT publishing images as we have no auth setup\n")
	mustHaveRows(t, stdout, map[string]string{runtime.Label(): "verified"})
	if after := e.contents(t); !reflect.DeepEqual(after, before) {
		t.Fatalf("without credentials the registry held %v, now %v", before, after)
	}
	ids := map[string]string{core.Label(): e.id(t, core.Label()), runtime.Label(): e.id(t, runtime.Label())}

	e.config(t, testenv.RegistryPassword)
	stdout, stderr, err = e.build(t, "--select", "*/runtime:*")
	if err != nil {
		t.Fatalf("run with credentials: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	mustContain(t, "stdout", stdout, nothingBuilt)
	mustHaveRows(t, stdout, map[string]string{core.Label(): "published", runtime.Label(): "published"})
	// Verified again before publishing, as the reference does.
	mustContain(t, "stderr", stderr, "[core] verifying\n", "[runtime] verifying\n")
	for label, id := range ids {
		if now := e.id(t, label); now != id {
			t.Errorf("%s is %s in the daemon, was %s: rebuilt", label, now, id)
		}
		if pushed, _, err := e.reg.Config(t.Context(), label); err != nil || pushed != id {
			t.Errorf("%s in the registry is %q (%v), want %s, the image built by the first run", label, pushed, err, id)
		}
	}
}

// A base image the registry lacks cannot be pulled: the images built on it
// fail, even though the daemon has it, rather than build on whatever the
// daemon holds. --no-pull builds on the daemon's.
func TestRegistryE2EBaseNotInRegistry(t *testing.T) {
	e := newE2E(t)
	core := e.image(t, "core")
	if _, err := e.cli.ImageTag(t.Context(), client.ImageTagOptions{Source: testenv.Busybox(t, e.cli), Target: e.base}); err != nil {
		t.Fatal(err)
	}
	digest, ok, err := e.reg.Published(t.Context(), e.base)
	if err != nil || !ok {
		t.Fatalf("%s published: %v, %v", e.base, ok, err)
	}
	ref, err := name.NewDigest(strings.TrimSuffix(e.base, ":static")+"@"+digest, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref, remote.WithAuth(&authn.Basic{Username: testenv.RegistryUser, Password: testenv.RegistryPassword})); err != nil {
		t.Fatal(err)
	}
	before := e.contents(t)

	stdout, stderr, err := e.build(t, "--select", "*/core:*")
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit status %d (%v), want 1\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	mustHaveRows(t, stdout, map[string]string{core.Label(): "failed (pull)"})
	mustContain(t, "stderr", stderr, "[core] failed: "+core.Label()+": pull failed: pulling "+e.base+": ", "manifest unknown")
	if after := e.contents(t); !reflect.DeepEqual(after, before) {
		t.Errorf("the registry held %v, now %v", before, after)
	}

	stdout, stderr, err = e.build(t, "--no-pull", "--select", "*/core:*")
	if err != nil {
		t.Fatalf("--no-pull: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	mustHaveRows(t, stdout, map[string]string{core.Label(): "published"})
}
