package report

import (
	"bytes"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"slices"
	"strings"
	"time"
)

//go:embed page.html.tmpl
var pageTemplate string

// Timeline geometry, in pixels.
const (
	tlLabelW  = 120 // lane names
	tlPlotW   = 1000
	tlAxisH   = 26
	tlLaneH   = 28
	tlBarH    = 20
	tlMaxTick = 12
	tlRight   = 16
)

// maxFailures is how many failed images the header names.
const maxFailures = 10

// The view of a Run that the template draws: every string already final,
// every number a coordinate.
type page struct {
	Title        string
	Started      string
	Wall         string
	Counts       []countView
	Critical     []string
	CritTime     string
	Graph        graphView
	Timeline     timelineView
	Images       []imageView
	Legend       []countView
	Failures     []imageView // the first maxFailures failed images
	MoreFailures int         // and how many more failed
	LaneCount    int
}

type countView struct {
	Result string
	Class  string
	N      int
}

type graphView struct {
	W, H         string
	ZoomW, ZoomH string // the size shown: a small graph is drawn larger
	Nodes        []nodeView
	Edges        []edgeView
}

type nodeView struct {
	ID, Row         int
	X, Y, W, H      string
	TX, TY          string
	Text, Title     string
	Class           string
	Crit            bool
	Parents, Childs string // node ids, space-separated, for the hover script
}

type edgeView struct {
	From, To int
	Path     string
	Crit     bool
}

type timelineView struct {
	W, H  string
	LaneH string
	Lanes []laneView
	Bars  []barView
	Ticks []tickView
	Links []string // paths joining consecutive critical-path bars
}

type laneView struct {
	Name, Summary string
	Y, TY         string
	Odd           bool
}

type barView struct {
	Row                int
	X, Y, W, H, TX, TY string
	Text, Title, Class string
	Crit               bool
}

type tickView struct {
	X, Label string
}

type imageView struct {
	Row                   int
	Name, Label           string
	LabelParts            []string // Label cut after each / and :, where it may wrap
	Result, Class, Stage  string
	Reason, Lane          string
	Start, Duration, Size string
	Digest, DigestShort   string
	Log                   []string
	Open, Crit            bool
}

// resultClass maps a result to its CSS class; results the page does not
// know share one.
func resultClass(res string) string {
	if slices.Contains(knownResults(), res) {
		return "r-" + res
	}
	return "r-other"
}

// WriteHTML writes the Run as one self-contained HTML page.
func WriteHTML(w io.Writer, r *Run) error {
	g, err := newGraph(r)
	if err != nil {
		return fmt.Errorf("writing HTML report: %w", err)
	}
	p := buildPage(r, g)
	t, err := template.New("page").Parse(pageTemplate)
	if err != nil {
		return fmt.Errorf("parsing page.html.tmpl: %w", err)
	}
	// Rendered whole first: an error leaves w untouched.
	var b bytes.Buffer
	if err := t.Execute(&b, p); err != nil {
		return fmt.Errorf("writing HTML report: %w", err)
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing HTML report: %w", err)
	}
	return nil
}

