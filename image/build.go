package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/config"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Stage says which part of an image's work failed.
type Stage string

const (
	StageRender     Stage = "render"      // rendering the templates
	StageBuildStage Stage = "build-stage" // the Dockerfile.build.template image
	StageBuild      Stage = "build"       // the image itself
	StageVerify     Stage = "verify"      // the verify command
)

// tailLines is how many lines of log an error carries.
const tailLines = 30

// BuildError is the error of one stage of one image. Tail holds the last
// lines of that stage's log, enough to see why without the log file.
type BuildError struct {
	Image string // full label
	Stage Stage
	Tail  []string
	Err   error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("%s: %s failed: %v", e.Image, e.Stage, e.Err)
}

func (e *BuildError) Unwrap() error { return e.Err }

// BuildOptions says how to build one image.
type BuildOptions struct {
	Dockerfile      []byte         // rendered Dockerfile.template
	BuildDockerfile []byte         // rendered Dockerfile.build.template; nil when none
	NoCache         bool           // true unless --use-cache
	HTTPProxy       string         // when set: build args http_proxy, https_proxy, HTTP_PROXY, HTTPS_PROXY
	Limits          *config.Limits // container_limits; nil for none
	Labels          map[string]string
	Log             io.Writer // the daemon's output, as docker build prints it; nil discards it
}

// cleanupTimeout bounds the removal of what a build leaves behind, which
// runs even after ctx is cancelled.
const cleanupTimeout = 2 * time.Minute

// Build builds img through the Engine API, tagged img.Label(), and returns
// the image ID. The context is a private copy of img.Dir minus what its
// .dockerignore excludes, plus the rendered Dockerfile; it is removed
// whatever happens. With a BuildDockerfile, the image built from it as
// {Repo}-build:{Tag} first gives its /build folder to the context (as
// build/), and is removed afterwards with its container. Errors are
// *BuildError.
func Build(ctx context.Context, eng Engine, img *Image, opts BuildOptions) (string, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	dir, err := newContext(ctx, img.Dir)
	if err != nil {
		return "", &BuildError{Image: img.Label(), Stage: StageBuild, Err: err}
	}
	defer os.RemoveAll(dir)

	if opts.BuildDockerfile != nil {
		log := &tail{w: opts.Log}
		if err := buildStage(ctx, eng, img, dir, opts, log); err != nil {
			return "", &BuildError{Image: img.Label(), Stage: StageBuildStage, Tail: log.Lines(), Err: err}
		}
	}
	log := &tail{w: opts.Log}
	if err := writeDockerfile(dir, opts.Dockerfile); err != nil {
		return "", &BuildError{Image: img.Label(), Stage: StageBuild, Err: err}
	}
	id, err := runBuild(ctx, eng, dir, img.Label(), opts, log)
	if err != nil {
		return "", &BuildError{Image: img.Label(), Stage: StageBuild, Tail: log.Lines(), Err: err}
	}
	return id, nil
}

