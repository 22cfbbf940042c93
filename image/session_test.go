package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	controlapi "github.com/moby/buildkit/api/services/control"
	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestCheckSecrets(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	if err := os.WriteFile(file, []byte("value"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_PKG_TEST_SET", "value")
	os.Unsetenv("DOCKER_PKG_TEST_UNSET")

	tests := []struct {
		name    string
		secrets map[string]config.Secret
		want    []string // substrings of the error; none: no error
	}{
		{name: "none"},
		{name: "env set", secrets: map[string]config.Secret{"tok": {Env: "DOCKER_PKG_TEST_SET"}}},
		{name: "file there", secrets: map[string]config.Secret{"tok": {File: file}}},
		{
			name:    "env unset",
			secrets: map[string]config.Secret{"npmrc": {Env: "DOCKER_PKG_TEST_UNSET"}},
			want:    []string{"secret npmrc", "DOCKER_PKG_TEST_UNSET is not set"},
		},
		{
			name:    "file missing",
			secrets: map[string]config.Secret{"netrc": {File: filepath.Join(dir, "missing")}},
			want:    []string{"secret netrc", filepath.Join(dir, "missing")},
		},
		{
			name:    "file is a folder",
			secrets: map[string]config.Secret{"netrc": {File: dir}},
			want:    []string{"secret netrc", "not a regular file"},
		},
		{
			name:    "both sources",
			secrets: map[string]config.Secret{"tok": {Env: "DOCKER_PKG_TEST_SET", File: file}},
			want:    []string{"secret tok", "exactly one"},
		},
		{
			name: "every bad one is named",
			secrets: map[string]config.Secret{
				"good": {Env: "DOCKER_PKG_TEST_SET"},
				"a":    {Env: "DOCKER_PKG_TEST_UNSET"},
				"b":    {File: filepath.Join(dir, "missing")},
			},
			want: []string{"secret a", "secret b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSecrets(tt.secrets)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("CheckSecrets: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("CheckSecrets: no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "value") {
				t.Errorf("error %q shows a secret's value", err)
			}
		})
	}
}

func TestValidateBuilder(t *testing.T) {
	t.Setenv("DOCKER_PKG_TEST_SET", "value")
	os.Unsetenv("DOCKER_PKG_TEST_UNSET")
	set := map[string]config.Secret{"tok": {Env: "DOCKER_PKG_TEST_SET"}}
	tests := []struct {
		name    string
		cfg     config.Config
		wantErr string
	}{
		{name: "classic without secrets", cfg: config.Config{Builder: "classic"}},
		{name: "buildkit without secrets", cfg: config.Config{Builder: "buildkit"}},
		{name: "buildkit with secrets", cfg: config.Config{Builder: "buildkit", Secrets: set}},
		{name: "classic with secrets", cfg: config.Config{Builder: "classic", Secrets: set}, wantErr: "set builder: buildkit"},
		{
			name:    "buildkit with a missing secret",
			cfg:     config.Config{Builder: "buildkit", Secrets: map[string]config.Secret{"tok": {Env: "DOCKER_PKG_TEST_UNSET"}}},
			wantErr: "secret tok",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateBuilder(&tt.cfg)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("ValidateBuilder: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("ValidateBuilder: %v, want an error saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestCheckSyntax(t *testing.T) {
	tests := []struct {
		name       string
		dockerfile string
		wantLine   int // 0: accepted
	}{
		{name: "no directive", dockerfile: "FROM scratch\n"},
		{name: "syntax", dockerfile: "# syntax=docker/dockerfile:1\nFROM scratch\n", wantLine: 1},
		{name: "spaced and upper case", dockerfile: "#  SYNTAX = docker/dockerfile:1.4\nFROM scratch\n", wantLine: 1},
		{name: "after another directive", dockerfile: "# escape=`\n# syntax=docker/dockerfile:1\nFROM scratch\n", wantLine: 2},
		{name: "after a comment", dockerfile: "# a comment\n# syntax=docker/dockerfile:1\nFROM scratch\n"},
		{name: "after a blank line", dockerfile: "\n# syntax=docker/dockerfile:1\nFROM scratch\n"},
		{name: "after an instruction", dockerfile: "FROM scratch\n# syntax=docker/dockerfile:1\n"},
		{name: "empty", dockerfile: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkSyntax("dir/Dockerfile.template", []byte(tt.dockerfile))
			if tt.wantLine == 0 {
				if err != nil {
					t.Fatalf("checkSyntax: %v", err)
				}
				return
			}
			want := fmt.Sprintf("dir/Dockerfile.template: line %d ", tt.wantLine)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("checkSyntax: %v, want an error starting %q", err, want)
			}
		})
	}
}

// traceMessage is a moby.buildkit.trace message as the daemon sends it.
func traceMessage(t *testing.T, resp *controlapi.StatusResponse) []byte {
	t.Helper()
	dt, err := resp.MarshalVT()
	if err != nil {
		t.Fatal(err)
	}
	aux, err := json.Marshal(dt) // []byte: a base64 JSON string
	if err != nil {
		t.Fatal(err)
	}
	raw := json.RawMessage(aux)
	out, err := json.Marshal(jsonstream.Message{ID: traceID, Aux: &raw})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTranslateBuildKit(t *testing.T) {
	t0 := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	at := func(ms int) *timestamppb.Timestamp {
		return timestamppb.New(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	var in bytes.Buffer
	for _, resp := range []*controlapi.StatusResponse{
		{Vertexes: []*controlapi.Vertex{{Digest: "sha256:a", Name: "[1/3] FROM base", Started: at(0), Completed: at(0), Cached: true}}},
		{Vertexes: []*controlapi.Vertex{{Digest: "sha256:b", Name: "[2/3] RUN make", Started: at(0)}}},
		{Logs: []*controlapi.VertexLog{{Vertex: "sha256:b", Msg: []byte("compiling\nlin")}}},
		{Logs: []*controlapi.VertexLog{{Vertex: "sha256:b", Msg: []byte("king\r\nno newline")}}},
		{Vertexes: []*controlapi.Vertex{{Digest: "sha256:b", Name: "[2/3] RUN make", Started: at(0), Completed: at(1500), Error: "exit code: 2"}}},
		{Vertexes: []*controlapi.Vertex{{Digest: "sha256:b", Name: "[2/3] RUN make", Started: at(0), Completed: at(1500), Error: "exit code: 2"}}},
	} {
		in.Write(traceMessage(t, resp))
	}
	in.WriteString(`{"id":"moby.buildkit.trace","aux":"bm90IHByb3RvYnVm"}` + "\n") // not protobuf: skipped
	in.WriteString(`{"id":"moby.image.id","aux":{"ID":"sha256:0123"}}` + "\n")
	in.WriteString(`{"errorDetail":{"message":"exit code: 2"},"error":"exit code: 2"}` + "\n")

	var out bytes.Buffer
	if err := translateBuildKit(&out, &in); err != nil {
		t.Fatalf("translateBuildKit: %v", err)
	}
	var log tail
	log.w = io.Discard
	id, _, err := readBuild(&out, &log)
	if err == nil || err.Error() != "exit code: 2" || id != "" {
		t.Errorf("readBuild: id %q, error %v; want the daemon's error", id, err)
	}
	want := []string{
		"#1 [1/3] FROM base",
		"#1 CACHED",
		"#2 [2/3] RUN make",
		"#2 compiling",
		"#2 linking",
		"#2 no newline",
		"#2 ERROR: exit code: 2",
		"------",
		" > [2/3] RUN make:",
		"compiling",
		"linking",
		"no newline",
		"------",
		"ERROR: exit code: 2",
	}
	if got := log.Lines(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestTranslateBuildKitImageID(t *testing.T) {
	t0 := timestamppb.Now()
	var in bytes.Buffer
	in.Write(traceMessage(t, &controlapi.StatusResponse{Vertexes: []*controlapi.Vertex{
		{Digest: "sha256:a", Name: "exporting to image", Started: t0, Completed: t0},
	}}))
	in.WriteString(`{"id":"moby.image.id","aux":{"ID":"sha256:0123"}}` + "\n")
	var out bytes.Buffer
	if err := translateBuildKit(&out, &in); err != nil {
		t.Fatalf("translateBuildKit: %v", err)
	}
	log := &tail{w: io.Discard}
	id, _, err := readBuild(&out, log)
	if err != nil || id != "sha256:0123" {
		t.Fatalf("readBuild: %q, %v; want sha256:0123", id, err)
	}
	if got := strings.Join(log.Lines(), "\n"); got != "#1 exporting to image\n#1 DONE 0.0s" {
		t.Errorf("log: %q", got)
	}
}

// kitImage makes an image folder for a BuildKit test and removes its
// image when the test ends.
func kitImage(t *testing.T, cli *client.Client, name string, files map[string]string) *Image {
	t.Helper()
	dir := t.TempDir()
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	img := &Image{Name: name, Version: "1.0-1", Dir: dir, Repo: "docker-pkg-test/" + name, Tag: "1.0-1"}
	t.Cleanup(func() {
		_, err := cli.ImageRemove(context.Background(), img.Label(), client.ImageRemoveOptions{Force: true, PruneChildren: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing %s: %v", img.Label(), err)
		}
	})
	return img
}

// savedImage returns `docker save` of ref and the files its layers hold,
// the later layers' over the earlier ones'.
func savedImage(t *testing.T, cli *client.Client, ref string) (raw []byte, files map[string]string) {
	t.Helper()
	rc, err := cli.ImageSave(t.Context(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	raw, err = io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	var manifest []struct{ Layers []string }
	layers := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(raw))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Name == "manifest.json" {
			if err := json.Unmarshal(data, &manifest); err != nil {
				t.Fatal(err)
			}
		}
		layers[hdr.Name] = data
	}
	if len(manifest) != 1 {
		t.Fatalf("docker save of %s: %d manifests", ref, len(manifest))
	}
	files = map[string]string{}
	for _, name := range manifest[0].Layers {
		lr := tar.NewReader(bytes.NewReader(layers[name]))
		for {
			hdr, err := lr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", name, err)
			}
			if hdr.Typeflag == tar.TypeReg {
				data, err := io.ReadAll(lr)
				if err != nil {
					t.Fatal(err)
				}
				files[strings.TrimPrefix(hdr.Name, "./")] = string(data)
			}
		}
	}
	return raw, files
}

func nonce(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestBuildKitSecretNeverInImage(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	secret := "s3cr3t-" + nonce(t)
	t.Setenv("DOCKER_PKG_TEST_TOK", secret)
	img := kitImage(t, cli, "bk-secret", map[string]string{"hello.txt": "hello\n"})
	dockerfile := "FROM " + base + "\n" +
		"COPY hello.txt /hello.txt\n" +
		"RUN --mount=type=secret,id=tok sh -c 'sha256sum /run/secrets/tok > /tok.sha'\n" +
		"RUN echo \"proxy=$http_proxy\" > /proxy.txt\n"
	var log bytes.Buffer
	id, err := buildKit(t.Context(), cli, img, BuildRequest{
		Dockerfile: []byte(dockerfile),
		NoCache:    true,
		HTTPProxy:  "http://proxy.invalid:3128",
		Labels:     map[string]string{"org.example.test": "bk"},
		Limits:     &config.Limits{Memory: 256 << 20},
		Log:        &log,
	}, map[string]config.Secret{"tok": {Env: "DOCKER_PKG_TEST_TOK"}})
	defer func() {
		if t.Failed() {
			t.Logf("build log:\n%s", log.String())
		}
	}()
	if err != nil {
		t.Fatalf("BuildKit: %v", err)
	}
	if !strings.HasPrefix(id, "sha256:") {
		t.Errorf("image ID %q", id)
	}
	if !strings.Contains(log.String(), "RUN --mount=type=secret,id=tok") {
		t.Errorf("the log shows no RUN step")
	}
	if !strings.Contains(log.String(), "WARNING: container_limits are not applied") {
		t.Errorf("the log does not warn that the limits are ignored")
	}
	// The built-in frontend served the build: nothing was pulled.
	if strings.Contains(log.String(), "docker/dockerfile") {
		t.Errorf("the daemon went for a frontend image")
	}

	raw, files := savedImage(t, cli, img.Label())
	sum := sha256.Sum256([]byte(secret))
	if got, want := files["tok.sha"], hex.EncodeToString(sum[:])+"  /run/secrets/tok\n"; got != want {
		t.Errorf("/tok.sha = %q, want %q: the RUN step did not read the secret", got, want)
	}
	if got := files["proxy.txt"]; got != "proxy=http://proxy.invalid:3128\n" {
		t.Errorf("/proxy.txt = %q: the proxy build arg did not reach the build", got)
	}
	if files["hello.txt"] != "hello\n" {
		t.Errorf("/hello.txt = %q: the context was not sent", files["hello.txt"])
	}
	for path := range files {
		if strings.HasPrefix(path, "run/secrets/") && files[path] != "" {
			t.Errorf("the image holds %s with content", path)
		}
	}
	hist, err := cli.ImageHistory(t.Context(), img.Label())
	if err != nil {
		t.Fatal(err)
	}
	insp, err := cli.ImageInspect(t.Context(), img.Label())
	if err != nil {
		t.Fatal(err)
	}
	if got := insp.Config.Labels["org.example.test"]; got != "bk" {
		t.Errorf("label org.example.test = %q, want bk", got)
	}
	for what, text := range map[string]string{
		"docker save":    string(raw),
		"docker history": fmt.Sprintf("%+v", hist.Items),
		"the build log":  log.String(),
	} {
		if strings.Contains(text, secret) {
			t.Errorf("%s holds the secret's value", what)
		}
	}
	// The search above must be able to find things: the history holds the
	// step and the saved image holds the files.
	if !strings.Contains(fmt.Sprintf("%+v", hist.Items), "sha256sum /run/secrets/tok") || !bytes.Contains(raw, []byte("proxy.invalid")) {
		t.Errorf("docker history or save lacks what the build did")
	}
}

func TestBuildKitFailingRun(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	img := kitImage(t, cli, "bk-fail", nil)
	var log bytes.Buffer
	_, err := buildKit(t.Context(), cli, img, BuildRequest{
		Dockerfile: []byte("FROM " + base + "\nRUN echo first-line && echo why-it-failed >&2 && exit 3\nRUN echo never\n"),
		NoCache:    true,
		Log:        &log,
	}, nil)
	defer func() {
		if t.Failed() {
			t.Logf("build log:\n%s", log.String())
		}
	}()
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("BuildKit: %v, want a *BuildError", err)
	}
	if be.Stage != StageBuild || be.Image != img.Label() {
		t.Errorf("BuildError for %s stage %s, want %s stage %s", be.Image, be.Stage, img.Label(), StageBuild)
	}
	tail := strings.Join(be.Tail, "\n")
	for _, want := range []string{"first-line", "why-it-failed", "RUN echo first-line", "exit code: 3"} {
		if !strings.Contains(tail, want) {
			t.Errorf("BuildError.Tail lacks %q:\n%s", want, tail)
		}
	}
	if strings.Contains(log.String(), "never") {
		t.Errorf("the step after the failure ran")
	}
}

func TestBuildKitCacheMount(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	token, run := nonce(t), nonce(t)
	mount := "RUN --mount=type=cache,id=docker-pkg-test-apt,target=/var/cache/apt "
	shared := kitImage(t, cli, "bk-cache-shared", nil)
	fill := kitImage(t, cli, "bk-cache-fill", nil)
	read := kitImage(t, cli, "bk-cache-read", nil)
	build := func(img *Image, dockerfile string, noCache bool) string {
		t.Helper()
		var log bytes.Buffer
		id, err := buildWith(t.Context(), NewSession(cli, nil), img, BuildRequest{Dockerfile: []byte(dockerfile), NoCache: noCache, Log: &log})
		if err != nil {
			t.Fatalf("BuildKit %s: %v\n%s", img.Label(), err, log.String())
		}
		// A rebuild under the same tag leaves the image before untagged.
		t.Cleanup(func() {
			_, err := cli.ImageRemove(context.Background(), id, client.ImageRemoveOptions{Force: true})
			if err != nil && !cerrdefs.IsNotFound(err) {
				t.Errorf("removing %s: %v", id, err)
			}
		})
		return log.String()
	}

	// With NoCache, the steps of one build share the mount, which never
	// goes into a layer.
	build(shared, "FROM "+base+"\n"+
		mount+"sh -c 'echo "+token+" > /var/cache/apt/token'\n"+
		mount+"sh -c 'cp /var/cache/apt/token /seen'\n", true)
	_, files := savedImage(t, cli, shared.Label())
	if files["seen"] != token+"\n" {
		t.Errorf("/seen = %q, want %q: the second step did not see the first one's file", files["seen"], token)
	}
	if _, ok := files["var/cache/apt/token"]; ok {
		t.Errorf("the cache mount's content went into a layer")
	}

	// With the layer cache (--use-cache), the mount outlives the build.
	build(fill, "FROM "+base+"\n"+mount+"sh -c 'echo "+token+" > /var/cache/apt/token'\n", false)
	readFile := "FROM " + base + "\n" + mount + "sh -c 'echo ran " + run + "; cat /var/cache/apt/token > /seen || true'\n"
	first := build(read, readFile, false)
	if _, files := savedImage(t, cli, read.Label()); files["seen"] != token+"\n" {
		t.Errorf("/seen = %q, want %q: the cache mount did not keep the earlier build's file", files["seen"], token)
	}
	// NoCache keeps its meaning: the step runs again where the layer cache
	// skips it.
	cached := build(read, readFile, false)
	again := build(read, readFile, true)
	ran := "ran " + run + "\n"
	if !strings.Contains(first, ran) || !strings.Contains(again, ran) {
		t.Errorf("a build did not run the step:\n%s\n%s", first, again)
	}
	if strings.Contains(cached, ran) || !strings.Contains(cached, "CACHED") {
		t.Errorf("the build with the layer cache ran the step again:\n%s", cached)
	}
}

func TestBuildKitBuildStage(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	secret := "stage-" + nonce(t)
	t.Setenv("DOCKER_PKG_TEST_TOK", secret)
	img := kitImage(t, cli, "bk-stage", nil)
	var log bytes.Buffer
	_, err := buildKit(t.Context(), cli, img, BuildRequest{
		BuildDockerfile: []byte("FROM " + base + "\nRUN --mount=type=secret,id=tok sh -c 'mkdir /build && wc -c < /run/secrets/tok > /build/size'\n"),
		Dockerfile:      []byte("FROM " + base + "\nCOPY build/size /size\n"),
		NoCache:         true,
		Log:             &log,
	}, map[string]config.Secret{"tok": {Env: "DOCKER_PKG_TEST_TOK"}})
	if err != nil {
		t.Fatalf("BuildKit: %v\n%s", err, log.String())
	}
	if _, files := savedImage(t, cli, img.Label()); strings.TrimSpace(files["size"]) != fmt.Sprint(len(secret)) {
		t.Errorf("/size = %q, want %d: the build stage did not get the secret", files["size"], len(secret))
	}
	if _, err := cli.ImageInspect(t.Context(), img.Repo+"-build:"+img.Tag); err == nil {
		t.Errorf("the build-stage image is left behind")
	}
}

func TestBuildKitRejectsBeforeBuilding(t *testing.T) {
	os.Unsetenv("DOCKER_PKG_TEST_UNSET")
	img := &Image{Name: "x", Dir: t.TempDir(), Repo: "x", Tag: "1"}
	tests := []struct {
		name    string
		opts    BuildRequest
		secrets map[string]config.Secret
		stage   Stage
		want    string
	}{
		{
			name:    "missing secret",
			opts:    BuildRequest{Dockerfile: []byte("FROM scratch\n")},
			secrets: map[string]config.Secret{"tok": {Env: "DOCKER_PKG_TEST_UNSET"}},
			stage:   StageBuild,
			want:    "secret tok",
		},
		{
			name:  "syntax directive",
			opts:  BuildRequest{Dockerfile: []byte("# syntax=docker/dockerfile:1\nFROM scratch\n")},
			stage: StageBuild,
			want:  TemplateFile + ": line 1",
		},
		{
			name:  "syntax directive in the build stage",
			opts:  BuildRequest{Dockerfile: []byte("FROM scratch\n"), BuildDockerfile: []byte("# syntax=docker/dockerfile:1\nFROM scratch\n")},
			stage: StageBuildStage,
			want:  BuildTemplateFile + ": line 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A nil engine: any call to the daemon would panic.
			_, err := buildKit(t.Context(), nil, img, tt.opts, tt.secrets)
			var be *BuildError
			if !errors.As(err, &be) || be.Stage != tt.stage || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("BuildKit: %v, want a %s *BuildError saying %q", err, tt.stage, tt.want)
			}
		})
	}
}

// kitFake is a daemon for the session's plumbing: DialHijack and
// ImageBuild as given, any other call panics.
type kitFake struct {
	BuildKitEngine
	dial  func(ctx context.Context) (net.Conn, error)
	build func(ctx context.Context, opts client.ImageBuildOptions) (client.ImageBuildResult, error)
}

func (f *kitFake) DialHijack(ctx context.Context, url, proto string, meta map[string][]string) (net.Conn, error) {
	if url != "/session" || proto != "h2c" || len(meta["X-Docker-Expose-Session-Uuid"]) != 1 {
		return nil, fmt.Errorf("DialHijack(%q, %q, %v): not a session", url, proto, meta)
	}
	return f.dial(ctx)
}

// NetworkInspect says the daemon has its bridge, as most do.
func (f *kitFake) NetworkInspect(ctx context.Context, id string, _ client.NetworkInspectOptions) (client.NetworkInspectResult, error) {
	return client.NetworkInspectResult{}, nil
}

func (f *kitFake) ImageBuild(ctx context.Context, r io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return client.ImageBuildResult{}, err
	}
	return f.build(ctx, opts)
}

func TestBuildKitRequest(t *testing.T) {
	img := &Image{Name: "x", Dir: t.TempDir(), Repo: "x", Tag: "1"}
	var got client.ImageBuildOptions
	fake := &kitFake{
		// A daemon that never answers the session: the build does not
		// wait for it to end.
		dial: func(ctx context.Context) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
		build: func(ctx context.Context, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
			got = opts
			body := `{"id":"moby.image.id","aux":{"ID":"sha256:0123"}}`
			return client.ImageBuildResult{Body: io.NopCloser(strings.NewReader(body))}, nil
		},
	}
	id, err := buildKit(t.Context(), fake, img, BuildRequest{Dockerfile: []byte("FROM scratch\n"), NoCache: true}, nil)
	if err != nil || id != "sha256:0123" {
		t.Fatalf("BuildKit: %q, %v", id, err)
	}
	if got.Version != "2" || got.SessionID == "" || !got.NoCache || got.PullParent || len(got.Tags) != 1 || got.Tags[0] != "x:1" {
		t.Errorf("ImageBuild options: version %q, session %q, nocache %v, pull %v, tags %v",
			got.Version, got.SessionID, got.NoCache, got.PullParent, got.Tags)
	}
}

func TestBuildKitSessionFails(t *testing.T) {
	img := &Image{Name: "x", Dir: t.TempDir(), Repo: "x", Tag: "1"}
	fake := &kitFake{
		dial: func(ctx context.Context) (net.Conn, error) {
			return nil, errors.New("no /session here")
		},
		// A daemon waiting for the session, as a real one does.
		build: func(ctx context.Context, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
			<-ctx.Done()
			return client.ImageBuildResult{}, ctx.Err()
		},
	}
	_, err := buildKit(t.Context(), fake, img, BuildRequest{Dockerfile: []byte("FROM scratch\n")}, nil)
	var be *BuildError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "attaching the BuildKit session") || !strings.Contains(err.Error(), "no /session here") {
		t.Fatalf("BuildKit: %v, want a *BuildError saying the session failed", err)
	}
}

// signal closes ch the first time what is written holds s.
type signal struct {
	s    string
	ch   chan struct{}
	buf  bytes.Buffer
	once sync.Once
}

func (w *signal) Write(p []byte) (int, error) {
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.s) {
		w.once.Do(func() { close(w.ch) })
	}
	return len(p), nil
}

func TestBuildKitCancel(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	img := kitImage(t, cli, "bk-cancel", nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	log := &signal{s: "sleeping", ch: make(chan struct{})}
	go func() {
		<-log.ch
		cancel()
	}()
	_, err := buildKit(ctx, cli, img, BuildRequest{
		Dockerfile: []byte("FROM " + base + "\nRUN echo sleeping && sleep 120\n"),
		NoCache:    true,
		Log:        log,
	}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("BuildKit: %v, want context.Canceled\n%s", err, log.buf.String())
	}
}

// buildKit builds img with the Session backend of eng, in a context of
// its own, as the pipeline does.
func buildKit(ctx context.Context, eng BuildKitEngine, img *Image, req BuildRequest, secrets map[string]config.Secret) (string, error) {
	return buildWith(ctx, NewSession(eng, secrets), img, req)
}

// TestBuildKitWithoutBridge builds on a daemon started with --bridge=none,
// whose BuildKit has no default network for RUN steps: they run on the
// host's network.
func TestBuildKitWithoutBridge(t *testing.T) {
	cli := testenv.BridgelessDocker(t)
	base := testenv.Busybox(t, cli)
	img := kitImage(t, cli, "bk-nobridge", nil)
	var log bytes.Buffer
	_, err := buildKit(t.Context(), cli, img, BuildRequest{
		Dockerfile: []byte("FROM " + base + "\nRUN echo ran > /ran\n"),
		NoCache:    true,
		Log:        &log,
	}, nil)
	if err != nil {
		t.Fatalf("BuildKit on a daemon without a bridge: %v\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "RUN steps use the host's network") {
		t.Errorf("the log does not say the host network is used:\n%s", log.String())
	}
}
