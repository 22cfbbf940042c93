package builder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/ref"
	"github.com/moby/moby/client"
)

// ErrInUse is matched by the error of a reference Prune left in place
// because a container uses its image.
var ErrInUse = errors.New("image in use")

// PruneOptions says which images Prune cleans up.
type PruneOptions struct {
	// Select is a shell glob (see Glob) on the full labels of the images
	// to prune. Default "": every image.
	Select string
	// Nightly, when set, makes the current tag of each image
	// {version}-{Nightly} rather than its Tag; Select matches that label.
	Nightly string
	// DryRun lists what would be removed without removing it.
	DryRun bool
	// Progress is called with each image's report as soon as it is done.
	// Default: nil, not called.
	Progress func(PruneReport)
}

// PruneReport is what Prune did for one image.
type PruneReport struct {
	Image   *image.Image
	Label   string   // the current full label, kept
	Removed []string // references removed (with DryRun: to remove)
	Errors  []error  // one per reference left; errors.Is(err, ErrInUse) when a container uses it
}

// Failed reports whether some old version could not be removed.
func (r PruneReport) Failed() bool { return len(r.Errors) > 0 }

// Prune removes from the local daemon the old versions of each selected
// image, children before parents (a child image keeps its parent's layers
// alive): every image of the same repository whose tags do not include the
// current full label. It removes references (repository:tag), not image
// IDs, so an old image also tagged in another repository keeps that tag.
// A failure is recorded in the image's report and the run goes on; the
// error is only for a bad selection or nightly ID, or an interrupt.
func (b *Builder) Prune(ctx context.Context, opts PruneOptions) ([]PruneReport, error) {
	if b.engine == nil {
		return nil, fmt.Errorf("pruning: %w", ErrNoEngine)
	}
	t := b.tree
	pattern := opts.Select
	if pattern == "" {
		pattern = "*"
	}
	match, err := Glob(pattern)
	if err != nil {
		return nil, err
	}
	// Every label is worked out before anything is removed, so a bad
	// nightly ID removes nothing.
	type target struct {
		img   *image.Image
		label string
	}
	var targets []target
	for i := len(t.Images) - 1; i >= 0; i-- { // children before parents
		img := t.Images[i]
		label := img.Label()
		if opts.Nightly != "" {
			tag := img.Version + "-" + opts.Nightly
			if !ref.ValidTag(tag) {
				return nil, fmt.Errorf("pruning: nightly ID %q gives %s the tag %q, which Docker does not accept", opts.Nightly, img.Name, tag)
			}
			label = img.Repo + ":" + tag
		}
		if match(label) {
			targets = append(targets, target{img, label})
		}
	}
	var reports []PruneReport
	for _, tg := range targets {
		if err := ctx.Err(); err != nil {
			return reports, err
		}
		r := pruneImage(ctx, b.engine, tg.img, tg.label, opts.DryRun)
		reports = append(reports, r)
		if opts.Progress != nil {
			opts.Progress(r)
		}
	}
	return reports, nil
}

func pruneImage(ctx context.Context, c Engine, img *image.Image, label string, dryRun bool) PruneReport {
	r := PruneReport{Image: img, Label: label}
	// The daemon lists references in their familiar form (no docker.io/),
	// so compare normalized names.
	repo, err := reference.ParseNormalizedNamed(img.Repo)
	if err != nil {
		r.Errors = append(r.Errors, fmt.Errorf("pruning %s: %w", img.Repo, err))
		return r
	}
	current := normalized(label)
	list, err := c.ImageList(ctx, client.ImageListOptions{
		Filters: make(client.Filters).Add("reference", reference.FamiliarName(repo)),
	})
	if err != nil {
		r.Errors = append(r.Errors, fmt.Errorf("listing images of %s: %w", reference.FamiliarName(repo), err))
		return r
	}
	for _, summary := range list.Items {
		var tags, digests []string // of this repository only
		keep := false
		for _, ref := range summary.RepoTags {
			keep = keep || normalized(ref) == current
			if sameRepo(ref, repo) {
				tags = append(tags, ref)
			}
		}
		for _, ref := range summary.RepoDigests {
			if sameRepo(ref, repo) {
				digests = append(digests, ref)
			}
		}
		if keep {
			continue
		}
		// Removing the last tag of a repository drops its digests too; an
		// image pulled by digest alone has only those to remove.
		refs := tags
		if len(refs) == 0 {
			refs = digests
		}
		var dry *dryImage
		if dryRun {
			dry = &dryImage{refs: append(slices.Clone(summary.RepoTags), summary.RepoDigests...)}
		}
		for _, ref := range refs {
			var err error
			if dryRun {
				err = dry.remove(ctx, c, ref, summary.ID)
			} else {
				err = remove(ctx, c, ref, summary.ID)
			}
			if err != nil {
				r.Errors = append(r.Errors, err)
				continue
			}
			r.Removed = append(r.Removed, ref)
		}
	}
	return r
}

