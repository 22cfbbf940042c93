package builder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/image"
	"golang.org/x/sync/errgroup"
)

// Drift is how an image built earlier differs, by its build record, from
// what a build would make of it now. Build does not rebuild it: its tag
// exists.
type Drift struct {
	Image *image.Image
	Code  Code // CodeStale or CodeChanged
	// For CodeStale: the parent's short name (its label when it is not a
	// scanned image), and its image ID when Image was built and now. Built
	// and Now are empty when it is stale only because Parent is.
	Parent     string
	Built, Now string
	// Platform, for an image built for several, is the platform for
	// which Parent changed.
	Platform string
	Reason   string // plain words, as in Assessment.Reason
}

// drift reads img's record and compares it with the image a build would
// make now: nil when it has no record or nothing changed. inputs also
// renders img and recomputes its inputs digest.
func (b *Builder) drift(ctx context.Context, loc *locator, img *image.Image, inputs bool) (*Drift, error) {
	rec, ok, err := loc.record(ctx, img)
	if err != nil || !ok {
		return nil, err
	}
	// The base first, as the OCI labels name it, then every other parent
	// (COPY --from, other stages) in label order.
	parents := []string{}
	if rec.BaseName != "" {
		parents = append(parents, rec.BaseName)
	}
	for _, p := range slices.Sorted(maps.Keys(rec.Parents)) {
		if p != rec.BaseName {
			parents = append(parents, p)
		}
	}
	if rec.Platforms != nil {
		// Built for a list of platforms: each parent, for each platform,
		// as the registry's index has it now.
		for _, pl := range slices.Sorted(maps.Keys(rec.Platforms)) {
			ids := rec.Platforms[pl]
			for _, p := range slices.Sorted(maps.Keys(ids)) {
				label, name := b.tree.parentLabel(p)
				now, ok, err := loc.currentFor(ctx, label, pl)
				if err != nil {
					return nil, fmt.Errorf("reading parent %s: %w", label, err)
				}
				if ok && now != ids[p] {
					return &Drift{
						Image: img, Code: CodeStale, Parent: name, Built: ids[p], Now: now, Platform: pl,
						Reason: fmt.Sprintf("stale for %s: parent %s is now %s, built on %s", pl, name, now, ids[p]),
					}, nil
				}
			}
		}
	} else {
		for _, p := range parents {
			built := rec.Parents[p]
			if p == rec.BaseName {
				built = rec.BaseDigest
			}
			label, name := b.tree.parentLabel(p)
			now, ok, err := loc.current(ctx, label)
			if err != nil {
				return nil, fmt.Errorf("reading parent %s: %w", label, err)
			}
			// A parent nowhere yet is in the build chain: Plan says so.
			if ok && now != built {
				return &Drift{
					Image: img, Code: CodeStale, Parent: name, Built: built, Now: now,
					Reason: fmt.Sprintf("stale: parent %s is now %s, built on %s", name, now, built),
				}, nil
			}
		}
	}
	if !inputs {
		return nil, nil
	}
	r, err := b.renderImage(ctx, img)
	if err != nil {
		return nil, err
	}
	df, bdf := r.Dockerfile, r.BuildDockerfile
	_, used, err := image.Parents(df, bdf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", img.Dir, err)
	}
	in := image.Inputs{Dockerfile: df, BuildDockerfile: bdf, Parents: map[string]string{}}
	if rec.Platforms != nil {
		platforms := slices.Sorted(maps.Keys(rec.Platforms))
		if want := b.platformsOf(img); !slices.Equal(slices.Sorted(slices.Values(want)), platforms) {
			return &Drift{
				Image: img, Code: CodeChanged,
				Reason: fmt.Sprintf("changed since %s was built (for %s, now for %s): run update or add a changelog entry",
					img.Tag, strings.Join(platforms, ", "), strings.Join(want, ", ")),
			}, nil
		}
		in.Platforms = map[string]map[string]string{}
		for _, pl := range platforms {
			in.Platforms[pl] = map[string]string{}
			for _, p := range used {
				id, ok, err := loc.currentFor(ctx, p, pl)
				if err != nil {
					return nil, fmt.Errorf("reading parent %s: %w", p, err)
				}
				if !ok {
					return nil, nil // to be built first: nothing to compare with yet
				}
				in.Platforms[pl][p] = id
			}
		}
		in.Parents = nil // as NewPlatformRecord: the platforms hold them all
	} else {
		for _, p := range used {
			id, ok, err := loc.current(ctx, p)
			if err != nil {
				return nil, fmt.Errorf("reading parent %s: %w", p, err)
			}
			if !ok {
				return nil, nil // to be built first: nothing to compare with yet
			}
			in.Parents[p] = id
		}
	}
	digest, err := image.InputsDigest(ctx, img.Dir, img.Root, in)
	if err != nil || digest == rec.Inputs {
		return nil, err
	}
	return &Drift{
		Image: img, Code: CodeChanged,
		Reason: fmt.Sprintf("changed since %s was built: run update or add a changelog entry", img.Tag),
	}, nil
}

