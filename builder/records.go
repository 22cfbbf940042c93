package builder

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/dockerfile"
	"github.com/docker-pkg/docker-pkg/image"
)

// Inspect reads one image from the local daemon or the registry: its ID
// (the digest of its configuration, the same in both places) and its
// labels, where its build record is. ok is false when it is absent.
type Inspect func(ctx context.Context, label string) (id string, labels map[string]string, ok bool, err error)

// LocalInspect reads images from the local daemon.
func LocalInspect(c ImageInspector) Inspect {
	return func(ctx context.Context, label string) (string, map[string]string, bool, error) {
		res, err := c.ImageInspect(ctx, label)
		switch {
		case cerrdefs.IsNotFound(err):
			return "", nil, false, nil
		case err != nil:
			return "", nil, false, fmt.Errorf("inspecting %s in the local daemon: %w", label, err)
		}
		var labels map[string]string
		if res.Config != nil {
			labels = res.Config.Labels
		}
		return res.ID, labels, true, nil
	}
}

// RegistryInspect reads images from the registry without pulling them; nil
// when r is nil (no registry configured). Images of other registries (base
// images from elsewhere) are absent to it: their pulls are build's
// business, a plan has no reason to wait on those registries.
func RegistryInspect(r *image.Registry) Inspect {
	if r == nil {
		return nil
	}
	return func(ctx context.Context, label string) (string, map[string]string, bool, error) {
		if !r.Holds(label) {
			return "", nil, false, nil
		}
		id, labels, err := r.Config(ctx, label)
		if errors.Is(err, image.ErrNotPublished) {
			return "", nil, false, nil
		}
		return id, labels, err == nil, err
	}
}

// RegistryStatus reports whether the registry has an image; nil when r is
// nil (no registry configured), as Sources.Registry wants it.
func RegistryStatus(r *image.Registry) Status {
	if r == nil {
		return nil
	}
	return func(ctx context.Context, label string) (bool, error) {
		if !r.Holds(label) {
			_, ok, err := r.Published(ctx, label)
			return ok, err
		}
		// Reading the image's config answers too, and leaves its build
		// record remembered for RegistryInspect: one manifest request per
		// image instead of two.
		_, _, err := r.Config(ctx, label)
		if errors.Is(err, image.ErrNotPublished) {
			return false, nil
		}
		return err == nil, err
	}
}

// Render renders an image's Dockerfile.template, and its
// Dockerfile.build.template when it has one (nil otherwise), as a build
// would.
type Render func(ctx context.Context, img *image.Image) (dockerfile, buildDockerfile []byte, err error)

// NewRender returns the Render of a build of t with cfg: image_tag knows
// every scanned image and cfg's base_images.
func (t *Tree) NewRender(cfg *config.Config, opts ...dockerfile.Option) (Render, error) {
	r, err := dockerfile.New(cfg, repoLabels(t), opts...)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context, img *image.Image) ([]byte, []byte, error) {
		df, err := r.RenderFile(ctx, filepath.Join(img.Dir, image.TemplateFile))
		if err != nil || !img.BuildStage {
			return df, nil, err
		}
		bdf, err := r.RenderFile(ctx, filepath.Join(img.Dir, image.BuildTemplateFile))
		return df, bdf, err
	}, nil
}

// Records says where build records are read from.
type Records struct {
	Local    Inspect // the daemon; nil: none
	Registry Inspect // the registry; nil: none
	// Pull: as Sources.Pull. A build pulls parents first, so the registry
	// says what a parent is now, and the daemon only after it.
	Pull bool
	// Render is needed to recompute an image's inputs digest; nil: a
	// change without a new version is not detected.
	Render Render
}

// reader reads records and image IDs for one Assess or Stale, asking each
// source about each label at most once: many images share a parent.
type reader struct {
	t    *Tree
	recs Records

	mu     sync.Mutex
	lookup map[lookupKey]*lookup
}

type lookupKey struct {
	registry bool
	label    string
}

type lookup struct {
	once   sync.Once
	id     string
	labels map[string]string
	ok     bool
	err    error
}

func newReader(t *Tree, recs Records) *reader {
	return &reader{t: t, recs: recs, lookup: map[lookupKey]*lookup{}}
}

// inspect asks one source about label, once per run.
func (rd *reader) inspect(ctx context.Context, registry bool, label string) (*lookup, error) {
	src := rd.recs.Local
	if registry {
		src = rd.recs.Registry
	}
	if src == nil {
		return &lookup{}, nil
	}
	rd.mu.Lock()
	l := rd.lookup[lookupKey{registry, label}]
	if l == nil {
		l = &lookup{}
		rd.lookup[lookupKey{registry, label}] = l
	}
	rd.mu.Unlock()
	l.once.Do(func() { l.id, l.labels, l.ok, l.err = src(ctx, label) })
	return l, l.err
}

// current returns the ID label has now: where a build would take it from.
// ok is false when no source has it.
func (rd *reader) current(ctx context.Context, label string) (id string, ok bool, err error) {
	order := []bool{false, true} // daemon, then registry
	if rd.recs.Pull {
		order = []bool{true, false}
	}
	var errs []error
	for _, registry := range order {
		l, err := rd.inspect(ctx, registry, label)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l.ok {
			return l.id, true, nil
		}
	}
	return "", false, errors.Join(errs...)
}

// record reads img's build record where its tag is: the same image in the
// daemon and the registry, so the cheaper first.
func (rd *reader) record(ctx context.Context, img *image.Image) (image.Record, bool, error) {
	var errs []error
	for _, registry := range []bool{false, true} {
		l, err := rd.inspect(ctx, registry, img.Label())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if l.ok {
			rec, ok := image.ParseRecord(img, l.labels)
			return rec, ok, nil
		}
	}
	return image.Record{}, false, errors.Join(errs...)
}

// parentLabel is the label the parent recorded as base (the label it had
// then) has now: the current label of the scanned image or base_images
// entry of the same repository, so that a parent rebuilt under a new
// version is compared with what it is now. A label the tree does not know
// stays as it is. name is how to call the parent in messages: its short
// name, or the label of an image not scanned.
func (t *Tree) parentLabel(recorded string) (label, name string) {
	repo := recorded
	if ref, err := reference.ParseNormalizedNamed(recorded); err == nil {
		repo = reference.FamiliarName(ref)
	}
	for _, img := range t.Images {
		if img.Repo == repo {
			return img.Label(), img.Name
		}
	}
	for _, nd := range t.nodes {
		for _, base := range nd.bases {
			if r, err := reference.ParseNormalizedNamed(base); err == nil && reference.FamiliarName(r) == repo {
				return base, base
			}
		}
	}
	return recorded, recorded
}
