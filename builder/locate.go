package builder

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/registry"
	"github.com/moby/moby/client"
)

// found is what one place says of one label: whether it has the image,
// its ID (the digest of its configuration, the same in the daemon and the
// registry) and its labels, where its build record is.
type found struct {
	ok     bool
	id     string
	labels map[string]string
	// tags are all the labels the image has in the local engine, in full
	// form: the answer to "does it still carry its unverified mark"
	// without asking again.
	tags []string
}

// tagged says whether the image also has label.
func (f found) tagged(label string) bool {
	return slices.Contains(f.tags, normalized(label))
}

func fullForms(tags []string) []string {
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = normalized(t)
	}
	return out
}

// place is where images can be: the local engine or the registry.
type place interface {
	find(ctx context.Context, label string) (found, error)
}

// locator is the one answer to "where is this image, and what does its
// record say": the local engine and the registry, each asked about each
// label at most once per run (many images share a parent). Either place
// may be missing (nil).
type locator struct {
	local, remote place
	// pull: pulling is allowed, so a build takes a published image from the
	// registry; the registry is asked first.
	pull bool

	mu      sync.Mutex
	lookups map[lookupKey]*lookup
	// unreachable is the first registry failure that says the registry
	// could not be reached at all (registry.Down): the one cause of every
	// image in CodeUnreachable.
	unreachable error
}

type lookupKey struct {
	remote bool
	label  string
}

type lookup struct {
	once sync.Once
	f    found
	err  error
}

func newLocator(t *Tree, engine Engine, reg Registry, pull bool) *locator {
	l := &locator{lookups: map[lookupKey]*lookup{}}
	if engine != nil {
		l.local = &enginePlace{engine: engine, tree: t}
	}
	if reg != nil {
		l.remote = registryPlace{reg}
		l.pull = pull
	}
	return l
}

// find asks one place about label, once per locator.
func (l *locator) find(ctx context.Context, remote bool, label string) (found, error) {
	p := l.local
	if remote {
		p = l.remote
	}
	if p == nil {
		return found{}, nil
	}
	l.mu.Lock()
	k := lookupKey{remote, label}
	lk := l.lookups[k]
	if lk == nil {
		lk = &lookup{}
		l.lookups[k] = lk
	}
	l.mu.Unlock()
	lk.once.Do(func() {
		lk.f, lk.err = p.find(ctx, label)
		if remote && registry.Unreachable(lk.err) {
			l.mu.Lock()
			if l.unreachable == nil {
				l.unreachable = registry.Down(lk.err)
			}
			l.mu.Unlock()
		}
	})
	return lk.f, lk.err
}

// enginePlace is the local engine. It answers from one ImageList of the
// tree's repositories when that is cheap, and otherwise, and for the images
// the list does not cover (parents from other repositories), inspects
// images one by one, as many at once as the callers ask.
type enginePlace struct {
	engine Engine
	tree   *Tree
	// listWhen decides from the number of images the daemon holds whether
	// listing is cheaper than inspecting; nil: cheapToList.
	listWhen func(daemonImages, treeImages int) bool

	once    sync.Once
	listed  map[string]found // normalized label -> what the list said
	listErr error            // also set when listing was not worth it
	// pats is patterns(), made once: covers asks for every label the
	// list lacks.
	patsOnce sync.Once
	pats     []string
}

// listFactor bounds when one ImageList beats an inspect per image. The
// daemon answers a list by walking every image it holds, tagged or not
// (Docker 20.10 here: 0.2 ms each, 0.55 s with 2,800 images), and an
// inspect by reading one (0.5 ms each, 8 at once: 0.11 s for 200). So a
// daemon holding few images besides the tree's is listed in one round trip,
// and a busy CI machine's is asked image by image.
//
// Asking the daemon how many images it holds (Info) is not free either
// (25 ms here: it gathers everything docker info prints), so a tree of
// fewer than listMin images is inspected without asking.
const (
	listFactor = 3
	listMin    = 64
)

func cheapToList(daemonImages, treeImages int) bool {
	return daemonImages <= listFactor*treeImages
}

