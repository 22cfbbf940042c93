package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
)

// someEvents are the events of a small run that started at: a verified
// after a build in slot 1, b failing its test in slot 2, c skipped.
func someEvents(at time.Time) []builder.Event {
	img := func(name string) *image.Image {
		return &image.Image{Name: name, Repo: "ns/" + name, Tag: "1.0-1"}
	}
	a, b, c := img("a"), img("b"), img("c")
	fail := &image.BuildError{Image: b.Label(), Stage: image.StageVerify, Tail: []string{"checking", "b: no /etc/b.conf"}, Err: errors.New("exit status 1")}
	return []builder.Event{
		{Image: a, Phase: builder.PhaseBuilding, Slot: 1, Time: at},
		{Image: b, Phase: builder.PhaseBuilding, Slot: 2, Time: at.Add(10 * time.Millisecond)},
		{Image: a, Phase: builder.PhaseBuilt, Slot: 1, Elapsed: 1200 * time.Millisecond, Time: at.Add(1200 * time.Millisecond)},
		{Image: a, Phase: builder.PhaseVerified, Slot: 1, Reason: "no test", Elapsed: 1234 * time.Millisecond, Time: at.Add(1234 * time.Millisecond)},
		{Image: b, Phase: builder.PhaseFailed, Slot: 2, Reason: fail.Error(), Err: fail, Elapsed: 2 * time.Second, Time: at.Add(2010 * time.Millisecond)},
		{Image: c, Phase: builder.PhaseSkipped, Reason: "parent b failed", Time: at.Add(2011 * time.Millisecond)},
	}
}

func TestProgressPlain(t *testing.T) {
	var out bytes.Buffer
	p := newProgress(&out, 3, false, false)
	for _, e := range someEvents(time.Now()) {
		p.event(e)
	}
	p.warn(builder.Warning{Path: "x/changelog", Message: "ns/x:1 is stale: parent y is now sha256:" + strings.Repeat("ab", 32)})
	p.stop()
	want := `[a] building
[b] building
[a] built 1.2s
[a] verified 1.2s (no test)
[b] failed: ns/b:1.0-1: verify failed: exit status 1
[c] skipped: parent b failed
warning: x/changelog: ns/x:1 is stale: parent y is now sha256:abababababab
`
	if out.String() != want {
		t.Errorf("plain progress printed\n%s\nwant\n%s", out.String(), want)
	}
}

func TestProgressLive(t *testing.T) {
	var buf bytes.Buffer // written under p's lock, ticker included
	p := newProgress(&buf, 3, true, true)
	for _, e := range someEvents(time.Now())[:4] {
		p.event(e)
	}
	p.stop()
	got := buf.String()
	for _, said := range []string{
		"\r\x1b[K[a] building\n0/3 done, 1 running, 2 waiting: a 0s",
		"\r\x1b[K[a] \x1b[32mverified\x1b[0m 1.2s (no test)\n1/3 done, 1 running, 1 waiting: b ",
	} {
		if !strings.Contains(got, said) {
			t.Errorf("live progress lacks %q:\n%q", said, got)
		}
	}
	if !strings.HasSuffix(got, "\r\x1b[K") {
		t.Errorf("stop left the status line: %q", got)
	}
}

