package report

import (
	"cmp"
	"slices"
	"unicode/utf8"
)

// Graph geometry, in pixels. Node labels use a monospace font so that a
// label's width is known here without measuring text.
const (
	nodeH       = 20  // node height
	nodeGapY    = 6   // between nodes of one column
	nodePadX    = 8   // text inset on each side of a node
	nodeFont    = 11  // px
	charW       = 6.8 // upper bound of one monospace character at nodeFont px
	maxLabel    = 28  // characters shown in a node; longer names end in "…"
	minNodeW    = 48
	levelGapX   = 56 // between levels: room for the edges
	subColGapX  = 14 // between the columns of one crowded level
	graphMargin = 12
)

// node is one image's box in the graph.
type node struct {
	Index      int // into Run.Images
	Level      int
	X, Y, W, H float64
	Text       string // the name, shortened to maxLabel characters
}

// edge is a parent-to-child link, drawn from the parent's right side to
// the child's left side.
type edge struct {
	From, To int // into Run.Images
	Path     string
}

// layout is the dependency graph laid out in levels, left to right.
type layout struct {
	Nodes         []node // by index into Run.Images
	Edges         []edge
	Width, Height float64
}

// maxRows is how many nodes one column holds before a level spreads over
// several columns: about square for big trees, never below 12.
func maxRows(n int) int {
	rows := 12
	for rows*rows < 3*n {
		rows++
	}
	return rows
}

// layoutGraph lays out the graph in levels: an image's level is one more
// than its parents' highest, level 0 holds images without parents. Images
// in a level are ordered to keep edges short (barycentre of their parents,
// then of their children), and a level with more than maxRows images is
// split into several adjacent columns.
func layoutGraph(r *Run, g *graph) layout {
	n := len(r.Images)
	lay := layout{Nodes: make([]node, n)}
	if n == 0 {
		return lay
	}
	level := make([]int, n)
	nLevels := 0
	for _, i := range g.order {
		for _, p := range g.parents[i] {
			level[i] = max(level[i], level[p]+1)
		}
		nLevels = max(nLevels, level[i]+1)
	}
	byLevel := make([][]int, nLevels)
	for _, i := range g.order {
		byLevel[level[i]] = append(byLevel[level[i]], i)
	}

	// Order within levels: a few sweeps of the barycentre heuristic, down
	// by parents then up by children. Positions are ranks within a level,
	// scaled to 0..1 so that levels of different sizes compare.
	pos := make([]float64, n)
	rank := func(l int) {
		for k, i := range byLevel[l] {
			pos[i] = (float64(k) + 0.5) / float64(len(byLevel[l]))
		}
	}
	for l := range byLevel {
		rank(l)
	}
	sortBy := func(l int, nb [][]int) {
		bary := make(map[int]float64, len(byLevel[l]))
		for _, i := range byLevel[l] {
			if len(nb[i]) == 0 {
				bary[i] = pos[i]
				continue
			}
			s := 0.0
			for _, j := range nb[i] {
				s += pos[j]
			}
			bary[i] = s / float64(len(nb[i]))
		}
		slices.SortStableFunc(byLevel[l], func(a, b int) int { return cmp.Compare(bary[a], bary[b]) })
		rank(l)
	}
	for range 4 {
		for l := 1; l < nLevels; l++ {
			sortBy(l, g.parents)
		}
		for l := nLevels - 2; l >= 0; l-- {
			sortBy(l, g.children)
		}
	}

	// Geometry: each level is one or more columns of at most maxRows
	// nodes, each column as wide as its widest label, and centred
	// vertically on the tallest column.
	rows := maxRows(n)
	tallest := 0
	for _, ids := range byLevel {
		tallest = max(tallest, min(len(ids), rows))
	}
	colH := func(k int) float64 { return float64(k)*(nodeH+nodeGapY) - nodeGapY }
	x := float64(graphMargin)
	for l, ids := range byLevel {
		if l > 0 {
			x += levelGapX - subColGapX
		}
		cols := (len(ids) + rows - 1) / rows
		per := (len(ids) + cols - 1) / cols // spread evenly over the columns
		for c := 0; c < cols; c++ {
			col := ids[c*per : min(len(ids), (c+1)*per)]
			w := float64(minNodeW)
			for _, i := range col {
				w = max(w, textWidth(shorten(r.Images[i].Name))+2*nodePadX)
			}
			y := graphMargin + (colH(tallest)-colH(len(col)))/2
			for k, i := range col {
				lay.Nodes[i] = node{
					Index: i, Level: l, Text: shorten(r.Images[i].Name),
					X: x, Y: y + float64(k)*(nodeH+nodeGapY), W: w, H: nodeH,
				}
			}
			x += w + subColGapX
		}
	}
	lay.Width = x - subColGapX + graphMargin
	lay.Height = colH(tallest) + 2*graphMargin

	for _, i := range g.order {
		for _, p := range g.parents[i] {
			a, b := lay.Nodes[p], lay.Nodes[i]
			x1, y1 := a.X+a.W, a.Y+a.H/2
			x2, y2 := b.X, b.Y+b.H/2
			dx := max((x2-x1)/2, 20)
			lay.Edges = append(lay.Edges, edge{From: p, To: i, Path: "M" + num(x1) + " " + num(y1) +
				" C" + num(x1+dx) + " " + num(y1) + " " + num(x2-dx) + " " + num(y2) + " " + num(x2) + " " + num(y2)})
		}
	}
	return lay
}

// shorten cuts a name to maxLabel characters, the last one "…".
func shorten(s string) string {
	if utf8.RuneCountInString(s) <= maxLabel {
		return s
	}
	r := []rune(s)
	return string(r[:maxLabel-1]) + "…"
}

func textWidth(s string) float64 { return float64(utf8.RuneCountInString(s)) * charW }
