package builder

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/dockerfile"
	"github.com/docker-pkg/docker-pkg/image"
)

// Lint gathers the problems of the repository in one list, sorted by path:
// what the scan warns about (folders with only one of the two files,
// image_tag uses without a Depends, dependencies on unknown images, and,
// with WithLenient, version constraints not met), templates that do not
// render, a last USER that is not numeric where force_numeric_user is set,
// symbolic links out of the repository or to nothing, and the changelog
// temporary files a dead update left behind. It needs neither the Docker
// daemon nor the registry.
func (b *Builder) Lint(ctx context.Context) ([]Problem, error) {
	t := b.tree
	problems := slices.Clone(t.Warnings)
	for _, img := range t.Images {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := b.renderImage(ctx, img); err != nil {
			var be *image.BuildError
			if errors.As(err, &be) {
				err = be.Err
			}
			kind := ProblemRender
			if errors.Is(err, dockerfile.ErrNonNumericUser) {
				kind = ProblemNumericUser
			}
			at, msg := splitPath(err.Error(), filepath.Join(img.Dir, image.TemplateFile))
			problems = append(problems, Problem{kind, at, msg})
		}
		if err := image.CheckLinks(ctx, img.Dir, img.Root); err != nil {
			var links []error
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				links = j.Unwrap()
			} else {
				links = []error{err}
			}
			for _, e := range links {
				var le *image.LinkError
				if !errors.As(e, &le) {
					return nil, fmt.Errorf("checking the links of %s: %w", img.Dir, e)
				}
				problems = append(problems, Problem{ProblemLink, le.Link, fmt.Sprintf("symbolic link to %s, which %s: a build would not send it", le.Target, le.Reason)})
			}
		}
	}
	err := filepath.WalkDir(t.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != t.Dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir // .git
		}
		if !d.IsDir() && image.IsTemp(d.Name()) && d.Name() != changelog.LockFile && d.Name() != changelog.JournalFile {
			problems = append(problems, Problem{ProblemTempFile, path,
				"a changelog's temporary file, left by an update that died before it wrote any changelog: the next docker-pkg update removes it (it is never an input of a build)"})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("looking for temporary files: %w", err)
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].Path < problems[j].Path })
	return problems, nil
}

// splitPath splits an error's message that names path (with a line, as
// "path:12") into that place and the rest, so a problem names its file
// once. A message that does not name path is kept whole.
func splitPath(msg, path string) (at, rest string) {
	i := strings.Index(msg, path)
	if i < 0 {
		return path, msg
	}
	at, rest = path, msg[i+len(path):]
	if n := len(rest) - len(strings.TrimLeft(strings.TrimPrefix(rest, ":"), "0123456789")); n > 1 {
		at, rest = path+rest[:n], rest[n:]
	}
	rest = strings.TrimLeft(rest, ":, ")
	rest = strings.TrimPrefix(rest, "rendered: ")
	return at, rest
}

// DependsFix is what Fix adds to one control file.
type DependsFix struct {
	Image   *image.Image
	Path    string   // the control file; made when missing
	Depends []string // short names added to Depends
}

// MissingDepends returns, for every image whose templates use another
// scanned image through image_tag without its control file listing it,
// the names to add to its Depends, in tree order.
func (b *Builder) MissingDepends() []DependsFix {
	var out []DependsFix
	for c, nd := range b.tree.nodes {
		var names []string
		for _, p := range nd.parents {
			if nd.implied[p] {
				names = append(names, b.tree.Images[p].Name)
			}
		}
		if len(names) > 0 {
			img := b.tree.Images[c]
			out = append(out, DependsFix{Image: img, Path: filepath.Join(img.Dir, image.ControlFile), Depends: names})
		}
	}
	return out
}

// Fix adds each fix's names to the Depends of its control file (see
// image.AddDepends: the format kept, the file replaced atomically). It
// stops at the first file it cannot write; the ones before are written.
func Fix(fixes []DependsFix) error {
	for _, f := range fixes {
		if err := image.AddDepends(f.Path, f.Image.Name, f.Depends); err != nil {
			return err
		}
	}
	return nil
}