func TestProgressJSON(t *testing.T) {
	var out bytes.Buffer
	j := &jsonProgress{w: &out, builder: "buildkit"}
	for _, e := range someEvents(time.Date(2026, 3, 7, 9, 5, 4, 0, time.UTC)) {
		j.event(e)
	}
	j.warn(builder.Warning{Path: "images/wip", Message: "has Dockerfile.template but no changelog; skipped"})
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7, one per event and warning:\n%s", len(lines), out.String())
	}
	var got []map[string]any
	for _, line := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("not a JSON object: %q: %v", line, err)
		}
		if ts, ok := obj["time"].(string); !ok {
			t.Errorf("no time in %s", line)
		} else if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("time %q is not RFC 3339: %v", ts, err)
		}
		delete(obj, "time")
		got = append(got, obj)
	}
	base := func(name, phase string, slot float64) map[string]any {
		return map[string]any{"image": name, "label": "ns/" + name + ":1.0-1", "phase": phase, "builder": "buildkit", "slot": slot}
	}
	with := func(m map[string]any, kv ...any) map[string]any {
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	want := []map[string]any{
		base("a", "building", 1),
		base("b", "building", 2),
		with(base("a", "built", 1), "duration", 1.2),
		with(base("a", "verified", 1), "duration", 1.234, "reason", "no test"),
		with(base("b", "failed", 2), "duration", 2.0, "error", "ns/b:1.0-1: verify failed: exit status 1",
			"stage", "verify", "log", []any{"checking", "b: no /etc/b.conf"}),
		with(base("c", "skipped", 0), "reason", "parent b failed"),
		{"warning": "has Dockerfile.template but no changelog; skipped", "path": "images/wip"},
	}
	for i := range want {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("line %d:\n%v\nwant\n%v", i+1, got[i], want[i])
		}
	}
	if first := lines[0]; !strings.HasPrefix(first, `{"time":"2026-03-07T09:05:04.000Z",`) {
		t.Errorf("first line %s: want the time first, in UTC with milliseconds", first)
	}
}

func TestProgressModeResolve(t *testing.T) {
	var buf bytes.Buffer
	tests := []struct {
		flag string
		want progressMode
	}{
		{"auto", progressPlain}, // a buffer is no terminal
		{"tty", progressTTY},
		{"plain", progressPlain},
		{"json", progressJSON},
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			var m progressMode
			if err := m.Set(tt.flag); err != nil {
				t.Fatal(err)
			}
			if got := m.resolve(&buf, false); got != tt.want {
				t.Errorf("resolve = %s, want %s", got, tt.want)
			}
		})
	}
	var m progressMode
	if err := m.Set("fancy"); err == nil {
		t.Error(`Set("fancy") accepted`)
	}
}

func TestBuildProgressFlag(t *testing.T) {
	// No daemon: an error about it would mean work started.
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no-daemon.sock")
	_, _, err := runBuildCmd(t, t.TempDir(), "-c", mustAbs(t, "../../fixtures/config.yaml"), "build", "--progress", "fancy", mustAbs(t, "../../fixtures/images"))
	if want := `invalid argument "fancy" for "--progress" flag: want auto, tty, plain or json`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %q", err, want)
	}
}

func TestSummary(t *testing.T) {
	img := func(name string) *image.Image { return &image.Image{Name: name, Repo: "ns/" + name, Tag: "1.0-1"} }
	fail := &image.BuildError{Image: "ns/b:1.0-1", Stage: image.StageVerify, Tail: []string{"b: no /etc/b.conf"}, Err: errors.New("exit status 1")}
	res := &builder.Result{Images: []builder.ImageResult{
		{Image: img("a"), Phase: builder.PhaseVerified, Duration: 1234 * time.Millisecond, Size: 1985000},
		{Image: img("b"), Phase: builder.PhaseFailed, Reason: fail.Error(), Err: fail, Duration: 2 * time.Second, Size: 1985000},
		{Image: img("c"), Phase: builder.PhaseSkipped, Reason: "parent b failed"},
	}}
	unknown := errors.New("cannot tell whether it is built or published: asking the registry: 401 Unauthorized")
	published := []builder.ImageResult{
		{Image: img("a"), Phase: builder.PhasePublished},
		{Image: img("d"), Phase: builder.PhaseFailed, Reason: "state unknown", Err: unknown},
	}
	want := `IMAGE       RESULT                    DURATION  SIZE
ns/a:1.0-1  published                 1.2s      1.985MB
ns/b:1.0-1  failed (verify)           2s        1.985MB
ns/c:1.0-1  skipped: parent b failed  -         -
ns/d:1.0-1  failed: state unknown     -         -

b: verify failed: exit status 1; its log ends with:
    b: no /etc/b.conf

d: cannot tell whether it is built or published: asking the registry: 401 Unauthorized

`
	var plain, coloured bytes.Buffer
	if n := printSummary(&plain, res, published, false); n != 3 {
		t.Errorf("printSummary = %d, want 3 failed or skipped", n)
	}
	if plain.String() != want {
		t.Errorf("summary\n%s\nwant\n%s", plain.String(), want)
	}
	printSummary(&coloured, res, published, true)
	for _, said := range []string{"\x1b[32mpublished\x1b[0m", "\x1b[31mfailed (verify)\x1b[0m", "\x1b[33mskipped: parent b failed\x1b[0m", "\x1b[31mb:\x1b[0m verify failed"} {
		if !strings.Contains(coloured.String(), said) {
			t.Errorf("coloured summary lacks %q:\n%q", said, coloured.String())
		}
	}
	// The same table once the colours are taken out: still aligned.
	if got := regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(coloured.String(), ""); got != want {
		t.Errorf("coloured summary without its colours\n%s\nwant\n%s", got, want)
	}
}