func remove(ctx context.Context, c Engine, ref, id string) error {
	_, err := c.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
	switch {
	case err == nil:
		return nil
	case !cerrdefs.IsConflict(err):
		return fmt.Errorf("removing %s: %w", ref, err)
	}
	// The daemon's message gives only a truncated container ID; name the
	// container.
	if inUse := usedBy(ctx, c, ref, id); inUse != nil {
		return inUse
	}
	return fmt.Errorf("removing %s: %w", ref, err)
}

// usedBy is the ErrInUse error naming a container that uses image id, or
// nil when none does (or the daemon cannot say).
func usedBy(ctx context.Context, c Engine, ref, id string) error {
	list, err := c.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("ancestor", id),
	})
	if err != nil {
		return nil
	}
	for _, ctr := range list.Items {
		if ctr.ImageID != id { // ancestor also matches images built on it
			continue
		}
		name := ctr.ID
		if len(ctr.Names) > 0 {
			name = strings.TrimPrefix(ctr.Names[0], "/")
		}
		return fmt.Errorf("removing %s: %w by container %s (%.12s); left in place", ref, ErrInUse, name, ctr.ID)
	}
	return nil
}

// dryImage is one image as a dry run removes its references one by one,
// so that it says what the real run would: the daemon refuses to remove
// a reference, without force, when a container uses the image and the
// reference is its only tag (references of one repository, at most one of
// them a tag: the rule of the daemon's ImageDelete).
type dryImage struct {
	refs []string // references left, tags and digests
}

func (d *dryImage) remove(ctx context.Context, c Engine, ref, id string) error {
	if singleReference(d.refs) {
		if err := usedBy(ctx, c, ref, id); err != nil {
			return err
		}
	}
	removed, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return fmt.Errorf("removing %s: %w", ref, err)
	}
	_, isDigest := removed.(reference.Canonical)
	left := d.refs[:0]
	for _, r := range d.refs {
		if normalized(r) != normalized(ref) {
			left = append(left, r)
		}
	}
	d.refs = left
	// Removing the last tag of a repository removes its digests too.
	if !isDigest && !slices.ContainsFunc(d.refs, func(r string) bool {
		named, err := reference.ParseNormalizedNamed(r)
		_, digest := named.(reference.Canonical)
		return err == nil && !digest && named.Name() == removed.Name()
	}) {
		d.refs = slices.DeleteFunc(d.refs, func(r string) bool { return sameRepo(r, removed) })
	}
	return nil
}

// singleReference says whether refs are of one repository with at most
// one tag among them, as the daemon's isSingleReference does.
func singleReference(refs []string) bool {
	if len(refs) <= 1 {
		return len(refs) == 1
	}
	var single reference.Named
	digestRepos := map[string]bool{}
	for _, r := range refs {
		named, err := reference.ParseNormalizedNamed(r)
		if err != nil {
			return false
		}
		if _, ok := named.(reference.Canonical); ok {
			digestRepos[named.Name()] = true
		} else if single == nil {
			single = named
		} else {
			return false
		}
	}
	if single == nil {
		single, _ = reference.ParseNormalizedNamed(refs[0])
	}
	return len(digestRepos) == 1 && digestRepos[single.Name()]
}

func sameRepo(ref string, repo reference.Named) bool {
	named, err := reference.ParseNormalizedNamed(ref)
	return err == nil && named.Name() == repo.Name()
}
