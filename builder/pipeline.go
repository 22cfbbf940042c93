package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/dockerfile"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/moby/moby/client"
)

// This file is the one path an image takes: render -> record -> build ->
// verify. build runs all four; render and plan run the first (plan also
// digests the inputs), so a rule such as force_numeric_user holds in one
// place for every command.

// Rendered is an image's rendered templates.
type Rendered struct {
	Image           *image.Image
	Dockerfile      []byte // Dockerfile.template
	BuildDockerfile []byte // Dockerfile.build.template; nil when the image has none
}

// renderImage renders img's templates as a build would and enforces
// force_numeric_user on the main Dockerfile. Errors are *image.BuildError
// of StageRender.
func (b *Builder) renderImage(ctx context.Context, img *image.Image) (Rendered, error) {
	r := Rendered{Image: img}
	fail := func(err error) (Rendered, error) {
		return r, &image.BuildError{Image: img.Label(), Stage: image.StageRender, Err: err}
	}
	path := filepath.Join(img.Dir, image.TemplateFile)
	df, err := b.render.RenderFile(ctx, path)
	if err != nil {
		return fail(err)
	}
	if b.cfg.ForceNumericUser {
		if err := dockerfile.CheckNumericUser(df); err != nil {
			return fail(fmt.Errorf("%s, rendered: %w", path, err))
		}
	}
	r.Dockerfile = df
	if img.BuildStage {
		if r.BuildDockerfile, err = b.render.RenderFile(ctx, filepath.Join(img.Dir, image.BuildTemplateFile)); err != nil {
			return fail(err)
		}
	}
	return r, ctx.Err()
}

// Render renders every image whose full label matches glob (see Glob), in
// tree order; an image that fails has Err set, the others go on.
func (b *Builder) Render(ctx context.Context, glob string) ([]RenderResult, error) {
	match, err := Glob(glob)
	if err != nil {
		return nil, err
	}
	var out []RenderResult
	for _, img := range b.tree.Images {
		if !match(img.Label()) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		r, err := b.renderImage(ctx, img)
		var be *image.BuildError
		if errors.As(err, &be) {
			err = be.Err // the label is the result's
		}
		out = append(out, RenderResult{Rendered: r, Err: err})
	}
	return out, nil
}

// RenderResult is one image's render.
type RenderResult struct {
	Rendered
	Err error
}

// record is the build record of building r now on the local engine: every
// parent its Dockerfiles name must be in the daemon, as the build needs
// them there, and their IDs go into the record.
func (b *Builder) record(ctx context.Context, r Rendered, revision string) (image.Record, error) {
	rec, err := image.NewRecord(ctx, r.Image, r.Dockerfile, r.BuildDockerfile, revision, func(ctx context.Context, label string) (string, error) {
		return localID(ctx, b.engine, label)
	})
	if err != nil {
		return rec, &image.BuildError{Image: r.Image.Label(), Stage: image.StageBuild, Err: err}
	}
	return rec, nil
}

// buildImage builds r with backend in a private copy of the image's
// folder, which is removed whatever happens.
func (b *Builder) buildImage(ctx context.Context, backend Backend, r Rendered, rec image.Record, cache bool, log io.Writer) (image.Built, error) {
	img := r.Image
	dir, err := image.NewContext(ctx, img.Dir, img.Root)
	if err != nil {
		return image.Built{}, &image.BuildError{Image: img.Label(), Stage: image.StageBuild, Err: err}
	}
	defer os.RemoveAll(dir)
	return backend.Build(ctx, image.BuildRequest{
		Image:           img,
		Context:         dir,
		Dockerfile:      r.Dockerfile,
		BuildDockerfile: r.BuildDockerfile,
		NoCache:         !cache,
		HTTPProxy:       b.cfg.HTTPProxy,
		Limits:          b.cfg.ContainerLimits,
		Labels:          rec.Labels(),
		Tags:            []string{img.UnverifiedLabel()},
		Log:             log,
	})
}

// verify runs img's test against the image in the local engine, within
// verify_timeout, and removes the containers it started. skipped is true
// when it has none. Unless ctx was cancelled meanwhile, the outcome is
// then marked in the daemon (see markVerified).
func (b *Builder) verify(ctx context.Context, img *image.Image, log io.Writer) (skipped bool, err error) {
	return b.verifyAs(ctx, img, log, "", true)
}

// verifyAs is verify of platform's image of img (the test gets
// DOCKER_DEFAULT_PLATFORM), for an image built for several: the outcome is
// marked when the test fails or when last, once every platform passed.
func (b *Builder) verifyAs(ctx context.Context, img *image.Image, log io.Writer, platform string, last bool) (skipped bool, err error) {
	o := image.VerifyOptions{
		Command:  b.cfg.VerifyCommand,
		Args:     b.cfg.VerifyArgs,
		Proxy:    b.cfg.HTTPProxy,
		Timeout:  b.cfg.VerifyTimeout,
		Log:      log,
		Platform: platform,
	}
	if b.engine != nil {
		o.Containers = b.engine
	}
	if platform != "" {
		fmt.Fprintf(log, "verifying %s for %s\n", img.Label(), platform)
	}
	skipped, err = image.Verify(ctx, img, o)
	if skipped {
		fmt.Fprintln(log, "no test to run: verification skipped")
	}
	if ctx.Err() == nil && b.engine != nil && (err != nil || last) {
		b.markVerified(ctx, img, err == nil, log)
	}
	return skipped, err
}

// markVerified records in the daemon how img's test ended, so that only an
// image that passed counts as built. Passed: the image loses its
// unverified mark, and an image kept from an earlier failure goes. Failed:
// the image is kept as its FailedLabel only, for debugging; its label is
// free and the next run builds it again. An interrupted test is not
// marked: the unverified mark stays and the next plan rebuilds the image.
// Failures go to log; the image's result stands.
func (b *Builder) markVerified(ctx context.Context, img *image.Image, passed bool, log io.Writer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	untag := func(ref string, prune bool) {
		_, err := b.engine.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: prune})
		if err != nil && !cerrdefs.IsNotFound(err) {
			fmt.Fprintf(log, "WARNING: removing %s: %v\n", ref, err)
		}
	}
	// The image of an earlier failure, unless a container keeps it.
	untag(img.FailedLabel(), true)
	if passed {
		untag(img.UnverifiedLabel(), false)
		return
	}
	if _, err := b.engine.ImageTag(ctx, client.ImageTagOptions{Source: img.Label(), Target: img.FailedLabel()}); err != nil {
		fmt.Fprintf(log, "WARNING: keeping the failed image as %s: %v\n", img.FailedLabel(), err)
	} else {
		fmt.Fprintf(log, "the image failed its test: kept as %s, and built again next time\n", img.FailedLabel())
	}
	untag(img.Label(), false)
	untag(img.UnverifiedLabel(), false)
}