// inheritStale marks stale, parents first, every built or published image
// with a stale parent: it holds, through it, the files of the parent image
// that changed since. out are the assessments, in Images order.
func (t *Tree) inheritStale(out []Assessment, drifts []*Drift) {
	for i, img := range t.Images {
		if d := drifts[i]; d != nil && d.Code == CodeStale || out[i].State != Built && out[i].State != Published {
			continue
		}
		for _, p := range t.nodes[i].parents {
			if d := drifts[p]; d != nil && d.Code == CodeStale {
				parent := t.Images[p].Name
				drifts[i] = &Drift{Image: img, Code: CodeStale, Parent: parent, Reason: "stale: parent " + parent + " is stale"}
				break
			}
		}
	}
}

// Stale returns the images built on a parent image that has changed since,
// by their build records, parents first: the images update --stale gives a
// new version. An image stale only because its parent is stale is not
// listed; updating the parent updates it. Images without a record, and
// parents not built yet, are passed over. Any image or parent that cannot
// be read is an error: update must not miss one. Parents are read where a
// build would take them from: the registry first, when there is one.
func (b *Builder) Stale(ctx context.Context) ([]Drift, error) {
	t := b.tree
	if b.engine == nil && b.reg == nil {
		return nil, fmt.Errorf("finding stale images: %w, and no registry is configured", ErrNoEngine)
	}
	loc := newLocator(t, b.engine, b.reg, true)
	drifts := make([]*Drift, len(t.Images))
	errs := make([]error, len(t.Images))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(t.workers, 1))
	for i, img := range t.Images {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			drifts[i], errs[i] = b.drift(gctx, loc, img, false)
			if errs[i] != nil {
				errs[i] = fmt.Errorf("%s: cannot tell whether it is stale: %w", img.Label(), errs[i])
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("reading build records: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("reading build records: %w", err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	var out []Drift
	for _, d := range drifts {
		if d != nil {
			out = append(out, *d)
		}
	}
	return out, nil
}

// StaleReason is the changelog reason of an image update --stale gives a
// new version.
func StaleReason(d Drift) string {
	return fmt.Sprintf("Rebuild on updated parent image %s (%s -> %s)", d.Parent, d.Built, d.Now)
}

// UpdateStale computes the update that rebuilds the stale images (from
// Stale) and every image that depends on them: each stale image gets a new
// version with StaleReason, each of the others the usual refresh entry
// naming the stale parents it is updated for. Versions, safety checks and
// errors are Update's (req.Name, Select and Version are not used); write
// the result with UpdateResult.Write. No stale image: no change.
func (b *Builder) UpdateStale(req UpdateRequest, stale []Drift) (*UpdateResult, error) {
	t := b.tree
	if req.Date.IsZero() {
		req.Date = time.Now()
	}
	req.Select, req.Version = "", ""
	type merged struct {
		change  Change
		root    bool
		parents []string // stale images it is updated for
		reasons []string // theirs, once each
	}
	byName := map[string]*merged{}
	var problems []error
	for _, d := range stale {
		req.Name, req.Reason = d.Image.Name, StaleReason(d)
		res, err := t.update(req)
		var uerr *UpdateError
		switch {
		case errors.As(err, &uerr):
			problems = append(problems, uerr.Problems...)
			continue
		case err != nil:
			return nil, err
		}
		for _, c := range res.Changes {
			m := byName[c.Image.Name]
			if m == nil {
				m = &merged{change: c}
				byName[c.Image.Name] = m
			}
			if c.Image.Name == d.Image.Name {
				m.change, m.root = c, true
				continue
			}
			m.parents = append(m.parents, d.Image.Name)
			if !slices.Contains(m.reasons, req.Reason) {
				m.reasons = append(m.reasons, req.Reason)
			}
		}
	}
	if len(problems) > 0 {
		return nil, &UpdateError{Target: "stale images", Problems: dedupe(problems)}
	}
	res := &UpdateResult{dir: t.Dir}
	for _, img := range t.Images { // parents first
		m := byName[img.Name]
		if m == nil {
			continue
		}
		if !m.root && len(m.parents) > 1 {
			// Each Update named one stale parent; this image has several.
			entry := changelog.NewEntry{
				Name: img.Name, Version: m.change.New, Distribution: req.Distribution,
				Reason: fmt.Sprintf("Refresh for update in parent images %s:\n%s",
					strings.Join(m.parents, ", "), strings.Join(m.reasons, "\n")),
				Author: req.Author, Email: req.Email, Date: req.Date,
			}
			m.change.Entry = entry.Format()
		}
		res.Changes = append(res.Changes, m.change)
	}
	return res, nil
}

func dedupe(errs []error) []error {
	var out []error
	seen := map[string]bool{}
	for _, err := range errs {
		if !seen[err.Error()] {
			seen[err.Error()] = true
			out = append(out, err)
		}
	}
	return out
}

// Warnings returns what build says before it starts about the images
// the plan found stale or changed: build does not rebuild
// them, as their tags exist, so the user has to give them a new version.
// Each names the changelog to update, in Images order.
func (p *Plan) Warnings() []Warning {
	var out []Warning
	for _, img := range p.tree.Images {
		a := p.states[img.Name]
		var msg string
		switch a.Code {
		case CodeStale:
			msg = fmt.Sprintf("%s is %s; it will not be rebuilt: run update --stale to give it a new version", img.Label(), a.Reason)
		case CodeChanged:
			msg = fmt.Sprintf("%s %s; it will not be rebuilt", img.Label(), a.Reason)
		default:
			continue
		}
		out = append(out, Warning{Path: filepath.Join(img.Dir, image.ChangelogFile), Message: msg})
	}
	return out
}