func (e *enginePlace) find(ctx context.Context, label string) (found, error) {
	e.once.Do(func() {
		if e.worthListing(ctx) {
			e.listed, e.listErr = e.list(ctx)
		} else {
			e.listErr = errNotListed
		}
	})
	if e.listErr == nil {
		if f, ok := e.listed[normalized(label)]; ok {
			return f, nil
		}
		if e.covers(label) {
			return found{}, nil
		}
	}
	res, err := e.engine.ImageInspect(ctx, label)
	switch {
	case cerrdefs.IsNotFound(err):
		return found{}, nil
	case err != nil:
		return found{}, fmt.Errorf("inspecting %s in the local daemon: %w", label, err)
	}
	var labels map[string]string
	if res.Config != nil {
		labels = res.Config.Labels
	}
	return found{ok: true, id: res.ID, labels: labels, tags: fullForms(res.RepoTags)}, nil
}

var errNotListed = errors.New("not listed: inspecting is cheaper")

// worthListing decides, for a tree of listMin images or more by asking
// the daemon how many images it holds. A daemon that does not say is
// listed: one call either way.
func (e *enginePlace) worthListing(ctx context.Context) bool {
	decide := e.listWhen
	if decide == nil {
		if len(e.tree.Images) < listMin {
			return false
		}
		decide = cheapToList
	}
	info, err := e.engine.Info(ctx, client.InfoOptions{})
	if err != nil {
		return true
	}
	return decide(info.Info.Images, len(e.tree.Images))
}

// patterns are the reference filters that cover every repository of the
// tree: the folder of each (registry/namespace/*), or * for one-component
// names.
func (e *enginePlace) patterns() []string {
	e.patsOnce.Do(func() { e.pats = e.makePatterns() })
	return e.pats
}

