package report

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Results an image can have. A Run may carry others; they are shown as they
// are, after these.
const (
	ResultVerified  = "verified"   // built and its test passed
	ResultPublished = "published"  // built, verified and pushed
	ResultFailed    = "failed"     // Stage says where
	ResultSkipped   = "skipped"    // never tried: a parent failed, or the run was cancelled
	ResultUpToDate  = "up-to-date" // not built this run
)

// knownResults are the results in the order counts and legends list them.
func knownResults() []string {
	return []string{ResultVerified, ResultPublished, ResultFailed, ResultSkipped, ResultUpToDate}
}

// Run is one build run.
type Run struct {
	Title    string // e.g. "docker-pkg build fixtures/images"
	Started  time.Time
	Finished time.Time
	// Lanes are the build slots ("slot 1".."slot N") or builder names, in
	// display order. An image's Lane missing from them gets a lane of its
	// own after them.
	Lanes []string
	// Images are every image of the tree, parents first.
	Images []Image
}

// Image is one image of the tree and what became of it.
type Image struct {
	Name  string // short name, unique in the Run
	Label string // full label: registry/namespace/name:tag
	// Parents are the names of the images of the Run this one depends on;
	// a name that is not in the Run (an image outside the tree) is ignored.
	Parents []string
	Result  string // one of the Result constants
	Stage   string // for a failed image: "render", "build", "verify", "publish", "pull"...
	Reason  string // why it was built, or why it failed or was skipped
	Lane    string // the lane that built it; "" when it was not built
	Start   time.Time
	End     time.Time // Start and End are zero when it was not built
	Size    int64     // bytes; 0 when unknown
	Digest  string    // sha256:...
	LogTail []string  // the last lines of its log; a failed one's show the failure
}

// Built reports whether the image was built in the run: it has a start and
// an end.
func (im *Image) Built() bool { return !im.Start.IsZero() && !im.End.IsZero() }

// Duration is how long the image took to build, 0 when it was not.
func (im *Image) Duration() time.Duration {
	if !im.Built() || im.End.Before(im.Start) {
		return 0
	}
	return im.End.Sub(im.Start)
}

// ErrInvalid is wrapped by every error about a Run that cannot be shown.
var ErrInvalid = errors.New("invalid run")

// graph is the dependency graph of a Run by index into Run.Images.
type graph struct {
	parents  [][]int
	children [][]int
	order    []int // topological: parents first, else in Images order
}

// newGraph indexes the Run's images; duplicate names and cycles are errors.
func newGraph(r *Run) (*graph, error) {
	n := len(r.Images)
	index := make(map[string]int, n)
	for i := range r.Images {
		name := r.Images[i].Name
		if name == "" {
			return nil, fmt.Errorf("%w: image %d has no name", ErrInvalid, i)
		}
		if j, dup := index[name]; dup {
			return nil, fmt.Errorf("%w: images %d and %d are both named %q", ErrInvalid, j, i, name)
		}
		index[name] = i
	}
	g := &graph{parents: make([][]int, n), children: make([][]int, n)}
	for i := range r.Images {
		for _, p := range r.Images[i].Parents {
			j, ok := index[p]
			if !ok || j == i || slices.Contains(g.parents[i], j) {
				continue
			}
			g.parents[i] = append(g.parents[i], j)
			g.children[j] = append(g.children[j], i)
		}
	}
	// Kahn's algorithm, always taking the lowest index that is ready, so
	// the order is Images' own whenever that is already topological.
	missing := make([]int, n)
	for i := range g.parents {
		missing[i] = len(g.parents[i])
	}
	done := make([]bool, n)
	for len(g.order) < n {
		next := -1
		for i := range n {
			if !done[i] && missing[i] == 0 {
				next = i
				break
			}
		}
		if next < 0 {
			var cyc []string
			for i := range n {
				if !done[i] {
					cyc = append(cyc, r.Images[i].Name)
				}
			}
			return nil, fmt.Errorf("%w: dependency cycle among %v", ErrInvalid, cyc)
		}
		done[next] = true
		g.order = append(g.order, next)
		for _, c := range g.children[next] {
			missing[c]--
		}
	}
	return g, nil
}

