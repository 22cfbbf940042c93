package builder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/dockerfile"
	"github.com/docker-pkg/docker-pkg/image"
	"golang.org/x/sync/errgroup"
)

// ErrDuplicate is matched by the error Scan returns when two folders define
// the same short name.
var ErrDuplicate = errors.New("duplicate image name")

// Problem is something wrong in the repository of image definitions that
// a build goes on despite (or, with WithLenient, a version constraint that
// is not met): what "docker-pkg lint" lists.
type Problem struct {
	Kind    ProblemKind
	Path    string // the file (path:line where known) or folder to look at
	Message string
}

func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// Warning is a problem Scan found that does not stop a build or a plan.
type Warning = Problem

// ProblemKind says what a Problem is about, for programs.
type ProblemKind string

// The kinds of problem.
const (
	ProblemHalfDefined       ProblemKind = "half-defined"       // a folder with only one of Dockerfile.template and changelog
	ProblemMissingDepends    ProblemKind = "missing-depends"    // image_tag names an image control does not list
	ProblemUnknownDependency ProblemKind = "unknown-dependency" // control names an image that is neither scanned nor a base image
	ProblemConstraint        ProblemKind = "constraint"         // a versioned dependency the other image's version does not meet
	ProblemRender            ProblemKind = "render"             // a template that does not render
	ProblemNumericUser       ProblemKind = "numeric-user"       // force_numeric_user, and the last USER is a name
	ProblemLink              ProblemKind = "link"               // a symbolic link out of the repository, or to nothing
	ProblemTempFile          ProblemKind = "temp-file"          // a changelog temporary file a dead update left behind
)

// Tree is a scanned directory of image definitions and the graph between
// them.
type Tree struct {
	Dir      string         // absolute path of the scanned directory
	Images   []*image.Image // parents before children; see Order
	Warnings []Warning      // sorted by path

	naming  image.Naming
	workers int
	byName  map[string]int // short name -> index in Images
	nodes   []node         // parallel to Images
	missing []image.Dependency
	// baseNames maps the names image_tag and control files give
	// base_images entries to their labels.
	baseNames map[string]string
}

// node is one image's place in the graph; ints index Tree.Images.
type node struct {
	parents  []int // sorted by name
	children []int // sorted by name
	implied  map[int]bool
	bases    []string // base image labels it uses
	level    int      // 1 + the highest level of its parents
}

// scanned is what a worker learns about one image folder.
type scanned struct {
	dir  string
	img  *image.Image
	refs []templateRef
	err  error
}

// templateRef is an image a template names through image_tag.
type templateRef struct {
	name string
	file string
	line int
}

// scan reads every image definition under dir and builds the dependency
// graph. A folder holding both Dockerfile.template and changelog is an
// image; folders inside it are still walked; hidden folders (.git) are not.
// Errors in several images are reported together. With strict, a
// dependency on an image neither scanned nor in base_images is an error,
// not a warning; with lenient, a version constraint not met is a warning,
// not an error.
func scan(ctx context.Context, dir string, cfg *config.Config, n image.Naming, strict, lenient bool, logger *slog.Logger) (*Tree, error) {
	return scanWith(ctx, dir, cfg, n, strict, lenient, logger, load)
}

// loader reads one image folder, as load does.
type loader func(dir, root string, present image.Present, n image.Naming, engine string) scanned

// scanWith is scan reading each image folder with load.
func scanWith(ctx context.Context, dir string, cfg *config.Config, n image.Naming, strict, lenient bool, logger *slog.Logger, load loader) (*Tree, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("scanning %s: %w", dir, err)
	}
	switch info, err := os.Stat(abs); {
	case err != nil:
		return nil, fmt.Errorf("scanning %s: %w", dir, err)
	case !info.IsDir():
		return nil, fmt.Errorf("scanning %s: %w: give the folder that holds the image folders", dir, ErrNotDir)
	}
	workers := max(cfg.ScanWorkers, 1)
	var (
		mu      sync.Mutex
		results []scanned
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	// A read that blocks (a named pipe, a hung network file system) must
	// not hold up an interrupt: the scan then returns at once, leaving the
	// blocked workers behind. Each image folder is loaded as soon as the
	// walk has read it, while the walk goes on.
	type walked struct {
		warnings []Warning
		err      error
	}
	done := make(chan walked, 1)
	go func() {
		warnings, werr := walk(gctx, abs, func(d string, present image.Present) {
			g.Go(func() error { // waits for a free worker
				if err := gctx.Err(); err != nil {
					return err
				}
				r := load(d, abs, present, n, cfg.TemplateEngine)
				if r.err == nil {
					logger.Debug("loaded image", "name", r.img.Name, "dir", d)
				}
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				return nil
			})
		})
		err := g.Wait()
		if werr != nil {
			err = werr // the walk's own errors name what to fix
		}
		done <- walked{warnings, err}
	}()
	var w walked
	select {
	case w = <-done:
	case <-ctx.Done():
		w.err = ctx.Err()
	}
	switch {
	case errors.Is(w.err, ErrNotDir), errors.Is(w.err, ErrIsDir):
		return nil, w.err
	case w.err != nil:
		return nil, fmt.Errorf("scanning %s: %w", abs, w.err)
	}
	warnings := w.warnings
	// The loads end in any order; the graph wants them by folder.
	slices.SortFunc(results, func(a, b scanned) int { return strings.Compare(a.dir, b.dir) })

	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	t := &Tree{Dir: abs, Warnings: warnings, naming: n, workers: workers}
	if err := t.link(results, cfg.BaseImages, strict, lenient); err != nil {
		return nil, err
	}
	sort.SliceStable(t.Warnings, func(i, j int) bool { return t.Warnings[i].Path < t.Warnings[j].Path })
	logger.Debug("scanned", "dir", abs, "images", len(t.Images), "warnings", len(t.Warnings))
	return t, nil
}