func (e *enginePlace) makePatterns() []string {
	var out []string
	for _, img := range e.tree.Images {
		p := "*"
		if dir := path.Dir(img.Repo); dir != "." {
			p = dir + "/*"
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// covers says whether the list holds label when the daemon has it.
func (e *enginePlace) covers(label string) bool {
	named, err := reference.ParseNormalizedNamed(label)
	if err != nil {
		return false
	}
	name := reference.FamiliarName(named)
	for _, p := range e.patterns() {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// list asks the daemon once for every image of the tree's repositories.
func (e *enginePlace) list(ctx context.Context) (map[string]found, error) {
	out := map[string]found{}
	filters := make(client.Filters)
	for _, p := range e.patterns() {
		filters = filters.Add("reference", p)
	}
	res, err := e.engine.ImageList(ctx, client.ImageListOptions{Filters: filters})
	if err != nil {
		return nil, fmt.Errorf("listing images in the local daemon: %w", err)
	}
	for _, s := range res.Items {
		f := found{ok: true, id: s.ID, labels: s.Labels, tags: fullForms(s.RepoTags)}
		for _, tag := range f.tags {
			out[tag] = f
		}
	}
	return out, nil
}

// registryPlace is the registry. It reads images of its own registry
// without pulling them. Images of other registries (base images from
// elsewhere) are absent to it: pulling them is build's business, and a
// plan has no reason to wait on those registries.
type registryPlace struct{ reg Registry }

func (r registryPlace) find(ctx context.Context, label string) (found, error) {
	if !r.reg.Holds(label) {
		return found{}, nil
	}
	id, labels, err := r.reg.Config(ctx, label)
	switch {
	case errors.Is(err, registry.ErrNotPublished):
		return found{}, nil
	case err != nil:
		return found{}, err
	}
	return found{ok: true, id: id, labels: labels}, nil
}

// current returns the ID label has now: where a build would take it from.
// ok is false when no place has it.
func (l *locator) current(ctx context.Context, label string) (id string, ok bool, err error) {
	order := []bool{false, true} // daemon, then registry
	if l.pull {
		order = []bool{true, false}
	}
	var errs []error
	for _, remote := range order {
		f, err := l.find(ctx, remote, label)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if f.ok {
			return f.id, true, nil
		}
	}
	return "", false, errors.Join(errs...)
}

// currentFor returns the ID label has now for platform, where a builder
// would take it from: the registry's index. ok is false when the
// registry does not have it, or not for platform.
func (l *locator) currentFor(ctx context.Context, label, platform string) (id string, ok bool, err error) {
	rp, isReg := l.remote.(registryPlace)
	if !isReg {
		return "", false, nil
	}
	ri, err := rp.reg.Resolve(ctx, label)
	switch {
	case errors.Is(err, registry.ErrNotPublished):
		return "", false, nil
	case err != nil:
		return "", false, err
	}
	id, ok = ri.Platforms[platform]
	return id, ok, nil
}

// record reads img's build record where its tag is: the same image in the
// daemon and the registry, so the place its state was read from first
// (pulling: the registry, already asked), then the other.
func (l *locator) record(ctx context.Context, img *image.Image) (image.Record, bool, error) {
	order := []bool{false, true}
	if l.pull {
		order = []bool{true, false}
	}
	var errs []error
	for _, remote := range order {
		f, err := l.find(ctx, remote, img.Label())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if f.ok && f.labels != nil {
			rec, ok := image.ParseRecord(img, f.labels)
			return rec, ok, nil
		}
	}
	return image.Record{}, false, errors.Join(errs...)
}

// state is img's initial state and why, as SPEC "States and the build"
// says: with pulling allowed, published first, then built locally;
// without, absent locally means to_build whatever the registry has. An
// image counts as built locally only once its test passed: one that still
// carries its unverified mark, or that was kept as failed, is to_build,
// and the reason says so.
func (l *locator) state(ctx context.Context, img *image.Image) Assessment {
	label := img.Label()
	failed := func(err error) Assessment {
		if registry.Unreachable(err) {
			// One cause for the whole tree, said once (Plan.Unreachable).
			return Assessment{Error, CodeUnreachable, "registry unreachable"}
		}
		return Assessment{Error, CodeCheckFailed, err.Error()}
	}
	notBuilt := Assessment{ToBuild, CodeNotBuilt, "not built"}
	switch {
	case l.local == nil:
		notBuilt = Assessment{ToBuild, CodeNoDaemon, "not checked: no Docker daemon"}
	case l.remote != nil && l.pull:
		notBuilt.Reason = "not built, not in registry"
	}
	isPublished := Assessment{Published, CodePublished, "published"}
	isBuilt := Assessment{Built, CodeBuiltLocally, "built locally"}
	if l.remote != nil {
		isBuilt.Reason = "built locally, not published"
	}
	remote := func() (bool, error) { f, err := l.find(ctx, true, label); return f.ok, err }
	// local says whether the daemon has the image, verified; when it has
	// it unverified, or only a failed one, why is the state to give.
	local := func() (ok bool, why *Assessment, err error) {
		f, err := l.find(ctx, false, label)
		if err != nil {
			return false, nil, err
		}
		if f.ok {
			if f.tagged(img.UnverifiedLabel()) {
				return false, &Assessment{ToBuild, CodeUnverified, "built, but its test never finished (interrupted)"}, nil
			}
			return true, nil, nil
		}
		if m, err := l.find(ctx, false, img.FailedLabel()); err == nil && m.ok {
			return false, &Assessment{ToBuild, CodeTestFailed, "its last build failed its test (kept as " + img.FailedLabel() + ")"}, nil
		}
		return false, nil, nil
	}

	if l.pull {
		switch ok, err := remote(); {
		case err != nil:
			return failed(err)
		case ok:
			return isPublished
		}
		switch ok, why, err := local(); {
		case err != nil:
			return failed(err)
		case ok:
			return isBuilt
		case why != nil:
			return *why
		}
		return notBuilt
	}
	switch ok, why, err := local(); {
	case err != nil:
		return failed(err)
	case why != nil:
		return *why
	case !ok:
		return notBuilt
	}
	switch ok, err := remote(); {
	case err != nil:
		return failed(err)
	case ok:
		return isPublished
	}
	return isBuilt
}

// localID is the ID the daemon gives label now, asked afresh: what a build
// on the local engine starts from, once pulls and parent builds are done.
func localID(ctx context.Context, engine Engine, label string) (string, error) {
	res, err := engine.ImageInspect(ctx, label)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("parent image %s is not in the local daemon", label)
		}
		return "", err
	}
	return res.ID, nil
}

// normalized is ref in its full form (docker.io/library/...), or ref
// itself when it does not parse (`<none>:<none>`).
func normalized(ref string) string {
	// Already in full form when it names its registry: what our labels
	// always do. Parsing is a good part of a plan's time otherwise.
	// docker.io is the exception: it still wants library/ for one-part names.
	if i := strings.IndexByte(ref, '/'); i > 0 && ref[:i] != "docker.io" &&
		(strings.ContainsAny(ref[:i], ".:") || ref[:i] == "localhost") {
		return ref
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return named.String()
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
