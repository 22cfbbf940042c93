package builder

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
)

func TestAssess(t *testing.T) {
	root := writeTree(t, img("a", "a", "1", "", ""))
	tree, err := scanTree(context.Background(), root, testConfig(), image.Naming{Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	const label = "ns/a:1"
	tests := []struct {
		name string
		src  sources
		want Assessment
	}{
		{"no daemon", sources{}, Assessment{ToBuild, CodeNoDaemon, "not checked: no Docker daemon"}},
		{"no daemon, published", sources{remote: in(label), pull: true}, Assessment{Published, CodePublished, "published"}},
		{"absent", sources{local: in()}, Assessment{ToBuild, CodeNotBuilt, "not built"}},
		{"local", sources{local: in(label)}, Assessment{Built, CodeBuiltLocally, "built locally"}},
		{"absent, registry checked", sources{local: in(), remote: in(), pull: true}, Assessment{ToBuild, CodeNotBuilt, "not built, not in registry"}},
		{"pull: published wins over local", sources{local: in(label), remote: in(label), pull: true}, Assessment{Published, CodePublished, "published"}},
		{"pull: published, absent locally", sources{local: in(), remote: in(label), pull: true}, Assessment{Published, CodePublished, "published"}},
		{"pull: local only", sources{local: in(label), remote: in(), pull: true}, Assessment{Built, CodeBuiltLocally, "built locally, not published"}},
		{"no pull: absent locally but published", sources{local: in(), remote: in(label)}, Assessment{ToBuild, CodeNotBuilt, "not built"}},
		{"no pull: local and published", sources{local: in(label), remote: in(label)}, Assessment{Published, CodePublished, "published"}},
		{"no pull: local only", sources{local: in(label), remote: in()}, Assessment{Built, CodeBuiltLocally, "built locally, not published"}},
		{"local check fails", sources{local: failing}, Assessment{Error, CodeCheckFailed, "boom"}},
		{"registry check fails", sources{local: in(), remote: failing, pull: true}, Assessment{Error, CodeCheckFailed, "boom"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			states, err := assessWith(context.Background(), builderFor(t, tree, testConfig()), tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if got := states["a"]; got != tt.want {
				t.Errorf("Assess()[a] = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAssessCancelled(t *testing.T) {
	tree := diamond(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := assessWith(ctx, builderFor(t, tree, testConfig()), sources{local: in()}); !errors.Is(err, context.Canceled) {
		t.Errorf("Assess() error = %v, want context.Canceled", err)
	}
}

func TestPlan(t *testing.T) {
	tree := diamond(t) // base <- left, right <- top (+ solo) <- leaf
	built := Assessment{Built, CodeBuiltLocally, "built locally"}
	tests := []struct {
		name   string
		states States
		glob   string
		want   []string // "name" for entries, "+" marks the chain, "?" not selected
	}{
		{"nothing built", States{}, "*", []string{"base+", "solo+", "left+", "right+", "top+", "leaf+"}},
		{"select a leaf pulls its chain", States{}, "*leaf*", []string{"base+?", "solo+?", "left+?", "right+?", "top+?", "leaf+"}},
		{"recursion stops at a built image", States{"top": built}, "*leaf:*", []string{"leaf+"}},
		{"built parent of a to_build selection", States{"left": built}, "example.org/ns/top:1", []string{"base+?", "solo+?", "right+?", "top+"}},
		{"selected but built", States{"solo": built}, "*/solo:*", []string{"solo"}},
		{"glob matches nothing", States{}, "nothing", nil},
		{"error state is not built", States{"base": {Error, CodeCheckFailed, "boom"}}, "*/left:*", []string{"left+"}},
		{"character class", States{}, "*/[lr]ight:*", []string{"base+?", "right+"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			plan, err := tree.plan(tt.states, tt.glob)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			var chain []string
			for _, e := range plan.Entries {
				s := e.Image.Name
				if e.Build {
					s += "+"
					chain = append(chain, e.Image.Name)
				}
				if !e.Selected {
					s += "?"
				}
				got = append(got, s)
				if want, ok := tt.states[e.Image.Name]; ok && e.Assessment != want {
					t.Errorf("%s: Assessment = %+v, want %+v", e.Image.Name, e.Assessment, want)
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Plan() = %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(names(plan.Chain()), append([]string{}, chain...)) {
				t.Errorf("Chain() = %v, want %v", names(plan.Chain()), chain)
			}
		})
	}
	if _, err := tree.plan(States{}, "[z-a]"); !errors.Is(err, ErrBadPattern) {
		t.Errorf("Plan() with a bad pattern: error = %v, want ErrBadPattern", err)
	}
}

func TestPlanFixtures(t *testing.T) {
	cfg, err := config.LoadFiles("", "../fixtures/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tree, err := scanTree(context.Background(), "../fixtures/images", cfg, image.Naming{Namespace: cfg.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	states, err := assessWith(context.Background(), builderFor(t, tree, cfg), sources{local: in("docker-pkg-fixtures/core:1.2.0-1", "docker-pkg-fixtures/tools:4.2.0-1")})
	if err != nil {
		t.Fatal(err)
	}
	plan, err := tree.plan(states, "*")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"build-tools", "runtime", "app", "ci-runner", "app-plugin"}
	if got := names(plan.Chain()); !reflect.DeepEqual(got, want) {
		t.Errorf("Chain() = %v, want %v", got, want)
	}
	if got := len(plan.Entries); got != 7 {
		t.Errorf("len(Entries) = %d, want all 7 images", got)
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pattern string
		label   string
		want    bool
	}{
		{"*", "reg.example.org:5000/ns/node20:20.11.0-1", true},
		{"*node*", "reg.example.org/ns/node20:20.11.0-1", true},
		{"*/node20:*", "reg.example.org/ns/node20:20.11.0-1", true},
		{"*/node2?:*", "ns/node20:1", true},
		{"*/node2?:*", "ns/node200:1", false},
		{"ns/node20:1", "ns/node20:1", true},
		{"ns/node20", "ns/node20:1", false},
		{"ns/node[0-9]*", "ns/node20:1", true},
		{"ns/node[!0-9]*", "ns/node20:1", false},
		{"ns/node[!0-9]*", "ns/nodejs:1", true},
		{"ns/[^n]*", "ns/^x:1", true},
		{"ns/[]x]*", "ns/]:1", true},
		{"ns/node[", "ns/node[", true},
		{"ns/a.b", "ns/axb", false},
		{"ns/a+b", "ns/a+b", true},
	}
	for _, tt := range tests {
		t.Run(tt.pattern+" "+tt.label, func(t *testing.T) {
			match, err := Glob(tt.pattern)
			if err != nil {
				t.Fatal(err)
			}
			if got := match(tt.label); got != tt.want {
				t.Errorf("Glob(%q)(%q) = %v, want %v", tt.pattern, tt.label, got, tt.want)
			}
		})
	}
	if _, err := Glob("[z-a]"); err == nil || !strings.Contains(err.Error(), `malformed --select pattern "[z-a]"`) {
		t.Errorf("Glob([z-a]) error = %v", err)
	}
}
