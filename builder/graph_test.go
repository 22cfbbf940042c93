package builder

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/image"
)

// diamond: base <- left, right <- top; top also uses solo in its template;
// leaf depends on top.
func diamond(t *testing.T) *Tree {
	t.Helper()
	root := writeTree(t,
		img("base", "base", "1", "debian", `FROM {{ "debian" | image_tag }}`),
		img("left", "left", "1", "base", ""),
		img("right", "right", "1", "base, alpine", ""),
		img("top", "top", "1", "right, left", `FROM {{ "solo" | image_tag }}`),
		img("solo", "solo", "1", "", ""),
		img("leaf", "leaf", "1", "top", ""),
	)
	tree, err := scanTree(context.Background(), root, testConfig(), image.Naming{Registry: "example.org", Namespace: "ns"})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestGraph(t *testing.T) {
	tree := diamond(t)
	if got, want := names(tree.Images), []string{"base", "solo", "left", "right", "top", "leaf"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Images = %v, want %v", got, want)
	}
	tests := []struct {
		name string
		got  func(string) []*image.Image
		of   string
		want []string
	}{
		{"parents", tree.Parents, "top", []string{"left", "right", "solo"}},
		{"parents of a root", tree.Parents, "base", []string{}},
		{"descendants", tree.Descendants, "base", []string{"left", "right", "top", "leaf"}},
		{"descendants through a template edge", tree.Descendants, "solo", []string{"top", "leaf"}},
		{"unknown image", tree.Descendants, "nope", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(tt.got(tt.of)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("%s(%s) = %v, want %v", tt.name, tt.of, got, tt.want)
			}
		})
	}
	levels := map[string]int{"base": 1, "solo": 1, "left": 2, "right": 2, "top": 3, "leaf": 4, "nope": 0}
	for name, want := range levels {
		if got := tree.Level(name); got != want {
			t.Errorf("Level(%s) = %d, want %d", name, got, want)
		}
	}
	wantEdges := []Edge{
		{"base", "left", false}, {"base", "right", false},
		{"left", "top", false}, {"right", "top", false}, {"solo", "top", true},
		{"top", "leaf", false},
	}
	if got := tree.Edges(); !reflect.DeepEqual(got, wantEdges) {
		t.Errorf("Edges() = %v, want %v", got, wantEdges)
	}
	if got, want := tree.Bases("base"), []string{"example.org/ns/debian:bookworm"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Bases(base) = %v, want %v", got, want)
	}
	if got, want := tree.Bases("right"), []string{"127.0.0.1:5000/ns/alpine:3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Bases(right) = %v, want %v", got, want)
	}
}

// chain links n images in memory, each depending on the one before;
// loop makes the first depend on the last.
func chain(n int, loop bool) []scanned {
	out := make([]scanned, n)
	for i := range out {
		img := &image.Image{Name: fmt.Sprintf("img%05d", i), Version: "1", Dir: fmt.Sprintf("/t/%05d", i)}
		if i > 0 {
			img.Depends = []image.Dependency{{Name: fmt.Sprintf("img%05d", i-1)}}
		} else if loop {
			img.Depends = []image.Dependency{{Name: fmt.Sprintf("img%05d", n-1)}}
		}
		out[i] = scanned{img: img}
	}
	return out
}

func TestLongChain(t *testing.T) {
	const n = 10000
	tree := &Tree{}
	if err := tree.link(chain(n, false), nil, false, false); err != nil {
		t.Fatal(err)
	}
	last := fmt.Sprintf("img%05d", n-1)
	if got := tree.Level(last); got != n {
		t.Errorf("Level(%s) = %d, want %d", last, got, n)
	}
	if got := len(tree.Descendants("img00000")); got != n-1 {
		t.Errorf("len(Descendants(img00000)) = %d, want %d", got, n-1)
	}
	if got := tree.Images[n-1].Name; got != last {
		t.Errorf("last image = %s, want %s", got, last)
	}

	err := (&Tree{}).link(chain(n, true), nil, false, false)
	if !errors.Is(err, ErrCycle) {
		t.Fatalf("link() error = %v, want a cycle", err)
	}
	if !strings.HasPrefix(err.Error(), "dependency cycle: img00000 -> img09999 -> img09998 -> ") ||
		!strings.Contains(err.Error(), "img00001 -> img00000 (each image") {
		t.Errorf("link() error = %.200s..., want the whole cycle from img00000", err)
	}
}
