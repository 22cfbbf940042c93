package report

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// chain makes built images from "name:parent,parent:start:end" specs.
func chain(specs ...string) *Run {
	r := &Run{Started: t0, Lanes: []string{"slot 1"}}
	for _, s := range specs {
		f := strings.Split(s, ":")
		im := Image{Name: f[0], Result: ResultVerified}
		if f[1] != "" {
			im.Parents = strings.Split(f[1], ",")
		}
		if f[2] != "" {
			var start, end float64
			mustScan(f[2], &start)
			mustScan(f[3], &end)
			im.Lane, im.Start, im.End = "slot 1", at(start), at(end)
		} else {
			im.Result = ResultUpToDate
		}
		r.Images = append(r.Images, im)
	}
	return r
}

func mustScan(s string, v *float64) {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		panic(err)
	}
}

func TestCriticalPath(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  *Run
		want []string
	}{
		{"empty", &Run{}, nil},
		{"nothing built", chain("a::", "b:a::"), nil},
		{"one", chain("a::0:5"), []string{"a"}},
		{"linear", chain("a::0:5", "b:a:5:6", "c:b:6:20"), []string{"a", "b", "c"}},
		{
			// b is longer than c, but c's child d makes c's chain longest.
			"longest by sum",
			chain("a::0:1", "b:a:1:30", "c:a:1:20", "d:c:20:40"),
			[]string{"a", "c", "d"},
		},
		{
			"two parents: the longer chain",
			chain("a::0:10", "b::0:3", "c:a,b:10:12"),
			[]string{"a", "c"},
		},
		{
			"an unbuilt parent breaks the chain",
			chain("a::0:10", "b:a::", "c:b:10:12"),
			[]string{"a"},
		},
		{
			"ties go to the first in Images",
			chain("a::0:10", "b::0:10"),
			[]string{"a"},
		},
		{
			"unknown parents are ignored",
			chain("a:outside:0:10"),
			[]string{"a"},
		},
		{
			"fixtures", fixtureRun(),
			[]string{"core", "build-tools", "ci-runner"},
		},
		{"cycle", chain("a:b:0:1", "b:a:1:2"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := CriticalPath(tc.run); !slices.Equal(got, tc.want) {
				t.Errorf("CriticalPath = %q, want %q", got, tc.want)
			}
		})
	}
}

// A Run listed children first still gets a parents-first order.
func TestCriticalPathOrder(t *testing.T) {
	r := chain("c:b:6:20", "b:a:5:6", "a::0:5")
	if got, want := CriticalPath(r), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Errorf("CriticalPath = %q, want %q", got, want)
	}
}

func TestInvalidRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  *Run
		want string
	}{
		{"duplicate", chain("a::0:1", "a::1:2"), `both named "a"`},
		{"cycle", chain("a:c:0:1", "b:a:1:2", "c:b:2:3"), "cycle among [a b c]"},
		{"no name", &Run{Images: []Image{{Result: ResultVerified}}}, "has no name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, write := range []func(*bytes.Buffer, *Run) error{
				func(b *bytes.Buffer, r *Run) error { return WriteHTML(b, r) },
				func(b *bytes.Buffer, r *Run) error { return WriteJSON(b, r) },
			} {
				err := write(&bytes.Buffer{}, tc.run)
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("err = %v, want ErrInvalid saying %q", err, tc.want)
				}
			}
		})
	}
}

