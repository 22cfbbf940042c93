package builder

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/ref"
)

// DefaultReason is the reason of an update when none is given.
const DefaultReason = "Security update"

// UpdateRequest says which images Update gives a new changelog entry and
// what goes into it. Set exactly one of Name and Select.
type UpdateRequest struct {
	// Name is the short name of the image to update, matched exactly: "php"
	// does not select "sury-php", unlike the reference's glob. It may also
	// name a base_images entry as image_tag names it ("bookworm"): then the
	// images built on it are updated, every entry saying "Refresh for
	// update in parent image bookworm:" and Reason.
	Name string
	// Select is a shell glob (see Glob) on full labels: every image it
	// matches is updated, as if named one by one.
	Select string
	// Reason is the text of Name's entry, one or more lines. Default:
	// DefaultReason.
	Reason string
	// Version is Name's new version; "" bumps its tag like every other
	// image's. It must sort above the current version. Not with Select.
	Version string

	Distribution string // config distribution
	UpdateID     string // config update_id: the letter of the -s1 suffix
	Author       string
	Email        string
	Date         time.Time // zero: now
}

// NewUpdateRequest returns a request with the reason DefaultReason, cfg's
// distribution and update_id, the author and email changelog.Maintainer
// finds (DEBFULLNAME/DEBEMAIL, git config, then cfg's fallbacks) and date
// now. The caller sets Name or Select.
func NewUpdateRequest(ctx context.Context, cfg *config.Config, now time.Time) UpdateRequest {
	author, email := changelog.Maintainer(ctx, cfg.FallbackAuthor, cfg.FallbackEmail)
	return UpdateRequest{
		Reason:       DefaultReason,
		Distribution: cfg.Distribution,
		UpdateID:     cfg.UpdateID,
		Author:       author,
		Email:        email,
		Date:         now,
	}
}

// UpdateResult is an update computed but not yet written.
type UpdateResult struct {
	Changes []Change // parents first

	// Lock is the tree's changelog lock, held by the caller since before
	// the tree was scanned for this update, so that no other run writes in
	// between. Default (nil): Write takes the lock itself for the write,
	// and refuses a changelog another run changed since Update read it.
	Lock *changelog.Lock

	dir string // the tree's folder, where Write takes the lock
}

// Change is one image's new changelog entry.
type Change struct {
	Image *image.Image
	Path  string // the changelog file
	Old   string // its current version
	New   string
	Entry []byte // the new entry, exactly as it goes on top of the file
}

// UpdateError lists every problem that stops an update. Nothing was
// written.
type UpdateError struct {
	Target   string  // the name or the glob of the request
	Problems []error // each names the file to fix
}

func (e *UpdateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cannot update %s: %d problem", e.Target, len(e.Problems))
	if len(e.Problems) > 1 {
		b.WriteString("s")
	}
	b.WriteString(", nothing written:")
	for _, p := range e.Problems {
		b.WriteString("\n  " + strings.ReplaceAll(p.Error(), "\n", "\n  "))
	}
	return b.String()
}

// Unwrap lets errors.Is find changelog.ErrCannotBump, ErrMissing, ... in
// the problems.
func (e *UpdateError) Unwrap() []error { return e.Problems }

// Sentinels for the problems of an update.
var (
	ErrNotAbove    = errors.New("version does not sort above the current one")
	ErrInvalidTag  = errors.New("version is not a valid Docker tag")
	ErrNoSuchImage = errors.New("no such image")
)

// Update computes the new changelog entry of the requested images and of
// every image that depends on them, directly or not (control files and
// image_tag in templates alike), parents first. Every new version is
// computed before anything is returned: if any image cannot be updated
// (a tag that cannot be bumped, a Version not above the current one, a
// version constraint the update would break) or the tree has a dependency
// on an unknown image (which could hide an image that should be updated),
// the error is an *UpdateError listing all of them. Nothing is written:
// see UpdateResult.Write.
func (b *Builder) Update(req UpdateRequest) (*UpdateResult, error) {
	return b.tree.update(req)
}

