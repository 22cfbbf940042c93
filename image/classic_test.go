package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/moby/moby/client"
)

// fakeEngine answers ImageBuild from a canned stream, recording what it was
// sent; any call it does not define panics through the nil Engine.
type fakeEngine struct {
	Engine
	stream  func(opts client.ImageBuildOptions) string // JSON stream to answer
	builds  []client.ImageBuildOptions
	sent    []map[string]string // per build: context file name -> content
	removed []string            // images and containers removed, in order
}

func (f *fakeEngine) ImageBuild(ctx context.Context, r io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
	files := map[string]string{}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return client.ImageBuildResult{}, err
		}
		body, _ := io.ReadAll(tr)
		files[hdr.Name] = string(body)
	}
	f.builds = append(f.builds, opts)
	f.sent = append(f.sent, files)
	return client.ImageBuildResult{Body: io.NopCloser(strings.NewReader(f.stream(opts)))}, nil
}

func (f *fakeEngine) ImageRemove(ctx context.Context, ref string, opts client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	f.removed = append(f.removed, "image "+ref)
	return client.ImageRemoveResult{}, nil
}

func (f *fakeEngine) ContainerCreate(ctx context.Context, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	return client.ContainerCreateResult{ID: "c0ffee"}, nil
}

func (f *fakeEngine) ContainerRemove(ctx context.Context, id string, opts client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	f.removed = append(f.removed, "container "+id)
	return client.ContainerRemoveResult{}, nil
}

func (f *fakeEngine) ContainerWait(ctx context.Context, id string, opts client.ContainerWaitOptions) client.ContainerWaitResult {
	errs := make(chan error, 1)
	errs <- cerrdefs.ErrNotFound
	return client.ContainerWaitResult{Error: errs}
}

// jsonStream encodes daemon messages, one JSON object each.
func jsonStream(msgs ...map[string]any) string {
	var b strings.Builder
	for _, m := range msgs {
		data, _ := json.Marshal(m)
		b.Write(data)
		b.WriteByte('\n')
	}
	return b.String()
}

func okStream(id string) func(client.ImageBuildOptions) string {
	return func(client.ImageBuildOptions) string {
		return jsonStream(
			map[string]any{"stream": "Step 1/1 : FROM scratch"},
			map[string]any{"stream": "\n"},
			map[string]any{"aux": map[string]any{"ID": id}},
			map[string]any{"stream": "Successfully built " + id[7:19] + "\n"},
		)
	}
}

// privateTmp points os.TempDir at a fresh folder and returns it, so a test
// can see what a build leaves there.
func privateTmp(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	return dir
}