// TestLayout checks the graph of runs up to 200 images in 8 levels: no two
// nodes overlap, every label fits its node, every node is inside the
// picture, and every edge goes left to right.
func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  *Run
	}{
		{"fixtures", fixtureRun()},
		{"200 images, 8 levels", bigRun(200, 8, 6, 1)},
		{"200 images, 8 levels, other seed", bigRun(200, 8, 3, 7)},
		{"200 images, 2 levels", bigRun(200, 2, 4, 3)},
		{"500 images, 12 levels", bigRun(500, 12, 8, 5)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := newGraph(tc.run)
			if err != nil {
				t.Fatal(err)
			}
			lay := layoutGraph(tc.run, g)
			if len(lay.Nodes) != len(tc.run.Images) {
				t.Fatalf("%d nodes for %d images", len(lay.Nodes), len(tc.run.Images))
			}
			for i, a := range lay.Nodes {
				if a.Index != i || a.W <= 0 || a.H <= 0 {
					t.Fatalf("node %d is not laid out: %+v", i, a)
				}
				if a.X < 0 || a.Y < 0 || a.X+a.W > lay.Width || a.Y+a.H > lay.Height {
					t.Errorf("node %s at %v,%v %vx%v is outside the %vx%v picture", a.Text, a.X, a.Y, a.W, a.H, lay.Width, lay.Height)
				}
				if textWidth(a.Text)+2*nodePadX > a.W {
					t.Errorf("label %q is wider than its node", a.Text)
				}
				for _, b := range lay.Nodes[i+1:] {
					if a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
						t.Errorf("nodes %s and %s overlap", a.Text, b.Text)
					}
				}
			}
			for _, e := range lay.Edges {
				from, to := lay.Nodes[e.From], lay.Nodes[e.To]
				if from.X+from.W >= to.X {
					t.Errorf("edge %s -> %s does not go left to right", from.Text, to.Text)
				}
			}
			// No endless column: a crowded level spreads over columns.
			perX := map[float64]int{}
			for _, n := range lay.Nodes {
				perX[n.X]++
			}
			for x, k := range perX {
				if k > maxRows(len(lay.Nodes)) {
					t.Errorf("column at x=%v holds %d nodes, more than %d", x, k, maxRows(len(lay.Nodes)))
				}
			}
			if len(tc.run.Images) == 200 && lay.Height > 700 {
				t.Errorf("a 200-image graph is %v px tall", lay.Height)
			}
		})
	}
}

func TestLayoutLevels(t *testing.T) {
	r := chain("a::0:1", "b:a:1:2", "c:a,b:2:3", "d::0:1")
	g, err := newGraph(r)
	if err != nil {
		t.Fatal(err)
	}
	lay := layoutGraph(r, g)
	var levels []int
	for _, n := range lay.Nodes {
		levels = append(levels, n.Level)
	}
	if want := []int{0, 1, 2, 0}; !slices.Equal(levels, want) {
		t.Errorf("levels = %v, want %v", levels, want)
	}
}

func writeHTML(t *testing.T, r *Run) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestEscaping(t *testing.T) {
	const attack = "</script><script>alert(1)</script>"
	r := fixtureRun()
	r.Title = `<img src=x onerror=alert(2)>`
	r.Lanes[0] = `slot "1" <u>`
	for i := range r.Images {
		if r.Images[i].Lane == "slot 1" {
			r.Images[i].Lane = r.Lanes[0]
		}
	}
	r.Images[5].Name = `legacy"><svg onload=alert(3)>`
	r.Images[7].Parents = []string{r.Images[5].Name}
	r.Images[5].LogTail = append(r.Images[5].LogTail, attack, `<!-- comment`, `]]>`)
	r.Images[5].Reason = `<iframe src="javascript:alert(4)">`
	r.Images[5].Digest = `sha256:"><script>alert(5)</script>`
	out := writeHTML(t, r)

	if n := strings.Count(out, "<script"); n != 1 {
		t.Errorf("page has %d <script, want only its own", n)
	}
	for _, bad := range []string{"alert(1)</script>", "<img src=x", "<svg onload", "<iframe", "<!-- comment", "<u>"} {
		if strings.Contains(out, bad) {
			t.Errorf("page contains %q unescaped", bad)
		}
	}
	for _, want := range []string{
		"&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;",
		"&lt;img src=x onerror=alert(2)&gt;",
		`data-image="legacy&#34;&gt;&lt;svg onload=alert(3)&gt;"`,
		`data-lane="slot &#34;1&#34; &lt;u&gt;"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %s", want)
		}
	}
}

// TestSelfContained: nothing in the page names anything outside it.
func TestSelfContained(t *testing.T) {
	out := writeHTML(t, bigRun(200, 8, 6, 1))
	for _, re := range []string{`://`, `(?i)\bsrc\s*=`, `(?i)url\(`, `(?i)@import`, `(?i)<link`, `(?i)\bimport\(`} {
		if m := regexp.MustCompile(re).FindString(out); m != "" {
			t.Errorf("page contains %q: a reference outside the page?", m)
		}
	}
}