func (t *Tree) update(req UpdateRequest) (*UpdateResult, error) {
	roots, target, base, err := t.updateRoots(req)
	if err != nil {
		return nil, err
	}
	if req.Reason == "" {
		req.Reason = DefaultReason
	}
	if req.Date.IsZero() {
		req.Date = time.Now()
	}

	// parentOf[name] lists the requested images name is updated for.
	isRoot := map[string]bool{}
	for _, r := range roots {
		isRoot[r.Name] = true
	}
	parentOf := map[string][]string{}
	for _, r := range roots {
		for _, d := range t.Descendants(r.Name) {
			if !isRoot[d.Name] {
				parentOf[d.Name] = append(parentOf[d.Name], r.Name)
			}
		}
	}

	problems := t.missingProblems()
	res := &UpdateResult{dir: t.Dir}
	newVersion := map[string]string{}
	for _, img := range t.Images { // parents first
		root, parents := isRoot[img.Name], parentOf[img.Name]
		if !root && parents == nil {
			continue
		}
		path := filepath.Join(img.Dir, image.ChangelogFile)
		next, err := nextVersion(img, req, root && base == "")
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %s: %w", path, img.Name, err))
			continue
		}
		newVersion[img.Name] = next
		reason := req.Reason
		switch {
		case base != "":
			// As the reference words it: every image is refreshed for the
			// base image, whichever of them it is built on.
			reason = fmt.Sprintf("Refresh for update in parent image %s:\n%s", req.Name, req.Reason)
		case !root:
			word := "image"
			if len(parents) > 1 {
				word = "images"
			}
			reason = fmt.Sprintf("Refresh for update in parent %s %s:\n%s", word, strings.Join(parents, ", "), req.Reason)
		}
		entry := changelog.NewEntry{
			Name: img.Name, Version: next, Distribution: req.Distribution, Reason: reason,
			Author: req.Author, Email: req.Email, Date: req.Date,
		}
		res.Changes = append(res.Changes, Change{Image: img, Path: path, Old: img.Version, New: next, Entry: entry.Format()})
	}
	problems = append(problems, t.brokenConstraints(res.Changes, newVersion)...)
	if len(problems) > 0 {
		return nil, &UpdateError{Target: target, Problems: problems}
	}
	return res, nil
}

// missingProblems words the dependencies on unknown images as
// WithStrictDependencies does. Update reports them with its other problems
// rather than relying on a strict scan, which would stop before showing
// those.
func (t *Tree) missingProblems() []error {
	missing := map[image.Dependency]bool{}
	for _, dep := range t.Missing() {
		missing[dep] = true
	}
	var problems []error
	for _, img := range t.Images {
		for _, dep := range img.Depends {
			if missing[dep] {
				problems = append(problems, fmt.Errorf("%s:%d: %w: %s depends on %q, which is neither an image under %s nor in base_images",
					dep.File, dep.Line, ErrMissing, img.Name, dep.Name, t.Dir))
			}
		}
	}
	return problems
}

// updateRoots returns the requested images, in Images order, and how to
// name the request in errors. When Name is not a scanned image but a
// base_images entry (named as image_tag names it: "bookworm" for
// registry/namespace/bookworm:TAG, or as control files may), the roots
// are the images built on it (image_tag in a template, or Depends) and
// base is its label.
func (t *Tree) updateRoots(req UpdateRequest) (roots []*image.Image, target, base string, err error) {
	switch {
	case req.Name != "" && req.Select != "":
		return nil, "", "", errors.New("updating: give an image name or a selection, not both")
	case req.Name != "":
		if img := t.Image(req.Name); img != nil {
			return []*image.Image{img}, req.Name, "", nil
		}
		base = t.baseNames[req.Name]
		if base == "" {
			return nil, "", "", fmt.Errorf("updating %s: %w under %s nor in base_images (the name is the short name from the changelog, or a base image as image_tag names it; use a selection for a pattern)",
				req.Name, ErrNoSuchImage, t.Dir)
		}
		if req.Version != "" {
			return nil, "", "", fmt.Errorf("updating %s: --version gives an image under %s a new version; %s is a base image (%s), whose version is not written here",
				req.Name, t.Dir, req.Name, base)
		}
		for i, img := range t.Images {
			if slices.Contains(t.nodes[i].bases, base) {
				roots = append(roots, img)
			}
		}
		if len(roots) == 0 {
			return nil, "", "", fmt.Errorf("updating %s: no image under %s is built on the base image %s (through image_tag or Depends)",
				req.Name, t.Dir, base)
		}
		return roots, req.Name, base, nil
	case req.Select == "":
		return nil, "", "", errors.New("updating: no image name or selection given")
	case req.Version != "":
		return nil, "", "", errors.New("updating: a new version applies to one named image, not to a selection")
	}
	match, err := Glob(req.Select)
	if err != nil {
		return nil, "", "", err
	}
	for _, img := range t.Images {
		if match(img.Label()) {
			roots = append(roots, img)
		}
	}
	if len(roots) == 0 {
		return nil, "", "", fmt.Errorf("updating %q: %w: no full label under %s matches", req.Select, ErrNoSuchImage, t.Dir)
	}
	return roots, fmt.Sprintf("%q", req.Select), "", nil
}