// CriticalPath is the chain of built images, each a parent of the next,
// whose build durations add up to the most: the images that bounded the
// run's wall time however many lanes it had. Ties go to the chain that comes
// first in Images. It is nil when no image was built or the Run is invalid.
func CriticalPath(r *Run) []string {
	g, err := newGraph(r)
	if err != nil {
		return nil
	}
	return names(r, criticalPath(r, g))
}

func criticalPath(r *Run, g *graph) []int {
	n := len(r.Images)
	total := make([]time.Duration, n) // the longest chain ending at i
	prev := make([]int, n)
	best := -1
	for _, i := range g.order {
		prev[i] = -1
		im := &r.Images[i]
		if !im.Built() {
			continue
		}
		for _, p := range g.parents[i] {
			if r.Images[p].Built() && (prev[i] < 0 || total[p] > total[prev[i]] || total[p] == total[prev[i]] && p < prev[i]) {
				prev[i] = p
			}
		}
		total[i] = im.Duration()
		if prev[i] >= 0 {
			total[i] += total[prev[i]]
		}
		if best < 0 || total[i] > total[best] || total[i] == total[best] && i < best {
			best = i
		}
	}
	var path []int
	for i := best; i >= 0; i = prev[i] {
		path = append(path, i)
	}
	slices.Reverse(path)
	return path
}

func names(r *Run, idx []int) []string {
	if len(idx) == 0 {
		return nil
	}
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = r.Images[i].Name
	}
	return out
}

// LaneSummary is what one lane did in the run.
type LaneSummary struct {
	Lane   string        `json:"lane"`
	Images int           `json:"images"` // built on it
	Busy   time.Duration `json:"-"`      // the sum of their durations
	// Utilisation is Busy over the run's wall time, 0..1.
	Utilisation float64 `json:"utilisation"`
}

// lanes is the Run's lanes with those only images name appended, sorted.
func lanes(r *Run) []string {
	out := slices.Clone(r.Lanes)
	var extra []string
	for i := range r.Images {
		l := r.Images[i].Lane
		if l != "" && r.Images[i].Built() && !slices.Contains(out, l) && !slices.Contains(extra, l) {
			extra = append(extra, l)
		}
	}
	slices.Sort(extra)
	return append(out, extra...)
}

// Lanes summarises every lane of the run, in display order.
func Lanes(r *Run) []LaneSummary {
	wall := wallTime(r)
	var out []LaneSummary
	for _, l := range lanes(r) {
		s := LaneSummary{Lane: l}
		for i := range r.Images {
			if im := &r.Images[i]; im.Lane == l && im.Built() {
				s.Images++
				s.Busy += im.Duration()
			}
		}
		if wall > 0 {
			s.Utilisation = float64(s.Busy) / float64(wall)
		}
		out = append(out, s)
	}
	return out
}

// wallTime is Finished - Started, or up to the last image's end when
// Finished is missing or earlier.
func wallTime(r *Run) time.Duration {
	end := r.Finished
	for i := range r.Images {
		if e := r.Images[i].End; r.Images[i].Built() && e.After(end) {
			end = e
		}
	}
	if r.Started.IsZero() || end.Before(r.Started) {
		return 0
	}
	return end.Sub(r.Started)
}

// Count is how many images of the run have one result.
type Count struct {
	Result string `json:"result"`
	N      int    `json:"n"`
}

// Counts counts the images per result: the known results first, in a fixed
// order and only those that occur, then any other in name order.
func Counts(r *Run) []Count {
	m := map[string]int{}
	var other []string
	for i := range r.Images {
		res := r.Images[i].Result
		if m[res] == 0 && !slices.Contains(knownResults(), res) {
			other = append(other, res)
		}
		m[res]++
	}
	slices.Sort(other)
	var out []Count
	for _, res := range append(knownResults(), other...) {
		if m[res] > 0 {
			out = append(out, Count{Result: res, N: m[res]})
		}
	}
	return out
}