func TestDeterministic(t *testing.T) {
	a := writeHTML(t, fixtureRun())
	if b := writeHTML(t, fixtureRun()); a != b {
		t.Error("two writes of the same run differ")
	}
	// The same run seen from another time zone: only times relative to
	// the start are shown, and the start in UTC.
	r := fixtureRun()
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	r.Started, r.Finished = r.Started.In(loc), r.Finished.In(loc)
	for i := range r.Images {
		r.Images[i].Start, r.Images[i].End = r.Images[i].Start.In(loc), r.Images[i].End.In(loc)
	}
	if b := writeHTML(t, r); a != b {
		t.Error("the run in another time zone reads differently")
	}
}

func TestPageContent(t *testing.T) {
	out := writeHTML(t, fixtureRun())
	for _, want := range []string{
		`<b>5</b>verified`, `<b>1</b>failed`, `<b>1</b>skipped`, `<b>1</b>up-to-date`,
		"wall time <b>1m36s</b>",
		`core → build-tools → ci-runner`,
		`<code title="sha256:`, // full digest on hover
		`88.4MB`, `34s`, `0:53`,
		`<details class="r-failed" open>`,
		`legacy-app: self-test FAILED`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(out, "<details"); n != 6 {
		t.Errorf("%d log tails, want one per built image (6)", n)
	}
	if n := strings.Count(out, " open>"); n != 1 {
		t.Errorf("%d log tails open, want the failed one's only", n)
	}
	if !regexp.MustCompile(`>sha256:[0-9a-f]{12}</code>`).MatchString(out) {
		t.Error("no short digest")
	}
}

func TestJSONRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  *Run
	}{
		{"fixtures", fixtureRun()},
		{"200 images", bigRun(200, 8, 6, 1)},
		{"empty", &Run{Title: "nothing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteJSON(&b, tc.run); err != nil {
				t.Fatal(err)
			}
			got, err := ReadJSON(bytes.NewReader(b.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalise(got), normalise(tc.run)) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v", got, tc.run)
			}
			var again bytes.Buffer
			if err := WriteJSON(&again, got); err != nil {
				t.Fatal(err)
			}
			if again.String() != b.String() {
				t.Error("the JSON of the read run differs from the JSON written")
			}
		})
	}
}