// nextVersion is the version img gets: the requested one for a root when
// given, else its changelog version bumped (never the nightly tag).
func nextVersion(img *image.Image, req UpdateRequest, root bool) (string, error) {
	if !root || req.Version == "" {
		return changelog.Bump(img.Version, req.UpdateID)
	}
	c, err := changelog.Compare(req.Version, img.Version)
	if err != nil {
		return "", err
	}
	if c <= 0 {
		return "", fmt.Errorf("%w: the new version %q is not above %q", ErrNotAbove, req.Version, img.Version)
	}
	if !ref.ValidTag(req.Version) {
		return "", fmt.Errorf("%w: %q (letters, digits, '_', '.' and '-', at most 128)", ErrInvalidTag, req.Version)
	}
	return req.Version, nil
}

// brokenConstraints finds the versioned dependencies (`core (<< 2.0)`) the
// new versions would no longer meet.
func (t *Tree) brokenConstraints(changes []Change, newVersion map[string]string) []error {
	var problems []error
	for _, c := range changes {
		for _, dep := range c.Image.Depends {
			next, ok := newVersion[dep.Name]
			if !ok || dep.Op == "" {
				continue
			}
			parent := *t.Image(dep.Name)
			parent.Version = next
			if err := checkConstraint(c.Image, dep, &parent); err != nil {
				problems = append(problems, fmt.Errorf("%s:%d: %w: %s needs %s (%s %s), which the update would make %s",
					dep.File, dep.Line, ErrConstraint, c.Image.Name, dep.Name, dep.Op, dep.Version, next))
			}
		}
	}
	return problems
}

// Write puts each change's entry on top of its changelog, all or nothing,
// through one changelog.Batch: every file is first written in full next to
// the original and only when all are ready, and a journal of them is on
// disk, are they renamed over the originals. An error or an interrupt
// before the journal leaves every changelog untouched; a crash after it is
// finished by the next run that takes the lock (changelog.Acquire), and
// none is ever truncated. A changelog whose top version changed since
// Update read it is not written.
func (r *UpdateResult) Write(ctx context.Context) error {
	lock := r.Lock
	if lock == nil {
		if r.dir == "" {
			return errors.New("updating changelogs, nothing written: no lock and no tree to lock")
		}
		l, err := changelog.Acquire(ctx, r.dir)
		if err != nil {
			return fmt.Errorf("updating changelogs, nothing written: %w", err)
		}
		defer l.Release()
		lock = l
	}
	b := lock.Batch()
	defer b.Abort()
	for _, c := range r.Changes {
		top, err := changelog.Parse(c.Path)
		if err != nil {
			return fmt.Errorf("updating changelogs, nothing written: %w", err)
		}
		if top.Version != c.Old {
			return fmt.Errorf("updating changelogs, nothing written: %s changed meanwhile: its version is now %q, not %q",
				c.Path, top.Version, c.Old)
		}
		if err := b.Stage(ctx, c.Path, c.Entry); err != nil {
			return fmt.Errorf("updating changelogs, nothing written: %w", err)
		}
	}
	if err := b.Commit(ctx); err != nil {
		var inc *changelog.IncompleteError
		if errors.As(err, &inc) {
			return fmt.Errorf("updating changelogs: %w", err)
		}
		return fmt.Errorf("updating changelogs, nothing written: %w", err)
	}
	return nil
}
