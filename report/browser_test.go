package report

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"html"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/internal/browser"
)

var screenshot = flag.Bool("screenshot", false, "write ../docs/report-example.png from the fixture-like run")

// chromium returns Debian's Chromium; missing, it skips the test, or fails
// it under CI=true (the CI set-up installs it).
func chromium(t *testing.T) *browser.Chromium {
	t.Helper()
	c, err := browser.Find()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: required)", err)
		}
		t.Skip(err)
	}
	t.Cleanup(func() { noChromiumLeft(t) })
	return c
}

// noChromiumLeft fails the test if a Chromium that package browser
// started still runs.
func noChromiumLeft(t *testing.T) {
	t.Helper()
	if left := browser.Running(); len(left) > 0 {
		t.Errorf("chromium processes %v still running", left)
	}
}

func writeHTMLFile(t *testing.T, r *Run) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	var b bytes.Buffer
	if err := WriteHTML(&b, r); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestBrowserLoadsReport loads reports in Chromium: every image and every
// lane is in the DOM, the hostile log line stays text, and the page asks
// the network for nothing.
func TestBrowserLoadsReport(t *testing.T) {
	c := chromium(t)
	hostile := fixtureRun()
	hostile.Images[5].LogTail = append(hostile.Images[5].LogTail, "</script><script>alert(1)</script>")
	hostile.Images[5].Name = "legacy<app>"
	hostile.Images[8-1].Parents = []string{"legacy<app>"}
	for _, tc := range []struct {
		name string
		run  *Run
	}{
		{"fixtures", fixtureRun()},
		{"hostile", hostile},
		{"200 images", bigRun(200, 8, 6, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			load, err := c.DumpDOM(ctx, writeHTMLFile(t, tc.run))
			if err != nil {
				t.Fatal(err)
			}
			if len(load.Requests) != 0 {
				t.Errorf("the page made network requests: %q", load.Requests)
			}
			for _, im := range tc.run.Images {
				want := `data-image="` + html.EscapeString(im.Name) + `"`
				if !strings.Contains(load.DOM, want) {
					t.Errorf("image %q is not in the DOM (no %s)", im.Name, want)
				}
			}
			for _, l := range tc.run.Lanes {
				if !strings.Contains(load.DOM, `data-lane="`+html.EscapeString(l)+`"`) {
					t.Errorf("lane %q is not in the DOM", l)
				}
			}
			if n := strings.Count(load.DOM, "<script"); n != 1 {
				t.Errorf("the DOM has %d script elements, want only the page's own", n)
			}
			if strings.Contains(load.DOM, "<script>alert(1)") {
				t.Error("a log line became a script element")
			}
			if tc.name == "hostile" && !strings.Contains(load.DOM, "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;") {
				t.Error("the hostile log line is not shown as text")
			}
		})
	}
}

// TestBrowserSeesRequests proves that the check of TestBrowserLoadsReport
// can fail: a page that fetches from a server on loopback, in all the ways
// a page can, is caught, and the server confirms the requests were real.
func TestBrowserSeesRequests(t *testing.T) {
	c := chromium(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tc := range []struct{ name, body string }{
		{"img", `<img src="` + srv.URL + `/pixel.png">`},
		{"stylesheet", `<link rel="stylesheet" href="` + srv.URL + `/style.css">`},
		{"css url", `<style>body { background: url(` + srv.URL + `/bg.png) }</style><p>x</p>`},
		{"script src", `<script src="` + srv.URL + `/app.js"></script>`},
		{"fetch", `<script>fetch("` + srv.URL + `/api")</script>`},
		{"fetch after load", `<script>setTimeout(function () { fetch("` + srv.URL + `/later") }, 1000)</script>`},
		{"websocket", `<script>new WebSocket("ws://` + host + `/ws")</script>`},
		{"iframe", `<iframe src="` + srv.URL + `/frame"></iframe>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			page := filepath.Join(t.TempDir(), "fetches.html")
			doc := "<!DOCTYPE html><html><head><title>fetches</title></head><body>" + tc.body + "</body></html>"
			if err := os.WriteFile(page, []byte(doc), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			load, err := c.DumpDOM(ctx, page)
			if err != nil {
				t.Fatal(err)
			}
			if len(load.Requests) == 0 {
				t.Errorf("no request seen in the net log; the server saw %d", hits.Load()-before)
			}
			for _, u := range load.Requests {
				if !strings.Contains(u, host) {
					t.Errorf("request %q is not the page's", u)
				}
			}
			if hits.Load() == before {
				t.Errorf("the server saw no request: the page did not fetch, the test proves nothing")
			}
		})
	}
}

// TestScreenshot writes a screenshot of the fixture-like run's report;
// with -screenshot, to ../docs/report-example.png.
func TestScreenshot(t *testing.T) {
	c := chromium(t)
	out := filepath.Join(t.TempDir(), "report.png")
	if *screenshot {
		out = filepath.Join("..", "docs", "report-example.png")
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const w, h = 1280, 1640
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.Screenshot(ctx, writeHTMLFile(t, fixtureRun()), out, w, h); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), w, h)
	}
	colours := map[string]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			colours[fmt.Sprint(img.At(x, y))] = true
		}
	}
	if len(colours) < 20 {
		t.Errorf("screenshot has %d colours: a blank page?", len(colours))
	}
}

// TestBrowserHover runs the page's script: a mouse over runtime in the
// graph marks its ancestors and descendants, and only them.
func TestBrowserHover(t *testing.T) {
	c := chromium(t)
	page := writeHTMLFile(t, fixtureRun())
	doc, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	hover := `<script>document.querySelector('.node[data-id="2"] text').dispatchEvent(new MouseEvent("mouseover", {bubbles: true}));</script></body>`
	doc = bytes.Replace(doc, []byte("</body>"), []byte(hover), 1)
	if err := os.WriteFile(page, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	load, err := c.DumpDOM(ctx, page)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`<svg id="dag"[^>]* class="focus"`).MatchString(load.DOM) {
		t.Error("the graph is not in focus after the mouse over")
	}
	near := regexp.MustCompile(`<a href="#img-\d+" class="node ([^"]*)" data-id="(\d+)"`)
	got := map[string]bool{}
	for _, m := range near.FindAllStringSubmatch(load.DOM, -1) {
		got[m[2]] = strings.Contains(" "+m[1]+" ", " near ")
	}
	// core(0) tools(1) runtime(2) build-tools(3) app(4) legacy-app(5) ci-runner(6) legacy-plugins(7)
	want := map[string]bool{"0": true, "1": false, "2": true, "3": false, "4": true, "5": true, "6": true, "7": true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("nodes marked near = %v, want %v", got, want)
	}
}
