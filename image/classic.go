package image

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// cleanupTimeout bounds the removal of what a build leaves behind, which
// runs even after ctx is cancelled.
const cleanupTimeout = 2 * time.Minute

// Classic is the backend of the classic builder of the local Docker
// Engine, as the reference docker-pkg builds: the image is tagged
// Image.Label() in the daemon, which never pulls. A build-stage image
// ({Repo}-build:{Tag}) is built first from Dockerfile.build, its /build
// folder copied into the context as build/, and removed afterwards with its
// container, whatever happens.
type Classic struct{ eng Engine }

// NewClassic returns the classic builder of eng.
func NewClassic(eng Engine) *Classic { return &Classic{eng: eng} }

// Build builds req.Context with the classic builder. Errors are
// *BuildError.
func (c *Classic) Build(ctx context.Context, req BuildRequest) (Built, error) {
	id, err := buildEngine(ctx, c.eng, req)
	return Built{ID: id, Local: true}, err
}

// buildEngine builds req on eng, build stage first, and returns the image
// ID. Errors are *BuildError.
func buildEngine(ctx context.Context, eng Engine, req BuildRequest) (string, error) {
	if req.Log == nil {
		req.Log = io.Discard
	}
	img, dir := req.Image, req.Context
	if req.BuildDockerfile != nil {
		log := &tail{w: req.Log}
		if err := buildStage(ctx, eng, img, dir, req, log); err != nil {
			return "", &BuildError{Image: img.Label(), Stage: StageBuildStage, Tail: log.Lines(), Err: err}
		}
	}
	log := &tail{w: req.Log}
	if err := writeDockerfile(dir, req.Dockerfile); err != nil {
		return "", &BuildError{Image: img.Label(), Stage: StageBuild, Err: err}
	}
	id, err := runBuild(ctx, eng, dir, append(slices.Clone(req.Tags), img.Label()), req, log)
	if err != nil {
		return "", &BuildError{Image: img.Label(), Stage: StageBuild, Tail: log.Lines(), Err: err}
	}
	return id, nil
}

// buildStage builds the build-stage image in dir and copies its /build
// folder into dir.
func buildStage(ctx context.Context, eng Engine, img *Image, dir string, opts BuildRequest, log *tail) (err error) {
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
	// The build-stage image is removed below: its record would be a
	// wasted step.
	stage := opts
	stage.Labels = nil
	if _, err := runBuild(ctx, eng, dir, []string{label}, stage, log); err != nil {
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

// runBuild sends dir to the daemon and builds it, tagged with tags in
// order.
func runBuild(ctx context.Context, eng Engine, dir string, tags []string, opts BuildRequest, log *tail) (id string, err error) {
	stream := tarContext(dir)
	defer stream.Close()
	bo := client.ImageBuildOptions{
		Tags:        tags,
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

// containerRemover is what removeContainer needs of the Engine API.
type containerRemover interface {
	ContainerRemove(ctx context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerWait(ctx context.Context, containerID string, options client.ContainerWaitOptions) client.ContainerWaitResult
}

// removeContainer removes a container and waits until it is gone, even
// when ctx is cancelled. A container already gone is not an error.
func removeContainer(ctx context.Context, eng containerRemover, id string) error {
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

// tail passes what is written on to w and keeps the last tailLines lines,
// each cut to MaxLine bytes. A failing w does not fail the build: the log
// is a copy.
type tail struct {
	w     io.Writer
	lines []string
	part  LineBuffer
}

func (t *tail) Write(p []byte) (int, error) {
	_, _ = t.w.Write(p)
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			break
		}
		t.part.Add(p[:i])
		t.add(strings.TrimRight(t.part.String(), "\r"))
		t.part.Reset()
		p = p[i+1:]
	}
	t.part.Add(p)
	return n, nil
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
	if !t.part.Empty() {
		out = append(out, t.part.String())
	}
	if len(out) > tailLines {
		out = out[len(out)-tailLines:]
	}
	return out
}