// buildStage builds the build-stage image in dir and copies its /build
// folder into dir.
func buildStage(ctx context.Context, eng Engine, img *Image, dir string, opts BuildOptions, log *tail) (err error) {
	label := img.Repo + "-build:" + img.Tag
	if err := writeDockerfile(dir, opts.BuildDockerfile); err != nil {
		return err
	}
	// Removed even when the build fails half-way: PruneChildren takes its
	// untagged intermediate layers too.
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		_, rmErr := eng.ImageRemove(cctx, label, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		if rmErr != nil && !cerrdefs.IsNotFound(rmErr) && err == nil {
			err = fmt.Errorf("removing build-stage image %s: %w", label, rmErr)
		}
	}()
	if _, err := runBuild(ctx, eng, dir, label, opts, log); err != nil {
		return err
	}
	// A created container is never started: its files can be read all the
	// same. The daemon wants a command all the same; it never runs.
	created, err := eng.ContainerCreate(ctx, client.ContainerCreateOptions{
		Image:  label,
		Config: &container.Config{Cmd: []string{"true"}, NetworkDisabled: true},
	})
	if err != nil {
		return fmt.Errorf("creating a container from %s: %w", label, err)
	}
	defer func() {
		if rmErr := removeContainer(ctx, eng, created.ID); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	res, err := eng.CopyFromContainer(ctx, created.ID, client.CopyFromContainerOptions{SourcePath: "/build"})
	if cerrdefs.IsNotFound(err) {
		return fmt.Errorf("build-stage image %s has no /build folder to copy", label)
	}
	if err != nil {
		return fmt.Errorf("copying /build out of %s: %w", label, err)
	}
	defer res.Content.Close()
	if err := extractTar(res.Content, dir); err != nil {
		return fmt.Errorf("copying /build out of %s: %w", label, err)
	}
	fmt.Fprintf(log, "Copied /build of %s into the build context\n", label)
	return nil
}

// runBuild sends dir to the daemon and builds it as tag.
func runBuild(ctx context.Context, eng Engine, dir, tag string, opts BuildOptions, log *tail) (id string, err error) {
	stream := tarContext(dir)
	defer stream.Close()
	bo := client.ImageBuildOptions{
		Tags:        []string{tag},
		NoCache:     opts.NoCache,
		Remove:      true,
		ForceRemove: true,
		PullParent:  false,
		Labels:      opts.Labels,
		Version:     buildtypes.BuilderV1, // the classic builder, as the reference
	}
	if p := opts.HTTPProxy; p != "" {
		bo.BuildArgs = map[string]*string{"http_proxy": &p, "https_proxy": &p, "HTTP_PROXY": &p, "HTTPS_PROXY": &p}
	}
	if l := opts.Limits; l != nil {
		bo.Memory, bo.MemorySwap, bo.CPUShares, bo.CPUSetCPUs = l.Memory, l.MemorySwap, l.CPUShares, l.CPUSetCPUs
	}
	res, err := eng.ImageBuild(ctx, stream, bo)
	if err != nil {
		return "", interrupted(ctx, fmt.Errorf("sending the build to the daemon: %w", err))
	}
	defer res.Body.Close()
	id, running, err := readBuild(res.Body, log)
	if err != nil && running != "" {
		// Interrupted, the daemon removes the step's container in its own
		// time; wait for it to be gone so nothing outlives Build.
		if rmErr := removeContainer(ctx, eng, running); rmErr != nil {
			err = errors.Join(err, rmErr)
		}
	}
	if err != nil {
		return "", interrupted(ctx, err)
	}
	return id, nil
}

// interrupted gives ctx's error, which callers test with errors.Is, when
// ctx is the reason err happened.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// message is one item of the daemon's JSON build stream.
type message struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

// readBuild copies the build stream's text to log and returns the image ID,
// the last step's container when the stream ends without a result, and
// the daemon's error.
func readBuild(r io.Reader, log io.Writer) (id, running string, err error) {
	dec := json.NewDecoder(r)
	for {
		var m message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return "", running, fmt.Errorf("reading the daemon's build output: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			m.Error = m.ErrorDetail.Message
		}
		if m.Error != "" {
			fmt.Fprintf(log, "ERROR: %s\n", m.Error)
			return "", running, errors.New(m.Error)
		}
		if m.Stream != "" {
			io.WriteString(log, m.Stream)
			if c, ok := strings.CutPrefix(strings.TrimSpace(m.Stream), "---> Running in "); ok {
				running = c
			}
			if c, ok := strings.CutPrefix(strings.TrimSpace(m.Stream), "Successfully built "); ok && id == "" {
				id = c // daemons that send no aux ID
			}
		}
		if m.Status != "" {
			fmt.Fprintln(log, m.Status)
		}
		if len(m.Aux) > 0 {
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
	if id == "" {
		return "", running, errors.New("the daemon's build output ended without an image ID")
	}
	return id, "", nil
}

// removeContainer removes a container and waits until it is gone, even
// when ctx is cancelled. A container already gone is not an error.
func removeContainer(ctx context.Context, eng Engine, id string) error {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	// The wait is registered first so the removal cannot slip past it.
	wait := eng.ContainerWait(cctx, id, client.ContainerWaitOptions{Condition: container.WaitConditionRemoved})
	_, err := eng.ContainerRemove(cctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
		return fmt.Errorf("removing container %s: %w", id, err)
	}
	select {
	case <-wait.Result:
		return nil
	case err := <-wait.Error:
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("waiting for container %s to go: %w", id, err)
	}
}

func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// tail passes what is written on to w and keeps the last tailLines lines.
// A failing w does not fail the build: the log is a copy.
type tail struct {
	w     io.Writer
	lines []string
	part  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	_, _ = t.w.Write(p)
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.add(string(bytes.TrimRight(t.part[:i], "\r")))
		t.part = t.part[i+1:]
	}
	return len(p), nil
}

func (t *tail) add(line string) {
	if len(t.lines) == tailLines {
		copy(t.lines, t.lines[1:])
		t.lines = t.lines[:tailLines-1]
	}
	t.lines = append(t.lines, line)
}

// Lines returns the last lines written, an unfinished one included.
func (t *tail) Lines() []string {
	out := append([]string(nil), t.lines...)
	if len(t.part) > 0 {
		out = append(out, string(t.part))
	}
	if len(out) > tailLines {
		out = out[len(out)-tailLines:]
	}
	return out
}