// ErrNotDir is matched by the error of a scan of something that is not a
// folder.
var ErrNotDir = errors.New("not a directory")

// ErrIsDir is matched by the error of a scan of an image folder whose
// changelog or template is a folder.
var ErrIsDir = errors.New("is a folder")

// walk calls found with every image folder under root and the optional
// files it holds, as soon as it has read that folder, and returns a
// warning for every folder holding only one of the two files that make an
// image. A folder holding one of them while the other is a folder is an
// error naming it. Hidden folders (.git) are not entered, nor links to
// folders. It stops when ctx is done.
func walk(ctx context.Context, root string, found func(dir string, present image.Present)) ([]Warning, error) {
	var (
		warnings []Warning
		errs     []error
	)
	var visit func(dir string) error
	visit = func(dir string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		// Each of the two files is a file, a folder (wrong) or absent.
		var template, changelog, templateDir, changelogDir bool
		var present image.Present
		var subdirs []string
		for _, e := range entries {
			name, isDir := e.Name(), e.IsDir()
			switch {
			case name == image.TemplateFile && isDir:
				templateDir = true
			case name == image.TemplateFile:
				template = true
			case name == image.ChangelogFile && isDir:
				changelogDir = true
			case name == image.ChangelogFile:
				changelog = true
			case name == image.ControlFile:
				present.Control = true
			case name == image.BuildTemplateFile:
				present.BuildTemplate = true
			}
			// A folder named changelog may hold images too.
			if isDir && !strings.HasPrefix(name, ".") {
				subdirs = append(subdirs, filepath.Join(dir, name))
			}
		}
		switch {
		case template && changelogDir:
			errs = append(errs, fmt.Errorf("%s: %w: an image's %s must be a file", filepath.Join(dir, image.ChangelogFile), ErrIsDir, image.ChangelogFile))
		case changelog && templateDir:
			errs = append(errs, fmt.Errorf("%s: %w: an image's %s must be a file", filepath.Join(dir, image.TemplateFile), ErrIsDir, image.TemplateFile))
		case template && changelog:
			found(dir, present)
		case template:
			warnings = append(warnings, Warning{ProblemHalfDefined, dir, "has " + image.TemplateFile + " but no " + image.ChangelogFile + "; skipped"})
		case changelog:
			warnings = append(warnings, Warning{ProblemHalfDefined, dir, "has " + image.ChangelogFile + " but no " + image.TemplateFile + "; skipped"})
		}
		for _, s := range subdirs {
			if err := visit(s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(root); err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, errors.Join(errs...)
	}
	return warnings, nil
}

func load(dir, root string, present image.Present, n image.Naming, engine string) scanned {
	img, err := image.LoadListed(dir, n, present)
	if err != nil {
		return scanned{dir: dir, err: err}
	}
	img.Root = root
	r := scanned{dir: dir, img: img}
	files := []string{image.TemplateFile}
	if img.BuildStage {
		files = append(files, image.BuildTemplateFile)
	}
	for _, name := range files {
		path := filepath.Join(dir, name)
		src, err := dockerfile.ReadTemplate(path)
		if err != nil {
			return scanned{dir: dir, err: fmt.Errorf("reading template: %w", err)}
		}
		refs, _ := dockerfile.ImageRefs(engine, path, src) // a template that does not parse fails its render, which says why
		for _, ref := range refs {
			r.refs = append(r.refs, templateRef{ref.Name, path, ref.Line})
		}
	}
	return r
}
