package builder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/distribution/reference"
	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/registry"
	"github.com/moby/moby/client"
)

// ErrNoBuilder is matched (errors.Is) by the error of a Build none of
// whose builders (builders:) can be reached.
var ErrNoBuilder = errors.New("no builder can be reached")

// fleet is where a Build builds: the BuildKit daemons of builders:, each a
// pool of its jobs slots, or the local engine alone, one pool of WithJobs.
type fleet struct {
	pools    []*pool
	backends []Backend // by pool
	// platforms lists, by pool, what it can build. The local engine's is
	// its own platform alone: its image store holds one per tag.
	platforms [][]string
	remote    bool // the pools are builders elsewhere, not the local engine
	// own is the local engine's platform, where images are verified;
	// asked only when an image needs it.
	own string
}

// connect makes the fleet of a Build: every builder of the configuration
// that answers (one that does not is a Warning, the run goes on without
// it; none: ErrNoBuilder), or the local engine when there are none, or
// when working offline (no registry to hand images over through).
func (b *Builder) connect(ctx context.Context, chain []*image.Image) (*fleet, func(), error) {
	explicit := slices.ContainsFunc(chain, func(img *image.Image) bool { return len(b.platformsOf(img)) > 0 })
	if len(b.cfg.Builders) == 0 || b.reg == nil {
		if len(b.cfg.Builders) > 0 {
			b.warnf("offline: building on the local Docker engine, not on the %d builders of the configuration", len(b.cfg.Builders))
		}
		backend, err := b.defaultBackend()
		if err != nil {
			return nil, nil, err
		}
		f := &fleet{
			pools:    []*pool{{busy: make([]bool, b.jobs), free: b.jobs}},
			backends: []Backend{backend},
		}
		if explicit {
			f.own = b.enginePlatform(ctx)
		}
		f.platforms = [][]string{{f.own}}
		return f, func() {}, nil
	}
	if err := image.CheckSecrets(b.cfg.Secrets); err != nil {
		return nil, nil, err
	}
	remotes := make([]*image.Remote, len(b.cfg.Builders))
	errs := make([]error, len(b.cfg.Builders))
	var wg sync.WaitGroup
	for i, rc := range b.cfg.Builders {
		wg.Go(func() {
			remotes[i], errs[i] = b.dial(ctx, rc, image.RemoteOptions{
				Credentials: b.reg.CredentialFor,
				Secrets:     b.cfg.Secrets,
			})
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		closeAll(remotes)
		return nil, nil, err
	}
	f := &fleet{remote: true}
	if explicit {
		f.own = b.enginePlatform(ctx)
	}
	var down []string
	for i, r := range remotes {
		if errs[i] != nil {
			b.warnf("%v: building without it", b.reg.Redact(errs[i]))
			down = append(down, b.cfg.Builders[i].Name)
			continue
		}
		f.pools = append(f.pools, &pool{name: r.Name(), busy: make([]bool, r.Jobs()), free: r.Jobs()})
		f.backends = append(f.backends, r)
		f.platforms = append(f.platforms, r.Platforms())
		b.logger.Info("builder ready", "builder", r.Name(), "jobs", r.Jobs(), "platforms", strings.Join(r.Platforms(), ","))
	}
	if len(f.pools) == 0 {
		return nil, nil, fmt.Errorf("%w: %s", ErrNoBuilder, strings.Join(down, ", "))
	}
	return f, func() { closeAll(remotes) }, nil
}

func (b *Builder) dial(ctx context.Context, rc config.Remote, o image.RemoteOptions) (*image.Remote, error) {
	return image.DialRemote(ctx, rc, o)
}

func closeAll(remotes []*image.Remote) {
	for _, r := range remotes {
		if r != nil {
			r.Close()
		}
	}
}

// enginePlatform is the platform of the local engine (linux/amd64), as
// it says; "" when it does not say.
func (b *Builder) enginePlatform(ctx context.Context) string {
	if b.engine == nil {
		return ""
	}
	info, err := b.engine.Info(ctx, client.InfoOptions{})
	if err != nil || info.Info.OSType == "" {
		return ""
	}
	p := platforms.Normalize(platforms.Platform{OS: info.Info.OSType, Architecture: info.Info.Architecture})
	return platforms.Format(p)
}

// platformsOf is what img is built for: its control file's Platforms,
// else the configuration's; none means the builder's own platform.
func (b *Builder) platformsOf(img *image.Image) []string {
	if img.Platforms != nil {
		return img.Platforms
	}
	return b.cfg.Platforms
}

// fits says whether pool p of f can build every platform img needs.
func (f *fleet) fits(img []string, p int) bool {
	if len(img) == 0 {
		return true
	}
	if !f.remote && f.platforms[p][0] == "" {
		return len(img) == 1 // an engine that does not say: its own, maybe
	}
	for _, want := range img {
		if !slices.Contains(f.platforms[p], want) {
			return false
		}
	}
	return true
}

// unfit says why no pool of f can build for want.
func (f *fleet) unfit(want []string) error {
	if !f.remote {
		return fmt.Errorf("%w: it is built for %s, and the local Docker engine builds for %s alone (its image store holds one platform per tag): configure a BuildKit builder (builders:) to build for several platforms",
			errNoPool, strings.Join(want, ", "), f.platforms[0][0])
	}
	var have, lost []string
	for _, p := range f.pools {
		if p.down {
			lost = append(lost, p.name)
		}
	}
	if len(lost) == len(f.pools) {
		return fmt.Errorf("%w: every builder was lost (%s)", errNoPool, strings.Join(lost, ", "))
	}
	for i, p := range f.pools {
		state := ""
		if p.down {
			state = ", lost"
		}
		have = append(have, fmt.Sprintf("%s: %s%s", p.name, strings.Join(f.platforms[i], " "), state))
	}
	return fmt.Errorf("%w: none of the builders can build all of %s (%s)", errNoPool, strings.Join(want, ", "), strings.Join(have, "; "))
}

// criticalOrder orders the chain longest remaining chain of images
// first, plan order between equals: on a fleet, the image that holds up
// the most builds after it starts first.
func criticalOrder(parents [][]int) []int {
	n := len(parents)
	children := make([][]int, n)
	for i, ps := range parents {
		for _, p := range ps {
			children[p] = append(children[p], i)
		}
	}
	depth := make([]int, n)       // images on the longest chain from i down
	for i := n - 1; i >= 0; i-- { // children come after parents in the chain
		depth[i] = 1
		for _, c := range children[i] {
			depth[i] = max(depth[i], depth[c]+1)
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return depth[b] - depth[a] })
	return order
}

// contextName is the name BuildKit's Dockerfile frontend gives the image
// a FROM or COPY --from names, by which a build context replaces it:
// the familiar form, without :latest.
func contextName(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return strings.TrimSuffix(reference.FamiliarString(named), ":latest")
}

// handover is what a run on a fleet knows of the images its builders
// pushed: by full label, the registry's answer for the digest pushed.
type handover struct {
	mu     sync.Mutex
	pushed map[string]registry.Image
}

func (h *handover) put(label string, img registry.Image) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pushed[label] = img
}

func (h *handover) get(label string) (registry.Image, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	img, ok := h.pushed[normalized(label)]
	return img, ok
}

// redact keeps the registry's credentials out of err's message.
func (b *Builder) redact(err error) error {
	if b.reg == nil {
		return err
	}
	return b.reg.Redact(err)
}

// buildRemote is buildAndVerify on a builder elsewhere: every image the
// Dockerfiles name is resolved in the registry, checked to offer every
// platform img is built for, pinned by digest, and recorded; the image is
// built and pushed by digest, without a tag; then each platform is pulled
// into the local engine by that digest, tagged, and verified, the local
// engine's own platform last, so it is the one left tagged.
func (r *run) buildRemote(ctx context.Context, i int, res *ImageResult, log io.Writer, start time.Time, l lane) error {
	b, img := r.b, r.chain[i]
	fail := func(stage image.Stage, err error) error {
		var be *image.BuildError
		if errors.As(err, &be) {
			return err
		}
		return &image.BuildError{Image: img.Label(), Stage: stage, Err: b.redact(err)}
	}
	fmt.Fprintf(log, "building %s from %s on %s\n", img.Label(), img.Dir, r.fleet.pools[l.pool].name)
	rendered, err := b.renderImage(ctx, img)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "rendered %s:\n%s\n", image.TemplateFile, rendered.Dockerfile)
	if rendered.BuildDockerfile != nil {
		fmt.Fprintf(log, "rendered %s:\n%s\n", image.BuildTemplateFile, rendered.BuildDockerfile)
	}
	explicit := b.platformsOf(img)
	targets := explicit
	if len(targets) == 0 {
		targets = r.fleet.platforms[l.pool][:1] // the builder's own
	}
	// Every image the build names, where the builder will take it from.
	_, parents, err := image.Parents(rendered.Dockerfile, rendered.BuildDockerfile)
	if err != nil {
		return fail(image.StageBuild, err)
	}
	pins := map[string]string{}
	found := map[string]registry.Image{}
	for _, p := range parents {
		ri, err := r.resolve(ctx, p)
		if err != nil {
			return fail(image.StageBuild, err)
		}
		found[p] = ri
		pins[contextName(p)] = registry.DigestRef(p, ri.Digest)
	}
	perPlatform := func(_ context.Context, label string) (map[string]string, error) {
		return found[label].Platforms, nil
	}
	// The same inputs give the same manifest, bit for bit, on any builder
	// and in any run: its time is the changelog entry's, its revision the
	// last commit of its folder. A child's build cache is keyed on the
	// manifest of its parent: a rebuild of the tree on a fresh builder
	// then takes every step from the registry cache.
	rec, err := image.NewPlatformRecord(ctx, img, rendered.Dockerfile, rendered.BuildDockerfile, image.FolderRevision(ctx, img.Dir), targets, perPlatform)
	if err != nil {
		return fail(image.StageBuild, err)
	}
	epoch, err := changelog.Date(filepath.Join(img.Dir, image.ChangelogFile))
	if err != nil {
		return fail(image.StageBuild, err)
	}
	rec.Created = epoch
	if len(explicit) == 0 {
		rec.Platforms = nil // built for the builder's own: one image, as on the engine
	}
	for _, p := range slices.Sorted(maps.Keys(pins)) {
		fmt.Fprintf(log, "%s is pinned to %s\n", p, pins[p])
	}

	dir, err := image.NewContext(ctx, img.Dir, img.Root)
	if err != nil {
		return fail(image.StageBuild, err)
	}
	defer os.RemoveAll(dir)
	req := image.BuildRequest{
		Image:           img,
		Context:         dir,
		Dockerfile:      rendered.Dockerfile,
		BuildDockerfile: rendered.BuildDockerfile,
		NoCache:         !r.o.Cache,
		HTTPProxy:       b.cfg.HTTPProxy,
		Limits:          b.cfg.ContainerLimits,
		Labels:          rec.Labels(),
		Log:             log,
		Push:            img.Repo,
		Pins:            pins,
		Platforms:       explicit,
		Annotations:     annotations(rec, pins),
		Insecure:        b.reg.Insecure(img.Label()),
		Epoch:           epoch,
	}
	if b.cfg.BuildCache == "registry" {
		req.Cache = img.Repo + ":buildcache"
	}
	built, err := r.fleet.backends[l.pool].Build(ctx, req)
	if err != nil {
		return err
	}
	res.Digest = built.Digest
	ref := registry.DigestRef(img.Label(), built.Digest)
	pushed, err := b.reg.Resolve(ctx, ref)
	if err != nil {
		return fail(image.StageBuild, fmt.Errorf("reading back what %s pushed: %w", r.fleet.pools[l.pool].name, err))
	}
	r.handover.put(normalized(img.Label()), pushed)
	res.Held = time.Since(start)
	r.emit(Event{Image: img, Phase: PhaseBuilt, Elapsed: res.Held, Slot: res.Slot, Builder: res.Builder})
	// The builder is done with it: its slot goes to the next image while
	// the test runs here.
	r.slots.free(i)
	select {
	case r.verifying <- struct{}{}:
		defer func() { <-r.verifying }()
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.verifyPlatforms(ctx, img, res, log, ref, pushed, explicit, targets)
}

// resolve is where a builder takes label from: what this run pushed for
// it, else the registry.
func (r *run) resolve(ctx context.Context, label string) (registry.Image, error) {
	if ri, ok := r.handover.get(label); ok {
		return ri, nil
	}
	ri, err := r.b.reg.Resolve(ctx, label)
	if errors.Is(err, registry.ErrNotPublished) {
		return ri, fmt.Errorf("parent image %s is not in the registry, where a builder elsewhere takes it from: publish it, or build it in the same run", label)
	}
	return ri, err
}

// verifyPlatforms pulls each platform of ref into the local engine and
// runs the test against it. The engine's own platform goes last, so that
// one stays tagged; the others' images are removed once tested.
func (r *run) verifyPlatforms(ctx context.Context, img *image.Image, res *ImageResult, log io.Writer, ref string, pushed registry.Image, explicit, targets []string) error {
	b := r.b
	own := r.fleet.own
	order := slices.Clone(targets)
	slices.SortStableFunc(order, func(x, y string) int {
		switch {
		case x == own && y != own:
			return 1
		case y == own && x != own:
			return -1
		}
		return 0
	})
	var leftover []string
	defer func() {
		// Images of the other platforms, now untagged: nothing else holds them.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		for _, id := range leftover {
			b.engine.ImageRemove(cctx, id, client.ImageRemoveOptions{})
		}
	}()
	var firstErr error
	for n, p := range order {
		pr := PlatformResult{Platform: p, ID: pushed.Platforms[p]}
		if firstErr != nil {
			pr.Phase, pr.Reason = PhaseSkipped, "an earlier platform failed"
			res.Platforms = append(res.Platforms, pr)
			continue
		}
		vstart := time.Now()
		pull := ""
		if len(explicit) > 0 {
			pull = p
			r.emit(Event{Image: img, Phase: PhaseVerifying, Platform: p, Elapsed: time.Since(res.Start), Slot: res.Slot, Builder: res.Builder})
		}
		// The engine keeps repo@digest pointing at the platform pulled
		// first (here or by an earlier run), and will not point it
		// elsewhere: drop it (the image keeps its tags), so this platform
		// can be pulled.
		if _, err := b.engine.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			fmt.Fprintf(log, "WARNING: removing %s before pulling %s: %v\n", ref, p, err)
		}
		err := image.CanRun(pull, own)
		if err != nil {
			err = &image.BuildError{Image: img.Label(), Stage: image.StageVerify, Err: err}
		} else if err = b.reg.PullPlatform(ctx, b.engine, ref, pull, log, img.UnverifiedLabel(), img.Label()); err != nil {
			err = &image.BuildError{Image: img.Label(), Stage: StagePull, Err: b.redact(err)}
		} else {
			if info, ierr := b.engine.ImageInspect(ctx, img.Label()); ierr == nil {
				pr.Size = info.Size
				if pr.ID == "" {
					pr.ID = info.ID
				}
			}
			var skipped bool
			skipped, err = b.verifyAs(ctx, img, log, pull, n == len(order)-1)
			if skipped {
				pr.Reason, res.Reason = "no test", "no test"
			}
		}
		pr.Duration = time.Since(vstart)
		if err != nil {
			pr.Phase, pr.Err, pr.Reason = PhaseFailed, err, err.Error()
			firstErr = err
		} else {
			pr.Phase = PhaseVerified
		}
		if n < len(order)-1 && pr.ID != "" && err == nil {
			leftover = append(leftover, pr.ID)
		}
		res.Platforms = append(res.Platforms, pr)
	}
	last := res.Platforms[len(res.Platforms)-1]
	res.ID, res.Size = last.ID, last.Size
	if len(explicit) == 0 {
		res.Platforms = nil // one image, the builder's own: one row
	}
	return firstErr
}

// annotations are rec's OCI annotations for a manifest pushed by a
// builder: the base's digest is that of the manifest built on, as the
// image spec means it, not the image ID the record keeps.
func annotations(rec image.Record, pins map[string]string) map[string]string {
	a := rec.Annotations()
	if pinned, ok := pins[contextName(rec.BaseName)]; ok {
		if _, digest, ok := strings.Cut(pinned, "@"); ok {
			a["org.opencontainers.image.base.digest"] = digest
		}
	}
	return a
}