func TestShortDigests(t *testing.T) {
	long := "sha256:5aad6d223a31" + strings.Repeat("0123", 13)
	tests := []struct{ in, want string }{
		{"stale: parent core is now " + long + ", built on " + long, "stale: parent core is now sha256:5aad6d223a31, built on sha256:5aad6d223a31"},
		{"short already: sha256:5aad6d223a31", "short already: sha256:5aad6d223a31"},
		{"too long: " + long + "ff", "too long: " + long + "ff"},
		{"no digest", "no digest"},
	}
	for _, tt := range tests {
		if got := shortDigests(tt.in); got != tt.want {
			t.Errorf("shortDigests(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestBuildProgressOnTerminal runs docker-pkg build on a real terminal
// (script(1) gives it one) and in a pipe: live status and colours on the
// terminal only, no colours with NO_COLOR, plain lines in the pipe, JSON
// with --progress json.
func TestBuildProgressOnTerminal(t *testing.T) {
	cli := testenv.Docker(t)
	script, err := exec.LookPath("script")
	if err != nil {
		t.Fatalf("script(1), from util-linux, is needed to give docker-pkg a terminal: %v", err)
	}
	ns := testRepo(t, cli, "")
	work := t.TempDir()
	writeYAML(t, filepath.Join(work, "config.yaml"), map[string]any{"namespace": ns, "base_images": []string{ns + "/busybox:static"}})
	writeImage(t, filepath.Join(work, "images"), "tiny", "FROM {{ \"busybox\" | image_tag }}\nRUN echo tiny > /tiny.txt\n",
		`docker run --rm "$1" cat /tiny.txt | grep -qx tiny`)
	bin := filepath.Join(t.TempDir(), "docker-pkg")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	label := ns + "/tiny:1.0-1"
	// env is the test's environment without CI, TERM and NO_COLOR, plus
	// extra.
	env := func(extra ...string) []string {
		var out []string
		for _, kv := range os.Environ() {
			if k, _, _ := strings.Cut(kv, "="); k != "CI" && k != "TERM" && k != "NO_COLOR" {
				out = append(out, kv)
			}
		}
		return append(append(out, "XDG_CACHE_HOME="+t.TempDir()), extra...)
	}
	build := func(t *testing.T, terminal bool, env []string, flags ...string) string {
		t.Helper()
		t.Cleanup(func() { cli.ImageRemove(context.Background(), label, client.ImageRemoveOptions{Force: true}) })
		args := append(append([]string{"-c", "config.yaml", "build"}, flags...), "images")
		cmd := exec.Command(bin, args...)
		if terminal {
			line := bin
			for _, a := range args {
				line += " '" + a + "'"
			}
			cmd = exec.Command(script, "-qefc", line, "/dev/null")
		}
		cmd.Dir, cmd.Env = work, env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, out.String())
		}
		return out.String()
	}
	const live, colour = "\r\x1b[K", "\x1b[32m"
	tests := []struct {
		name           string
		terminal       bool
		env            []string
		flags          []string
		live, coloured bool
		says           []string
	}{
		{name: "terminal", terminal: true, env: env("TERM=xterm"), live: true, coloured: true,
			says: []string{"[tiny] \x1b[32mverified\x1b[0m ", "0/1 done, 1 running, 0 waiting: tiny "}},
		{name: "terminal, NO_COLOR", terminal: true, env: env("TERM=xterm", "NO_COLOR=1"), live: true,
			says: []string{"[tiny] verified "}},
		// The table on stdout, a terminal, is in colour all the same.
		{name: "terminal, plain", terminal: true, env: env("TERM=xterm"), flags: []string{"--progress", "plain"}, coloured: true,
			says: []string{"[tiny] building\r\n", "[tiny] verified "}},
		{name: "terminal, CI", terminal: true, env: env("TERM=xterm", "CI=true"),
			says: []string{"[tiny] verified "}},
		{name: "pipe", env: env("TERM=xterm"), says: []string{"[tiny] building\n", "[tiny] verified "}},
		{name: "pipe, tty", env: env("TERM=xterm"), flags: []string{"--progress", "tty"}, live: true,
			says: []string{"[tiny] verified "}},
		{name: "terminal, json", terminal: true, env: env("TERM=xterm"), flags: []string{"--progress", "json"}, coloured: true,
			says: []string{`"image":"tiny","label":"` + label + `","phase":"verified","builder":"classic","slot":1,"duration":`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := build(t, tt.terminal, tt.env, tt.flags...)
			if got := strings.Contains(out, live); got != tt.live {
				t.Errorf("live status line: %v, want %v:\n%q", got, tt.live, out)
			}
			if got := strings.Contains(out, colour); got != tt.coloured {
				t.Errorf("colours: %v, want %v:\n%q", got, tt.coloured, out)
			}
			if !tt.coloured && strings.Contains(out, "\x1b[3") {
				t.Errorf("some colour:\n%q", out)
			}
			if !summaryRow(label, "verified").MatchString(regexp.MustCompile("\x1b\\[[0-9;]*m").ReplaceAllString(out, "")) {
				t.Errorf("no summary row for %s:\n%s", label, out)
			}
			for _, said := range tt.says {
				if !strings.Contains(out, said) {
					t.Errorf("output lacks %q:\n%q", said, out)
				}
			}
		})
	}
}

// TestBuildProgressJSONInfo builds with --progress json and --info: every
// line on stderr is a JSON object, the build's output included.
func TestBuildProgressJSONInfo(t *testing.T) {
	cli := testenv.Docker(t)
	ns := testRepo(t, cli, "")
	work := t.TempDir()
	writeYAML(t, filepath.Join(work, "config.yaml"), map[string]any{"namespace": ns, "base_images": []string{ns + "/busybox:static"}})
	writeImage(t, filepath.Join(work, "images"), "tiny", "FROM {{ \"busybox\" | image_tag }}\nRUN echo tiny > /tiny.txt\n",
		`docker run --rm "$1" cat /tiny.txt`)
	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "--info", "build", "--progress", "json", "images")
	if err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	var phases, output []string
	for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		var obj struct {
			Phase, Msg string
			Slot       int
		}
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", line, err)
		}
		if obj.Phase != "" {
			phases = append(phases, fmt.Sprintf("%s %d", obj.Phase, obj.Slot))
		}
		if strings.HasPrefix(obj.Msg, "[tiny] ") {
			output = append(output, obj.Msg)
		}
	}
	if want := []string{"building 1", "built 1", "verified 1"}; !reflect.DeepEqual(phases, want) {
		t.Errorf("events %v, want %v", phases, want)
	}
	if !slices.Contains(output, "[tiny] tiny") {
		t.Errorf("the test's output is not among the log records:\n%s", strings.Join(output, "\n"))
	}
	if !summaryRow(ns+"/tiny:1.0-1", "verified").MatchString(stdout) {
		t.Errorf("stdout lacks the summary:\n%s", stdout)
	}
}
