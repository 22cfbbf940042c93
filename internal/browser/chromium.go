package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// profilePrefix starts the name of every run's profile directory: with
// this process's ID, so that Running tells this process's runs from
// others'.
func profilePrefix() string { return "chromium-profile-" + strconv.Itoa(os.Getpid()) + "-" }

// ErrNotFound is returned by Find when no Chromium is installed.
var ErrNotFound = errors.New("chromium not found (Debian: apt-get install chromium)")

// Chromium is one Chromium binary.
type Chromium struct {
	Path string
	// Timeout bounds each run; 0 means 60 seconds.
	Timeout time.Duration
}

// Find returns the Chromium named by $CHROMIUM, else the first of
// chromium and chromium-browser in $PATH.
func Find() (*Chromium, error) {
	names := []string{"chromium", "chromium-browser"}
	if p := os.Getenv("CHROMIUM"); p != "" {
		names = []string{p}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return &Chromium{Path: p}, nil
		}
	}
	return nil, ErrNotFound
}

// flags are those every run needs on a machine without a network, as root
// and without a GPU: no sandbox (root), and none of the browser's own
// background connections (updates, sync, sign-in), which would fail or
// hang.
func flags(profile string) []string {
	return []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
		"--disable-crash-reporter", "--disable-breakpad",
		"--user-data-dir=" + profile,
	}
}

// Load is what a page did when Chromium loaded it.
type Load struct {
	DOM string // the document after the load event, serialised
	// Requests are the URLs of every http, https, ws or wss request the
	// page made (the browser's own background requests are not counted).
	Requests []string
}

// DumpDOM loads the local HTML file page and returns its DOM and the
// network requests it made.
func (c *Chromium) DumpDOM(ctx context.Context, page string) (*Load, error) {
	url, err := fileURL(page)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "chromium-netlog-")
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", page, err)
	}
	defer os.RemoveAll(tmp)
	netlog := filepath.Join(tmp, "netlog.json")
	// The virtual time budget lets the page's timers and pending requests
	// run before the dump, a few seconds of the page's time but only as
	// long as it takes: requests made after the load event count too.
	out, err := c.run(ctx, "--log-net-log="+netlog, "--virtual-time-budget=5000", "--dump-dom", url)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", page, err)
	}
	data, err := os.ReadFile(netlog)
	if err != nil {
		return nil, fmt.Errorf("loading %s: reading the net log: %w", page, err)
	}
	reqs, err := PageRequests(data)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", page, err)
	}
	return &Load{DOM: string(out), Requests: reqs}, nil
}

// Screenshot loads the local HTML file page in a window of width x height
// CSS pixels and writes what the window shows as a PNG to png.
func (c *Chromium) Screenshot(ctx context.Context, page, png string, width, height int) error {
	url, err := fileURL(page)
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(png)
	if err != nil {
		return fmt.Errorf("screenshot of %s: %w", page, err)
	}
	_ = os.Remove(abs) // so that a PNG afterwards is this run's
	if _, err := c.run(ctx, "--hide-scrollbars", "--force-device-scale-factor=1",
		"--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height),
		"--screenshot="+abs, url); err != nil {
		return fmt.Errorf("screenshot of %s: %w", page, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("screenshot of %s: chromium wrote no %s", page, abs)
	}
	return nil
}

func fileURL(page string) (string, error) {
	abs, err := filepath.Abs(page)
	if err != nil {
		return "", fmt.Errorf("loading %s: %w", page, err)
	}
	if _, err := os.Stat(abs); err != nil {
		return "", fmt.Errorf("loading %s: %w", page, err)
	}
	return "file://" + abs, nil
}

// run runs Chromium with a fresh profile and args, and returns what it
// wrote on stdout.
func (c *Chromium) run(ctx context.Context, args ...string) ([]byte, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	profile, err := os.MkdirTemp("", profilePrefix()+"*")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	// Chromium keeps its singleton socket in a folder of $TMPDIR that
	// outlives a killed browser: inside the profile, it goes with it.
	tmp := filepath.Join(profile, "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return nil, err
	}

	cmd := exec.CommandContext(ctx, c.Path, append(flags(profile), args...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stdout bytes.Buffer
	stderr := &tail{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = &limited{w: &stdout, n: 64 << 20}, stderr
	inGroup(cmd)
	err = cmd.Run()
	if cmd.Process != nil {
		if kerr := killGroup(cmd.Process.Pid, 10*time.Second); kerr != nil && err == nil {
			err = kerr
		}
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("chromium did not finish within %s: %s", timeout, stderr)
	}
	if err != nil {
		return nil, fmt.Errorf("running chromium: %w: %s", err, stderr)
	}
	return stdout.Bytes(), nil
}

// PageRequests reads a Chromium net log (--log-net-log) and returns the
// URL of every http, https, ws or wss request made for a page, in the
// order they started. Chromium's own background requests (update checks,
// sign-in, time sync) have no initiator and no page's network isolation
// key, and are left out: they are not the page's doing.
func PageRequests(netlog []byte) ([]string, error) {
	var log struct {
		Constants struct {
			EventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int            `json:"type"`
			Params map[string]any `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(netlog, &log); err != nil {
		return nil, fmt.Errorf("reading the net log: %w", err)
	}
	start, ok := log.Constants.EventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		return nil, errors.New("reading the net log: no URL_REQUEST_START_JOB event type in its constants")
	}
	var out []string
	for _, e := range log.Events {
		if e.Type != start {
			continue
		}
		url, _ := e.Params["url"].(string)
		scheme, _, _ := strings.Cut(url, ":")
		switch strings.ToLower(scheme) {
		case "http", "https", "ws", "wss":
		default:
			continue
		}
		initiator, _ := e.Params["initiator"].(string)
		nik, _ := e.Params["network_isolation_key"].(string)
		if initiator == "not an origin" && !strings.Contains(nik, "file://") {
			continue // the browser's own
		}
		out = append(out, url)
	}
	return out, nil
}

// tail keeps the last max bytes written to it.
type tail struct {
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string { return strings.TrimSpace(string(t.b)) }

// limited writes at most n bytes to w and drops the rest.
type limited struct {
	w *bytes.Buffer
	n int
}

func (l *limited) Write(p []byte) (int, error) {
	if k := min(len(p), l.n-l.w.Len()); k > 0 {
		l.w.Write(p[:k])
	}
	return len(p), nil
}
