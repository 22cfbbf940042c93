package builder

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/docker-pkg/docker-pkg/image"
	"golang.org/x/sync/errgroup"
)

// State is where an image stands in a build.
type State string

// The states of SPEC "States and the build".
const (
	ToBuild   State = "to_build"
	Built     State = "built"     // in the local daemon
	Verified  State = "verified"  // built and its test passed
	Published State = "published" // in the registry
	Error     State = "error"
)

// Code says, for programs, why an image is in its initial state.
type Code string

// Reason codes; Assessment.Reason says the same in words.
const (
	CodeNotBuilt     Code = "not_built"     // not in the local daemon (nor the registry, if checked)
	CodeNoDaemon     Code = "no_daemon"     // no daemon to ask: assumed not built
	CodeBuiltLocally Code = "built_locally" // in the local daemon
	CodePublished    Code = "published"     // in the registry
	CodeCheckFailed  Code = "check_failed"  // asking the daemon or registry failed
	CodeUnreachable  Code = "unreachable"   // the registry could not be reached at all (Plan.Unreachable says why)
	// State to_build, though a build is or was in the local daemon: only
	// an image that passed its test counts as built.
	CodeUnverified Code = "unverified"  // built, but its test never ended (interrupted or killed)
	CodeTestFailed Code = "test_failed" // its last build failed its test; kept as Repo:Tag-failed
	// Read from build records (WithRecords); the state stays built or
	// published: build does not rebuild such an image, its tag exists.
	CodeStale   Code = "stale"   // built on a parent image that has changed since, or on a stale one
	CodeChanged Code = "changed" // its inputs changed but its version did not
	// Set by Plan: a parent is in the build chain, so once built this
	// image is stale.
	CodeParentRebuilt Code = "parent_rebuilt"
)

// Assessment is an image's state and why.
type Assessment struct {
	State  State
	Code   Code
	Reason string // plain words: "not built", "built locally", ...
}

// States maps short names to their assessment.
type States map[string]Assessment

// assess finds every image's initial state, asking loc for up to
// scan_workers images at once, and reads the build record of every image
// that is built or published to explain it further: CodeStale when the
// parent it was built on has changed since (or is stale itself),
// CodeChanged when what it would be built from now differs while its
// version does not. A failed check puts that image in Error; a build
// record that cannot be read leaves the state as it is and says so in the
// reason. Only a cancelled ctx fails the whole.
func (b *Builder) assess(ctx context.Context, loc *locator) (States, error) {
	t := b.tree
	out := make([]Assessment, len(t.Images))
	drifts := make([]*Drift, len(t.Images))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(t.workers, 1))
	for i, img := range t.Images {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			out[i] = loc.state(gctx, img)
			if out[i].State != Built && out[i].State != Published {
				return nil
			}
			d, err := b.drift(gctx, loc, img, true)
			switch {
			case gctx.Err() != nil:
				return gctx.Err()
			case err != nil:
				out[i].Reason += "; build record not checked: " + err.Error()
			case d != nil:
				drifts[i] = d
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("checking image states: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("checking image states: %w", err)
	}
	t.inheritStale(out, drifts)
	states := make(States, len(out))
	for i, img := range t.Images {
		if d := drifts[i]; d != nil {
			out[i].Code, out[i].Reason = d.Code, d.Reason
		}
		states[img.Name] = out[i]
	}
	return states, nil
}

// PlanOptions says what to plan.
type PlanOptions struct {
	// Select is a shell glob on full labels (see Glob): the images to
	// build, with the dependencies they need. Default "": every image.
	Select string
	// Pull allows pulling (build without --no-pull): the registry is asked
	// first and a published image is not rebuilt even if absent locally;
	// the build pulls base images and published parents. It means nothing
	// without a registry.
	Pull bool
}

// Plan finds the state of every image and why, from the daemon, the
// registry and the build records both hold, and selects the build chain.
func (b *Builder) Plan(ctx context.Context, opts PlanOptions) (*Plan, error) {
	if opts.Select == "" {
		opts.Select = "*"
	}
	if _, err := Glob(opts.Select); err != nil {
		return nil, err
	}
	loc := newLocator(b.tree, b.engine, b.reg, opts.Pull)
	states, err := b.assess(ctx, loc)
	if err != nil {
		return nil, err
	}
	p, err := b.tree.plan(states, opts.Select)
	if err != nil {
		return nil, err
	}
	p.loc = loc
	return p, nil
}

// Plan is what a build would do with a selection.
type Plan struct {
	// Entries are the images the selection matches plus the dependencies
	// the build chain adds, parents first.
	Entries []Entry

	tree            *Tree
	states          States
	selected, build []bool   // by index in tree.Images
	loc             *locator // where the states were read; nil in tests
}

// Unreachable returns why the registry could not be reached at all
// (registry.Down), or nil: every image it was asked about is then in
// Error with CodeUnreachable, and this is the one cause to report.
func (p *Plan) Unreachable() error {
	if p.loc == nil {
		return nil
	}
	p.loc.mu.Lock()
	defer p.loc.mu.Unlock()
	return p.loc.unreachable
}

// States returns every image's state, by short name.
func (p *Plan) States() States { return p.states }

// Pull says whether the build pulls (PlanOptions.Pull, with a registry).
func (p *Plan) Pull() bool { return p.loc != nil && p.loc.pull && p.loc.remote != nil }

// Entry is one image of a Plan.
type Entry struct {
	Image *image.Image
	Assessment
	Selected bool // its full label matches the selection
	Build    bool // in the build chain
}

// Chain returns the images to build, in build order (parents first).
func (p *Plan) Chain() []*image.Image {
	var out []*image.Image
	for _, e := range p.Entries {
		if e.Build {
			out = append(out, e.Image)
		}
	}
	return out
}

// plan selects the build chain: every to_build image whose full label
// matches glob (a shell glob as Python's fnmatch reads it: `*` also matches
// `/`), preceded by its to_build dependencies, recursively. The recursion
// stops at a dependency in any other state, as the reference's does. An
// image missing from states counts as to_build.
func (t *Tree) plan(states States, glob string) (*Plan, error) {
	match, err := Glob(glob)
	if err != nil {
		return nil, err
	}
	state := func(i int) Assessment {
		if a, ok := states[t.Images[i].Name]; ok {
			return a
		}
		return Assessment{ToBuild, CodeNotBuilt, "not built"}
	}
	selected := make([]bool, len(t.Images))
	build := make([]bool, len(t.Images))
	var stack []int
	for i, img := range t.Images {
		if match(img.Label()) {
			selected[i] = true
			if state(i).State == ToBuild && !build[i] {
				build[i] = true
				stack = append(stack, i)
			}
		}
	}
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, p := range t.nodes[i].parents {
			if !build[p] && state(p).State == ToBuild {
				build[p] = true
				stack = append(stack, p)
			}
		}
	}
	p := &Plan{tree: t, states: states, selected: selected, build: build}
	for i := range t.Images { // Images is parents first
		if selected[i] || build[i] {
			p.Entries = append(p.Entries, p.entry(i))
		}
	}
	return p, nil
}