// normalise makes Runs comparable with DeepEqual: times in UTC without a
// monotonic reading, empty lists nil.
func normalise(r *Run) *Run {
	c := *r
	c.Started, c.Finished = c.Started.UTC().Round(0), c.Finished.UTC().Round(0)
	c.Lanes = slices.Clip(nilIfEmpty(c.Lanes))
	c.Images = nil
	for _, im := range r.Images {
		im.Start, im.End = im.Start.UTC().Round(0), im.End.UTC().Round(0)
		im.Parents, im.LogTail = nilIfEmpty(im.Parents), nilIfEmpty(im.LogTail)
		c.Images = append(c.Images, im)
	}
	return &c
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestJSONDerived(t *testing.T) {
	var b bytes.Buffer
	if err := WriteJSON(&b, fixtureRun()); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Wall         float64  `json:"wall_seconds"`
		CriticalPath []string `json:"critical_path"`
		CritSeconds  float64  `json:"critical_path_seconds"`
		Counts       []Count  `json:"counts"`
		Lanes        []struct {
			Lane   string  `json:"lane"`
			Images int     `json:"images"`
			Busy   float64 `json:"busy_seconds"`
			Util   float64 `json:"utilisation"`
		} `json:"lane_summary"`
		Images []struct {
			Name     string  `json:"name"`
			Start    float64 `json:"start_seconds"`
			Duration float64 `json:"duration_seconds"`
		} `json:"images"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Wall != 96.4 {
		t.Errorf("wall_seconds = %v", doc.Wall)
	}
	if want := []string{"core", "build-tools", "ci-runner"}; !slices.Equal(doc.CriticalPath, want) {
		t.Errorf("critical_path = %q, want %q", doc.CriticalPath, want)
	}
	if doc.CritSeconds != 89 {
		t.Errorf("critical_path_seconds = %v", doc.CritSeconds)
	}
	if want := []Count{{"verified", 5}, {"failed", 1}, {"skipped", 1}, {"up-to-date", 1}}; !slices.Equal(doc.Counts, want) {
		t.Errorf("counts = %v, want %v", doc.Counts, want)
	}
	if len(doc.Lanes) != 2 || doc.Lanes[0].Lane != "slot 1" || doc.Lanes[0].Images != 4 || doc.Lanes[1].Images != 2 || doc.Lanes[1].Busy != 52.3 || doc.Lanes[1].Util != 0.543 {
		t.Errorf("lane_summary = %+v", doc.Lanes)
	}
	if im := doc.Images[2]; im.Name != "runtime" || im.Start != 18.9 || im.Duration != 22.1 {
		t.Errorf("images[2] = %+v", im)
	}
}

// An image on a lane the Run does not list still shows, on a lane of its own.
func TestExtraLane(t *testing.T) {
	r := chain("a::0:1", "b::0:2")
	r.Images[1].Lane = "bk2"
	ls := Lanes(r)
	if len(ls) != 2 || ls[1].Lane != "bk2" || ls[1].Images != 1 {
		t.Errorf("Lanes = %+v", ls)
	}
	if out := writeHTML(t, r); !strings.Contains(out, `data-lane="bk2"`) {
		t.Error("lane bk2 not on the page")
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{humanSize(0), ""},
		{humanSize(999), "999B"},
		{humanSize(12_345_678), "12.3MB"},
		{humanSize(5_870_112), "5.87MB"},
		{humanSize(131_072_000), "131MB"},
		{humanSize(2_500_000_000), "2.50GB"},
		{humanDuration(850 * time.Millisecond), "850ms"},
		{humanDuration(4200 * time.Millisecond), "4.2s"},
		{humanDuration(18300 * time.Millisecond), "18s"},
		{humanDuration(65 * time.Second), "1m05s"},
		{humanDuration(62*time.Minute + 20*time.Second), "1h02m"},
		{clock(53 * time.Second), "0:53"},
		{clock(3723 * time.Second), "1:02:03"},
		{shortDigest("sha256:5aad6d223a31e2d4c0fb2d7f3e0a7c1b5f8f1e2d"), "sha256:5aad6d223a31"},
		{shortDigest("sha256:abc"), "sha256:abc"},
		{tickLabel(0), "0"},
		{tickLabel(1500 * time.Millisecond), "1.5s"},
		{tickLabel(30 * time.Second), "30s"},
		{tickLabel(time.Minute), "1m"},
		{tickLabel(90 * time.Second), "1m30s"},
		{tickLabel(2*time.Hour + 15*time.Minute), "2h15m"},
		{tickStep(96*time.Second, 12).String(), "10s"},
		{tickStep(12*time.Minute, 12).String(), "1m0s"},
		{tickStep(3*time.Second, 12).String(), "500ms"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// Runs with missing pieces still make a page and a JSON document.
func TestSparseRuns(t *testing.T) {
	backwards := chain("a::5:1")
	noStart := chain("a::0:3")
	noStart.Started = time.Time{}
	for _, tc := range []struct {
		name string
		run  *Run
	}{
		{"empty", &Run{}},
		{"no lanes", &Run{Images: []Image{{Name: "a", Result: ResultUpToDate}}}},
		{"end before start", backwards},
		{"no start", noStart},
		{"unknown result", &Run{Images: []Image{{Name: "a", Result: "exploded"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := writeHTML(t, tc.run)
			for _, im := range tc.run.Images {
				if !strings.Contains(out, `data-image="`+im.Name+`"`) {
					t.Errorf("image %s missing", im.Name)
				}
			}
			if err := WriteJSON(&bytes.Buffer{}, tc.run); err != nil {
				t.Error(err)
			}
		})
	}
}