func TestBuildSendsOptions(t *testing.T) {
	tmp := privateTmp(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{".dockerignore": "*.log\n", "a.log": "", "a.txt": "a", "Dockerfile.template": "FROM {{ x }}"})
	img := &Image{Name: "foo", Dir: src, Repo: "reg.example/ns/foo", Tag: "1.0-1"}
	eng := &fakeEngine{stream: okStream("sha256:" + strings.Repeat("ab", 32))}
	limits := &config.Limits{Memory: 1 << 30, MemorySwap: 2 << 30, CPUShares: 512, CPUSetCPUs: "0-1"}

	id, err := build(t.Context(), eng, img, BuildRequest{
		Dockerfile: []byte("FROM scratch\n"),
		NoCache:    true,
		HTTPProxy:  "http://proxy:3128",
		Limits:     limits,
		Labels:     map[string]string{"version": "1.0-1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "sha256:" + strings.Repeat("ab", 32); id != want {
		t.Errorf("id %q, want %q", id, want)
	}
	if len(eng.builds) != 1 {
		t.Fatalf("%d builds, want 1", len(eng.builds))
	}
	got := eng.builds[0]
	proxy := "http://proxy:3128"
	want := client.ImageBuildOptions{
		Tags:        []string{"reg.example/ns/foo:1.0-1"},
		NoCache:     true,
		Remove:      true,
		ForceRemove: true,
		PullParent:  false,
		Memory:      1 << 30,
		MemorySwap:  2 << 30,
		CPUShares:   512,
		CPUSetCPUs:  "0-1",
		Labels:      map[string]string{"version": "1.0-1"},
		BuildArgs:   map[string]*string{"http_proxy": &proxy, "https_proxy": &proxy, "HTTP_PROXY": &proxy, "HTTPS_PROXY": &proxy},
		Version:     got.Version,
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(want)
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Errorf("options\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	sent := slices.Sorted(mapKeys(eng.sent[0]))
	if want := []string{".dockerignore", "Dockerfile", "Dockerfile.template", "a.txt"}; !slices.Equal(sent, want) {
		t.Errorf("context sent %q, want %q", sent, want)
	}
	if df := eng.sent[0]["Dockerfile"]; df != "FROM scratch\n" {
		t.Errorf("Dockerfile sent %q, want the rendered one", df)
	}
	if left := listTree(t, tmp); len(left) != 0 {
		t.Errorf("build left %q in the temporary folder", left)
	}
}

func TestBuildWithoutProxyOrLimits(t *testing.T) {
	privateTmp(t)
	img := &Image{Name: "foo", Dir: t.TempDir(), Repo: "foo", Tag: "1"}
	eng := &fakeEngine{stream: okStream("sha256:" + strings.Repeat("cd", 32))}
	if _, err := build(t.Context(), eng, img, BuildRequest{Dockerfile: []byte("FROM scratch\n")}); err != nil {
		t.Fatal(err)
	}
	got := eng.builds[0]
	if got.NoCache || got.BuildArgs != nil || got.Memory != 0 || got.CPUSetCPUs != "" || !got.Remove || !got.ForceRemove || got.PullParent {
		t.Errorf("options %+v: want cache allowed, no build args, no limits, intermediate containers removed, no pull", got)
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func TestReadBuild(t *testing.T) {
	id := "sha256:" + strings.Repeat("0f", 32)
	tests := []struct {
		name    string
		stream  string
		wantLog string
		wantID  string
		wantErr string
	}{
		{
			name: "success",
			stream: jsonStream(
				map[string]any{"stream": "Step 1/2 : FROM base"},
				map[string]any{"stream": "\n"},
				map[string]any{"stream": " ---> Running in 0123456789ab\n"},
				map[string]any{"stream": "hello\n"},
				map[string]any{"aux": map[string]any{"ID": id}},
				map[string]any{"stream": "Successfully built 0f0f0f0f0f0f\n"},
			),
			wantLog: "Step 1/2 : FROM base\n ---> Running in 0123456789ab\nhello\nSuccessfully built 0f0f0f0f0f0f\n",
			wantID:  id,
		},
		{
			name: "no aux ID: the short ID from the last line",
			stream: jsonStream(
				map[string]any{"stream": "Successfully built 0f0f0f0f0f0f\n"},
			),
			wantLog: "Successfully built 0f0f0f0f0f0f\n",
			wantID:  "0f0f0f0f0f0f",
		},
		{
			name: "status lines",
			stream: jsonStream(
				map[string]any{"status": "Pulling from library/base"},
				map[string]any{"aux": map[string]any{"ID": id}},
			),
			wantLog: "Pulling from library/base\n",
			wantID:  id,
		},
		{
			name: "error with detail",
			stream: jsonStream(
				map[string]any{"stream": "Step 2/2 : RUN false\n"},
				map[string]any{"errorDetail": map[string]any{"code": 1, "message": "The command '/bin/sh -c false' returned a non-zero code: 1"},
					"error": "The command '/bin/sh -c false' returned a non-zero code: 1"},
				map[string]any{"aux": map[string]any{"ID": id}},
			),
			wantLog: "Step 2/2 : RUN false\nERROR: The command '/bin/sh -c false' returned a non-zero code: 1\n",
			wantErr: "The command '/bin/sh -c false' returned a non-zero code: 1",
		},
		{
			name:    "error without detail",
			stream:  jsonStream(map[string]any{"error": "dockerfile parse error line 1: unknown instruction: FORM"}),
			wantLog: "ERROR: dockerfile parse error line 1: unknown instruction: FORM\n",
			wantErr: "dockerfile parse error line 1: unknown instruction: FORM",
		},
		{
			name:    "no image ID",
			stream:  jsonStream(map[string]any{"stream": "Step 1/1 : FROM base\n"}),
			wantLog: "Step 1/1 : FROM base\n",
			wantErr: "the daemon's build output ended without an image ID",
		},
		{
			name:    "cut short",
			stream:  `{"stream":"Step 1/1 : FR`,
			wantErr: "reading the daemon's build output: unexpected EOF",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			id, _, err := readBuild(strings.NewReader(tt.stream), &log)
			if got := fmt.Sprint(err); (err != nil || tt.wantErr != "") && got != tt.wantErr {
				t.Errorf("error %q, want %q", got, tt.wantErr)
			}
			if id != tt.wantID {
				t.Errorf("id %q, want %q", id, tt.wantID)
			}
			if log.String() != tt.wantLog {
				t.Errorf("log %q, want %q", log.String(), tt.wantLog)
			}
		})
	}
}

func TestBuildErrorCarriesTail(t *testing.T) {
	tmp := privateTmp(t)
	img := &Image{Name: "foo", Dir: t.TempDir(), Repo: "foo", Tag: "1"}
	eng := &fakeEngine{stream: func(client.ImageBuildOptions) string {
		var msgs []map[string]any
		for i := 1; i <= 40; i++ {
			msgs = append(msgs, map[string]any{"stream": fmt.Sprintf("line %d\n", i)})
		}
		msgs = append(msgs, map[string]any{"error": "boom"})
		return jsonStream(msgs...)
	}}
	var log bytes.Buffer
	_, err := build(t.Context(), eng, img, BuildRequest{Dockerfile: []byte("FROM scratch\n"), Log: &log})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("error %v is not a *BuildError", err)
	}
	if be.Image != "foo:1" || be.Stage != StageBuild {
		t.Errorf("error for %s at %s, want foo:1 at build", be.Image, be.Stage)
	}
	if got, want := err.Error(), "foo:1: build failed: boom"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	var want []string
	for i := 12; i <= 40; i++ {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	want = append(want, "ERROR: boom")
	if !slices.Equal(be.Tail, want) {
		t.Errorf("tail\n%q\nwant\n%q", be.Tail, want)
	}
	if !strings.HasPrefix(log.String(), "line 1\nline 2\n") {
		t.Errorf("the log lost its start: %q", log.String()[:20])
	}
	if left := listTree(t, tmp); len(left) != 0 {
		t.Errorf("build left %q in the temporary folder", left)
	}
}

func TestTail(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{name: "nothing", want: nil},
		{name: "unfinished line", writes: []string{"a\nb"}, want: []string{"a", "b"}},
		{name: "line over two writes", writes: []string{"ab", "c\r\nd\n"}, want: []string{"abc", "d"}},
		{name: "blank lines kept", writes: []string{"a\n\nb\n"}, want: []string{"a", "", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var all bytes.Buffer
			tl := &tail{w: &all}
			for _, w := range tt.writes {
				tl.Write([]byte(w))
			}
			if got := tl.Lines(); !slices.Equal(got, tt.want) {
				t.Errorf("lines %q, want %q", got, tt.want)
			}
			if all.String() != strings.Join(tt.writes, "") {
				t.Errorf("passed on %q, want everything", all.String())
			}
		})
	}
}

// stageEngine is a fakeEngine with a build stage: CopyFromContainer gives
// copy, or fails with copyErr.
type stageEngine struct {
	fakeEngine
	copyTar []byte
	copyErr error
}

func (f *stageEngine) CopyFromContainer(ctx context.Context, id string, opts client.CopyFromContainerOptions) (client.CopyFromContainerResult, error) {
	if opts.SourcePath != "/build" {
		return client.CopyFromContainerResult{}, fmt.Errorf("copying %s, want /build", opts.SourcePath)
	}
	if f.copyErr != nil {
		return client.CopyFromContainerResult{}, f.copyErr
	}
	return client.CopyFromContainerResult{Content: io.NopCloser(bytes.NewReader(f.copyTar))}, nil
}

func buildTar(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "build/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, name := range slices.Sorted(mapKeys(files)) {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[name]))})
		tw.Write([]byte(files[name]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBuildStage(t *testing.T) {
	tests := []struct {
		name      string
		copyErr   error
		wantStage Stage
		wantErr   string
	}{
		{name: "artifact reaches the main context"},
		{
			name:      "no /build in the build image",
			copyErr:   cerrdefs.ErrNotFound,
			wantStage: StageBuildStage,
			wantErr:   "foo:1: build-stage failed: build-stage image foo-build:1 has no /build folder to copy",
		},
		{
			name:      "copy fails",
			copyErr:   errors.New("daemon gone"),
			wantStage: StageBuildStage,
			wantErr:   "foo:1: build-stage failed: copying /build out of foo-build:1: daemon gone",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := privateTmp(t)
			img := &Image{Name: "foo", Dir: t.TempDir(), Repo: "foo", Tag: "1", BuildStage: true}
			eng := &stageEngine{
				fakeEngine: fakeEngine{stream: okStream("sha256:" + strings.Repeat("ee", 32))},
				copyTar:    buildTar(t, map[string]string{"build/app.bin": "binary"}),
				copyErr:    tt.copyErr,
			}
			_, err := build(t.Context(), eng, img, BuildRequest{
				Dockerfile:      []byte("FROM scratch\nCOPY build/app.bin /\n"),
				BuildDockerfile: []byte("FROM scratch AS build\n"),
			})
			if got := fmt.Sprint(err); (err != nil || tt.wantErr != "") && got != tt.wantErr {
				t.Fatalf("error %q, want %q", got, tt.wantErr)
			}
			var be *BuildError
			if err != nil && (!errors.As(err, &be) || be.Stage != tt.wantStage) {
				t.Errorf("error %#v, want a *BuildError at stage %s", err, tt.wantStage)
			}
			if want := []string{"container c0ffee", "image foo-build:1"}; !slices.Equal(eng.removed, want) {
				t.Errorf("removed %q, want %q", eng.removed, want)
			}
			if eng.builds[0].Tags[0] != "foo-build:1" || eng.sent[0]["Dockerfile"] != "FROM scratch AS build\n" {
				t.Errorf("first build %q with Dockerfile %q, want the build stage", eng.builds[0].Tags, eng.sent[0]["Dockerfile"])
			}
			if err == nil {
				main := eng.sent[1]
				if main["build/app.bin"] != "binary" || main["Dockerfile"] != "FROM scratch\nCOPY build/app.bin /\n" {
					t.Errorf("main build context %q lacks the artifact or the Dockerfile", slices.Sorted(mapKeys(main)))
				}
			}
			if left := listTree(t, tmp); len(left) != 0 {
				t.Errorf("build left %q in the temporary folder", left)
			}
		})
	}
}

// cancelEngine cancels the build as soon as the daemon has started a
// step's container, and records the removals Build asks for.
type cancelEngine struct {
	fakeEngine
	cancel  context.CancelFunc
	mu      sync.Mutex
	waited  []string
	removes []string
}

func (f *cancelEngine) ImageBuild(ctx context.Context, r io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, jsonStream(map[string]any{"stream": " ---> Running in 0123456789ab\n"}))
		f.cancel()
		<-ctx.Done()
		pw.CloseWithError(ctx.Err())
	}()
	return client.ImageBuildResult{Body: pr}, nil
}

func (f *cancelEngine) ContainerRemove(ctx context.Context, id string, opts client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	if ctx.Err() != nil {
		return client.ContainerRemoveResult{}, ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removes = append(f.removes, id)
	return client.ContainerRemoveResult{}, nil
}

func (f *cancelEngine) ContainerWait(ctx context.Context, id string, opts client.ContainerWaitOptions) client.ContainerWaitResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waited = append(f.waited, id+" "+string(opts.Condition))
	errs := make(chan error, 1)
	errs <- cerrdefs.ErrNotFound
	return client.ContainerWaitResult{Error: errs}
}

func TestBuildCancelledRemovesStepContainer(t *testing.T) {
	tmp := privateTmp(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	eng := &cancelEngine{cancel: cancel}
	img := &Image{Name: "foo", Dir: t.TempDir(), Repo: "foo", Tag: "1"}
	_, err := build(ctx, eng, img, BuildRequest{Dockerfile: []byte("FROM scratch\n")})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if want := []string{"0123456789ab"}; !slices.Equal(eng.removes, want) {
		t.Errorf("removed %q, want the step's container %q, with a context still alive", eng.removes, want)
	}
	if want := []string{"0123456789ab removed"}; !slices.Equal(eng.waited, want) {
		t.Errorf("waited for %q, want %q", eng.waited, want)
	}
	if left := listTree(t, tmp); len(left) != 0 {
		t.Errorf("build left %q in the temporary folder", left)
	}
}

func TestBuildPanicRemovesContext(t *testing.T) {
	tmp := privateTmp(t)
	img := &Image{Name: "foo", Dir: t.TempDir(), Repo: "foo", Tag: "1"}
	eng := &fakeEngine{stream: func(client.ImageBuildOptions) string { panic("engine bug") }}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the panic did not reach the caller")
			}
		}()
		build(t.Context(), eng, img, BuildRequest{Dockerfile: []byte("FROM scratch\n")})
	}()
	if left := listTree(t, tmp); len(left) != 0 {
		t.Errorf("build left %q in the temporary folder", left)
	}
}

// build makes img's context, as the pipeline does, builds it with the
// classic backend of eng and removes the context.
func build(ctx context.Context, eng Engine, img *Image, req BuildRequest) (string, error) {
	return buildWith(ctx, NewClassic(eng), img, req)
}

// buildWith builds img with backend b the way the pipeline does: in a
// context of its own, removed afterwards.
func buildWith(ctx context.Context, b interface {
	Build(context.Context, BuildRequest) (Built, error)
}, img *Image, req BuildRequest) (string, error) {
	dir, err := NewContext(ctx, img.Dir, img.Root)
	if err != nil {
		return "", &BuildError{Image: img.Label(), Stage: StageBuild, Err: err}
	}
	defer os.RemoveAll(dir)
	req.Image, req.Context = img, dir
	built, err := b.Build(ctx, req)
	return built.ID, err
}