// entry is image i in the plan. An image left out of the chain while a
// parent is in it is said to be: it will be stale once the parent builds,
// and build will not rebuild it.
func (p *Plan) entry(i int) Entry {
	img := p.tree.Images[i]
	a, ok := p.states[img.Name]
	if !ok {
		a = Assessment{ToBuild, CodeNotBuilt, "not built"}
	}
	if !p.build[i] && (a.State == Built || a.State == Published) {
		var rebuilt []string
		for _, par := range p.tree.nodes[i].parents {
			if p.build[par] {
				rebuilt = append(rebuilt, p.tree.Images[par].Name)
			}
		}
		switch len(rebuilt) {
		case 0:
		case 1:
			a.Code, a.Reason = CodeParentRebuilt, "parent "+rebuilt[0]+" will be rebuilt"
		default:
			a.Code, a.Reason = CodeParentRebuilt, "parents "+strings.Join(rebuilt, ", ")+" will be rebuilt"
		}
	}
	return Entry{Image: img, Assessment: a, Selected: p.selected[i], Build: p.build[i]}
}

// Why returns the image name and every image it depends on, directly or
// not, parents first, each as the plan sees it: the chain of reasons that
// make name built, or not, by this plan.
func (p *Plan) Why(name string) ([]Entry, error) {
	i, ok := p.tree.byName[name]
	if !ok {
		return nil, fmt.Errorf("%s: %w under %s (give the short name from its changelog)", name, ErrNoSuchImage, p.tree.Dir)
	}
	var out []Entry
	for _, a := range p.tree.relatives(name, func(n node) []int { return n.parents }, true) {
		out = append(out, p.entry(a))
	}
	return append(out, p.entry(i)), nil
}

// ErrBadPattern is matched by the error Glob returns for a malformed
// pattern.
var ErrBadPattern = errors.New("malformed --select pattern")

// Glob compiles a shell pattern with the semantics of Python's fnmatch,
// which the reference uses for --select: `*` matches any string, `/`
// included (path.Match's `*` stops at `/`, and every label with a namespace
// has one), `?` one character, `[seq]` and `[!seq]` a character class.
func Glob(pattern string) (func(label string) bool, error) {
	var re strings.Builder
	re.WriteString(`(?s)^`)
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '*':
			re.WriteString(`.*`)
		case '?':
			re.WriteString(`.`)
		case '[':
			j := i + 1
			if j < len(pattern) && pattern[j] == '!' {
				j++
			}
			if j < len(pattern) && pattern[j] == ']' {
				j++
			}
			for j < len(pattern) && pattern[j] != ']' {
				j++
			}
			if j >= len(pattern) { // no closing bracket: a literal '['
				re.WriteString(`\[`)
				continue
			}
			class := pattern[i+1 : j]
			re.WriteByte('[')
			if strings.HasPrefix(class, "!") {
				re.WriteByte('^')
				class = class[1:]
			} else if strings.HasPrefix(class, "^") {
				re.WriteByte('\\')
			}
			re.WriteString(strings.NewReplacer(`\`, `\\`, `[`, `\[`).Replace(class))
			re.WriteByte(']')
			i = j
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteByte('$')
	compiled, err := regexp.Compile(re.String())
	if err != nil {
		return nil, fmt.Errorf("%w %q: %v", ErrBadPattern, pattern, err)
	}
	return compiled.MatchString, nil
}
