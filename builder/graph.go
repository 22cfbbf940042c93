package builder

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/distribution/reference"
	"github.com/docker-pkg/docker-pkg/image"
	"pault.ag/go/debian/version"
)

// Sentinels for the graph errors Scan returns; match them with errors.Is.
var (
	ErrCycle      = errors.New("dependency cycle")
	ErrConstraint = errors.New("version constraint not met")
	ErrMissing    = errors.New("unknown dependency")
)

// Edge is a dependency between two scanned images.
type Edge struct {
	Parent, Child string // short names; Child depends on Parent
	Implied       bool   // found only in Child's templates, not in its control file
}

// link builds the graph over the loaded images and orders Images.
func (t *Tree) link(results []scanned, baseImages []string, strict, lenient bool) error {
	sort.Slice(results, func(i, j int) bool {
		a, b := results[i].img, results[j].img
		return a.Name < b.Name || a.Name == b.Name && a.Dir < b.Dir
	})
	var errs []error
	for i := 1; i < len(results); i++ {
		if a, b := results[i-1].img, results[i].img; a.Name == b.Name {
			errs = append(errs, fmt.Errorf("%w %q: defined in %s and in %s", ErrDuplicate, a.Name, a.Dir, b.Dir))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	// Indices below are into results (sorted by name) until reorder.
	byName := make(map[string]int, len(results))
	for i, r := range results {
		byName[r.img.Name] = i
	}
	bases := t.baseIndex(baseImages)
	t.baseNames = bases
	nodes := make([]node, len(results))
	for i, r := range results {
		img, nd := r.img, &nodes[i]
		for _, dep := range img.Depends {
			p, ok := byName[dep.Name]
			switch {
			case ok:
				if err := checkConstraint(img, dep, results[p].img); err != nil {
					if lenient {
						at := fmt.Sprintf("%s:%d", dep.File, dep.Line)
						t.Warnings = append(t.Warnings, Warning{ProblemConstraint, at, strings.TrimPrefix(err.Error(), at+": ")})
					} else {
						errs = append(errs, err)
					}
				}
				if !slices.Contains(nd.parents, p) {
					nd.parents = append(nd.parents, p)
				}
			case bases[dep.Name] != "":
				nd.addBase(bases[dep.Name])
			default:
				t.missing = append(t.missing, dep)
				msg := fmt.Sprintf("%s depends on %q, which is neither an image under %s nor in base_images", img.Name, dep.Name, t.Dir)
				if strict {
					errs = append(errs, fmt.Errorf("%s:%d: %w: %s", dep.File, dep.Line, ErrMissing, msg))
				} else {
					t.Warnings = append(t.Warnings, Warning{ProblemUnknownDependency, fmt.Sprintf("%s:%d", dep.File, dep.Line), msg})
				}
			}
		}
		for _, ref := range r.refs {
			p, ok := byName[ref.name]
			switch {
			case ok && p != i && !slices.Contains(nd.parents, p):
				nd.parents = append(nd.parents, p)
				if nd.implied == nil {
					nd.implied = map[int]bool{}
				}
				nd.implied[p] = true
				t.Warnings = append(t.Warnings, Warning{ProblemMissingDepends, fmt.Sprintf("%s:%d", ref.file, ref.line), fmt.Sprintf(
					"%s uses image %s (image_tag) but does not depend on it: add %q to Depends in %s",
					img.Name, ref.name, ref.name, filepath.Join(img.Dir, image.ControlFile))})
			case !ok && bases[ref.name] != "":
				nd.addBase(bases[ref.name])
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for i := range nodes {
		for _, p := range nodes[i].parents {
			nodes[p].children = append(nodes[p].children, i)
		}
	}
	if err := levels(results, nodes); err != nil {
		return err
	}
	t.reorder(results, nodes)
	return nil
}

func (nd *node) addBase(label string) {
	if !slices.Contains(nd.bases, label) {
		nd.bases = append(nd.bases, label)
	}
}

// baseIndex maps the names that refer to a base image to its label. A base
// image matches by repository: registry/namespace/name as Naming builds it
// (what image_tag looks up) first, then the repository itself or its last
// path component, as a control file has no other way to name it.
func (t *Tree) baseIndex(labels []string) map[string]string {
	repos := make([]string, len(labels))
	for i, label := range labels {
		repos[i] = label
		if ref, err := reference.Parse(label); err == nil {
			if named, ok := ref.(reference.Named); ok {
				repos[i] = named.Name()
			}
		}
	}
	out := map[string]string{}
	add := func(key, label string) {
		if _, ok := out[key]; !ok {
			out[key] = label
		}
	}
	for i, label := range labels {
		if prefix := t.naming.Repo(""); prefix == "" {
			add(repos[i], label)
		} else if short, ok := strings.CutPrefix(repos[i], prefix+"/"); ok {
			add(short, label)
		}
	}
	for i, label := range labels {
		add(repos[i], label)
		add(path.Base(repos[i]), label)
	}
	return out
}

// checkConstraint checks a versioned dependency against the changelog
// version of the image it names.
func checkConstraint(img *image.Image, dep image.Dependency, parent *image.Image) error {
	if dep.Op == "" {
		return nil
	}
	have, err := version.Parse(parent.Version)
	if err != nil {
		return fmt.Errorf("%s: %w: version %q cannot be compared with the constraint %s (%s %s) in %s:%d: %v",
			filepath.Join(parent.Dir, image.ChangelogFile), ErrConstraint, parent.Version, dep.Name, dep.Op, dep.Version, dep.File, dep.Line, err)
	}
	want, err := version.Parse(dep.Version)
	if err != nil { // image.Load checked it already
		return fmt.Errorf("%s:%d: %w: %v", dep.File, dep.Line, ErrConstraint, err)
	}
	c := version.Compare(have, want)
	ok := map[string]bool{">=": c >= 0, "<=": c <= 0, ">>": c > 0, "<<": c < 0, "=": c == 0}[dep.Op]
	if ok {
		return nil
	}
	return fmt.Errorf("%s:%d: %w: %s needs %s (%s %s), but %s is %s (%s)",
		dep.File, dep.Line, ErrConstraint, img.Name, dep.Name, dep.Op, dep.Version,
		dep.Name, parent.Version, filepath.Join(parent.Dir, image.ChangelogFile))
}

// levels gives every image its level (Kahn's algorithm, so no recursion
// however deep the tree) or returns the cycle that prevents it.
func levels(results []scanned, nodes []node) error {
	pending := make([]int, len(nodes)) // parents not yet levelled
	var ready []int
	for i := range nodes {
		pending[i] = len(nodes[i].parents)
		if pending[i] == 0 {
			ready = append(ready, i)
			nodes[i].level = 1
		}
	}
	done := 0
	for len(ready) > 0 {
		i := ready[len(ready)-1]
		ready = ready[:len(ready)-1]
		done++
		for _, c := range nodes[i].children {
			nodes[c].level = max(nodes[c].level, nodes[i].level+1)
			if pending[c]--; pending[c] == 0 {
				ready = append(ready, c)
			}
		}
	}
	if done == len(nodes) {
		return nil
	}
	// Every image left has a parent left: walk up parents from the first
	// one (by name) until an image repeats.
	start := slices.IndexFunc(pending, func(n int) bool { return n > 0 })
	seen := map[int]int{} // image -> position in walk
	var walk []int
	for i := start; ; {
		if pos, ok := seen[i]; ok {
			walk = walk[pos:]
			break
		}
		seen[i] = len(walk)
		walk = append(walk, i)
		for _, p := range sorted(nodes[i].parents) {
			if pending[p] > 0 {
				i = p
				break
			}
		}
	}
	// Start the cycle at its first name, so the message is stable.
	first := 0
	for k, i := range walk {
		if results[i].img.Name < results[walk[first]].img.Name {
			first = k
		}
	}
	names := make([]string, 0, len(walk)+1)
	for k := range walk {
		names = append(names, results[walk[(first+k)%len(walk)]].img.Name)
	}
	names = append(names, names[0])
	return fmt.Errorf("%w: %s (each image depends on the next)", ErrCycle, strings.Join(names, " -> "))
}

func sorted(idx []int) []int {
	out := slices.Clone(idx)
	slices.Sort(out) // results are sorted by name, so indices are too
	return out
}

// reorder sets Images to parents-first order, by level then name, and
// renumbers the graph to match.
func (t *Tree) reorder(results []scanned, nodes []node) {
	order := make([]int, len(results))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return nodes[order[a]].level < nodes[order[b]].level })
	pos := make([]int, len(order)) // old index -> new index
	for n, old := range order {
		pos[old] = n
	}
	t.Images = make([]*image.Image, len(order))
	t.nodes = make([]node, len(order))
	t.byName = make(map[string]int, len(order))
	renumber := func(idx []int) []int {
		out := make([]int, len(idx))
		for k, i := range idx {
			out[k] = pos[i]
		}
		sort.Slice(out, func(a, b int) bool { return t.Images[out[a]].Name < t.Images[out[b]].Name })
		return out
	}
	for n, old := range order {
		t.Images[n] = results[old].img
		t.byName[results[old].img.Name] = n
	}
	for n, old := range order {
		nd := nodes[old]
		t.nodes[n] = node{parents: renumber(nd.parents), children: renumber(nd.children), bases: nd.bases, level: nd.level}
		if nd.implied != nil {
			t.nodes[n].implied = map[int]bool{}
			for p := range nd.implied {
				t.nodes[n].implied[pos[p]] = true
			}
		}
		sort.Strings(t.nodes[n].bases)
	}
}

// Image returns the scanned image with this short name, or nil.
func (t *Tree) Image(name string) *image.Image {
	if i, ok := t.byName[name]; ok {
		return t.Images[i]
	}
	return nil
}

// Level is 1 for an image that depends on no scanned image, else one more
// than the highest level of its parents; 0 for an unknown name.
func (t *Tree) Level(name string) int {
	if i, ok := t.byName[name]; ok {
		return t.nodes[i].level
	}
	return 0
}

// Parents returns the scanned images name depends on directly (control or
// templates), sorted by name.
func (t *Tree) Parents(name string) []*image.Image {
	return t.images(t.relatives(name, func(n node) []int { return n.parents }, false))
}

// Descendants returns every image that depends on name, directly or not,
// parents first: what update bumps and a failed build skips.
func (t *Tree) Descendants(name string) []*image.Image {
	return t.images(t.relatives(name, func(n node) []int { return n.children }, true))
}

// Bases returns the base_images labels name uses (control or templates),
// sorted.
func (t *Tree) Bases(name string) []string {
	if i, ok := t.byName[name]; ok {
		return slices.Clone(t.nodes[i].bases)
	}
	return nil
}

// Missing returns the dependencies on images neither scanned nor in
// base_images, in the order of the images that declare them. Scan warns
// about them, or fails with WithStrictDependencies.
func (t *Tree) Missing() []image.Dependency { return slices.Clone(t.missing) }

// Edges returns every dependency between scanned images, in the order of
// Images (children) then parent name.
func (t *Tree) Edges() []Edge {
	var out []Edge
	for c, nd := range t.nodes {
		for _, p := range nd.parents {
			out = append(out, Edge{Parent: t.Images[p].Name, Child: t.Images[c].Name, Implied: nd.implied[p]})
		}
	}
	return out
}

// relatives follows next from name, once or transitively; the transitive
// result is in Images order, which is parents first.
func (t *Tree) relatives(name string, next func(node) []int, transitive bool) []int {
	i, ok := t.byName[name]
	if !ok {
		return nil
	}
	if !transitive {
		return next(t.nodes[i])
	}
	seen := map[int]bool{i: true}
	var out []int
	queue := []int{i}
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, r := range next(t.nodes[cur]) {
			if !seen[r] {
				seen[r] = true
				out = append(out, r)
				queue = append(queue, r)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (t *Tree) images(idx []int) []*image.Image {
	out := make([]*image.Image, len(idx))
	for k, i := range idx {
		out[k] = t.Images[i]
	}
	return out
}