func buildPage(r *Run, g *graph) *page {
	crit := criticalPath(r, g)
	onCrit := make([]bool, len(r.Images))
	var critTime time.Duration
	for _, i := range crit {
		onCrit[i] = true
		critTime += r.Images[i].Duration()
	}
	wall := wallTime(r)
	p := &page{
		Title:    r.Title,
		Wall:     humanDuration(wall),
		Critical: names(r, crit),
		CritTime: humanDuration(critTime),
	}
	if p.Title == "" {
		p.Title = "docker-pkg build"
	}
	if !r.Started.IsZero() {
		p.Started = r.Started.UTC().Format("2006-01-02 15:04:05 UTC")
	}
	for _, c := range Counts(r) {
		p.Counts = append(p.Counts, countView{Result: c.Result, Class: resultClass(c.Result), N: c.N})
	}
	for _, res := range knownResults() {
		p.Legend = append(p.Legend, countView{Result: res, Class: resultClass(res)})
	}

	// The graph.
	lay := layoutGraph(r, g)
	// A small tree would look lost at the size that keeps 200 images at a
	// glance: draw it up to 1.4 times larger, no wider than the timeline.
	zoom := min(1.4, max(1, (tlLabelW+tlPlotW)/lay.Width))
	p.Graph = graphView{W: num(lay.Width), H: num(lay.Height), ZoomW: num(lay.Width * zoom), ZoomH: num(lay.Height * zoom)}
	critEdge := map[[2]int]bool{}
	for k := 1; k < len(crit); k++ {
		critEdge[[2]int{crit[k-1], crit[k]}] = true
	}
	for _, e := range lay.Edges {
		p.Graph.Edges = append(p.Graph.Edges, edgeView{From: e.From, To: e.To, Path: e.Path, Crit: critEdge[[2]int{e.From, e.To}]})
	}
	ids := func(l []int) string {
		s := make([]string, len(l))
		for k, i := range l {
			s[k] = fmt.Sprint(i)
		}
		return strings.Join(s, " ")
	}
	for _, i := range g.order {
		nd, im := lay.Nodes[i], &r.Images[i]
		title := im.Label
		if title == "" {
			title = im.Name
		}
		title += "\n" + im.Result
		if im.Built() {
			title += " in " + humanDuration(im.Duration())
		}
		if im.Reason != "" {
			title += "\n" + im.Reason
		}
		p.Graph.Nodes = append(p.Graph.Nodes, nodeView{
			ID: i, Row: i,
			X: num(nd.X), Y: num(nd.Y), W: num(nd.W), H: num(nd.H),
			TX: num(nd.X + nodePadX), TY: num(nd.Y + nd.H/2 + nodeFont*0.36),
			Text: nd.Text, Title: title, Class: resultClass(im.Result), Crit: onCrit[i],
			Parents: ids(g.parents[i]), Childs: ids(g.children[i]),
		})
	}

	// The timeline.
	ls := lanes(r)
	p.LaneCount = len(ls)
	tl := timelineView{LaneH: num(tlLaneH)}
	tl.W = num(tlLabelW + tlPlotW + tlRight)
	tl.H = num(tlAxisH + float64(len(ls))*tlLaneH + 6)
	scale := 0.0
	if wall > 0 {
		scale = tlPlotW / wall.Seconds()
	}
	xOf := func(t time.Time) float64 { return tlLabelW + t.Sub(r.Started).Seconds()*scale }
	if wall > 0 {
		step := tickStep(wall, tlMaxTick)
		for d := time.Duration(0); d <= wall; d += step {
			tl.Ticks = append(tl.Ticks, tickView{X: num(tlLabelW + d.Seconds()*scale), Label: tickLabel(d)})
		}
	}
	laneSum := Lanes(r)
	laneY := map[string]float64{}
	for k, l := range ls {
		y := tlAxisH + float64(k)*tlLaneH
		laneY[l] = y
		s := laneSum[k]
		tl.Lanes = append(tl.Lanes, laneView{
			Name: l, Y: num(y), TY: num(y + tlLaneH/2 + 4), Odd: k%2 == 1,
			Summary: fmt.Sprintf("%s: %d images, busy %s (%.0f%%)", l, s.Images, humanDuration(s.Busy), 100*s.Utilisation),
		})
	}
	type box struct{ x1, x2, y float64 }
	bars := map[int]box{}
	for _, i := range g.order {
		im := &r.Images[i]
		y, ok := laneY[im.Lane]
		if !im.Built() || !ok {
			continue
		}
		x1, x2 := xOf(im.Start), xOf(im.End)
		w := max(x2-x1, 2)
		by := y + (tlLaneH-tlBarH)/2
		bars[i] = box{x1, x1 + w, by + tlBarH/2}
		b := barView{
			Row: i, X: num(x1), Y: num(by), W: num(w), H: num(tlBarH),
			TX: num(x1 + 5), TY: num(by + tlBarH/2 + 4),
			Class: resultClass(im.Result), Crit: onCrit[i],
			Title: fmt.Sprintf("%s: %s, %s–%s (%s)", im.Name, im.Result,
				clock(im.Start.Sub(r.Started)), clock(im.End.Sub(r.Started)), humanDuration(im.Duration())),
		}
		if textWidth(im.Name)+10 <= w {
			b.Text = im.Name
		}
		tl.Bars = append(tl.Bars, b)
	}
	for k := 1; k < len(crit); k++ {
		a, okA := bars[crit[k-1]]
		b, okB := bars[crit[k]]
		if okA && okB {
			tl.Links = append(tl.Links, "M"+num(a.x2)+" "+num(a.y)+" L"+num(max(b.x1, a.x2))+" "+num(b.y))
		}
	}
	p.Timeline = tl

	// The table, in tree order.
	for _, i := range g.order {
		im := &r.Images[i]
		v := imageView{
			Row: i, Name: im.Name, Label: im.Label, LabelParts: wrapPoints(im.Label), Result: im.Result, Class: resultClass(im.Result),
			Stage: im.Stage, Reason: im.Reason, Lane: im.Lane, Size: humanSize(im.Size),
			Digest: im.Digest, DigestShort: shortDigest(im.Digest), Log: im.LogTail,
			Open: im.Result == ResultFailed, Crit: onCrit[i],
		}
		if im.Built() {
			v.Start = clock(im.Start.Sub(r.Started))
			v.Duration = humanDuration(im.Duration())
		}
		p.Images = append(p.Images, v)
		if v.Result == ResultFailed {
			if len(p.Failures) < maxFailures {
				p.Failures = append(p.Failures, v)
			} else {
				p.MoreFailures++
			}
		}
	}
	return p
}

// wrapPoints cuts a label after each "/" and ":", the places where a long
// label may wrap.
func wrapPoints(label string) []string {
	var out []string
	for label != "" {
		i := strings.IndexAny(label, "/:")
		if i < 0 {
			return append(out, label)
		}
		out = append(out, label[:i+1])
		label = label[i+1:]
	}
	return out
}
