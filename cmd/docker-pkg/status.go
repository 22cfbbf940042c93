package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/docker-pkg/docker-pkg/image"
)

// progressMode is build's --progress, as buildx names them.
type progressMode string

const (
	progressAuto  progressMode = "auto"  // tty on a terminal, plain otherwise
	progressTTY   progressMode = "tty"   // state lines under a live status line
	progressPlain progressMode = "plain" // one line per state change
	progressJSON  progressMode = "json"  // one JSON object per event
)

// Set makes progressMode a flag that rejects what it does not know.
func (m *progressMode) Set(s string) error {
	switch v := progressMode(s); v {
	case progressAuto, progressTTY, progressPlain, progressJSON:
		*m = v
		return nil
	}
	return fmt.Errorf("want auto, tty, plain or json")
}

func (m *progressMode) String() string { return string(*m) }
func (m *progressMode) Type() string   { return "mode" }

// resolve turns auto into tty or plain: tty on a terminal, unless the log
// goes to that terminal too (--info, --debug).
func (m progressMode) resolve(stderr io.Writer, logOnStderr bool) progressMode {
	if m != progressAuto {
		return m
	}
	if isTerminal(stderr) && !logOnStderr {
		return progressTTY
	}
	return progressPlain
}

// printer shows a build's progress on stderr: every change of an image's
// phase, and the warnings the build gives before it starts.
type printer interface {
	event(builder.Event)
	warn(builder.Warning)
	// stop ends a live status line, if any.
	stop()
}

// statusWidth bounds the live status line: one that wraps can no longer be
// redrawn in place.
const statusWidth = 79

// progress prints on w one line each time an image changes phase, and on a
// terminal (live) a status line under them, redrawn in place: cleared
// before each state line and drawn again after it.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	live    bool
	colour  bool
	total   int
	done    int
	running map[string]time.Time // short name -> since
	where   map[string]string    // short name -> the builder it is on
	quit    chan struct{}
	ticker  sync.WaitGroup
}

func newProgress(w io.Writer, total int, live, colour bool) *progress {
	p := &progress{w: w, live: live, colour: colour, total: total, running: map[string]time.Time{}, where: map[string]string{}, quit: make(chan struct{})}
	if live {
		p.ticker.Add(1)
		go p.tick()
	}
	return p
}

// tick redraws the status line every second, so elapsed times move.
func (p *progress) tick() {
	defer p.ticker.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-p.quit:
			return
		case <-t.C:
			p.mu.Lock()
			p.write("")
			p.mu.Unlock()
		}
	}
}

func (p *progress) stop() {
	close(p.quit)
	p.ticker.Wait()
	if p.live {
		p.mu.Lock()
		io.WriteString(p.w, "\r\x1b[K")
		p.mu.Unlock()
	}
}

func (p *progress) warn(w builder.Warning) {
	p.mu.Lock()
	defer p.mu.Unlock()
	text := w.Message
	if w.Path != "" {
		text = w.String()
	}
	p.write(paint(p.colour, yellow, "warning:") + " " + shortDigests(text) + "\n")
}

func (p *progress) event(e builder.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Phase {
	case builder.PhaseBuilding, builder.PhasePublishing:
		p.running[e.Image.Name] = e.Time
		p.where[e.Image.Name] = e.Builder
	case builder.PhaseVerifying:
		if _, ok := p.running[e.Image.Name]; !ok { // publish's, not a platform's
			p.running[e.Image.Name] = e.Time
		}
	case builder.PhaseVerified, builder.PhaseFailed, builder.PhaseSkipped, builder.PhasePublished:
		delete(p.running, e.Image.Name)
		delete(p.where, e.Image.Name)
		p.done++
	}
	p.write(stateLine(e, p.colour))
}

// write prints lines, whole, in one Write.
func (p *progress) write(lines string) {
	var b strings.Builder
	if p.live {
		b.WriteString("\r\x1b[K")
	}
	b.WriteString(lines)
	if p.live {
		b.WriteString(p.status())
	}
	io.WriteString(p.w, b.String())
}

func (p *progress) status() string {
	waiting := max(p.total-p.done-len(p.running), 0)
	s := fmt.Sprintf("%d/%d done, %d running, %d waiting", p.done, p.total, len(p.running), waiting)
	names := make([]string, 0, len(p.running))
	for name := range p.running {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		s += sep + name
		if on := p.where[name]; on != "" {
			s += "@" + on
		}
		s += " " + time.Since(p.running[name]).Truncate(time.Second).String()
	}
	if r := []rune(s); len(r) > statusWidth {
		s = string(r[:statusWidth-1]) + "…"
	}
	return s
}

// stateLine is "[name] phase" and the time it took, or why it failed or
// was skipped (cut to image.MaxLine bytes). A failure's log tail is
// printed once, under the summary.
func stateLine(e builder.Event, colour bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", e.Image.Name, paint(colour, phaseColour(e.Phase), string(e.Phase)))
	if e.Platform != "" {
		fmt.Fprintf(&b, " %s", e.Platform)
	}
	if e.Builder != "" && (e.Phase == builder.PhaseBuilding || e.Phase == builder.PhaseBuilt) {
		fmt.Fprintf(&b, " on %s", e.Builder)
	}
	switch e.Phase {
	case builder.PhaseFailed, builder.PhaseSkipped:
		fmt.Fprintf(&b, ": %s", shortDigests(image.CutLine(e.Reason)))
	case builder.PhaseBuilt, builder.PhaseVerified, builder.PhasePublished:
		fmt.Fprintf(&b, " %s", e.Elapsed.Round(100*time.Millisecond))
		if e.Reason != "" {
			fmt.Fprintf(&b, " (%s)", e.Reason)
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// jsonProgress writes one JSON object per line: each event, each warning.
type jsonProgress struct {
	mu      sync.Mutex
	w       io.Writer
	builder string // classic or buildkit: the local engine's
}

// eventJSON is what --progress json writes for a builder.Event; build's
// help describes every field.
type eventJSON struct {
	Time     string        `json:"time"`
	Image    string        `json:"image"`
	Label    string        `json:"label"`
	Phase    builder.Phase `json:"phase"`
	Builder  string        `json:"builder"`
	Slot     int           `json:"slot"`
	Platform string        `json:"platform,omitempty"`
	Duration float64       `json:"duration,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Error    string        `json:"error,omitempty"`
	Stage    image.Stage   `json:"stage,omitempty"`
	Log      []string      `json:"log,omitempty"`
}

type warningJSON struct {
	Time    string `json:"time"`
	Warning string `json:"warning"`
	Path    string `json:"path,omitempty"`
}

// jsonTime is RFC 3339 with milliseconds, in UTC.
const jsonTime = "2006-01-02T15:04:05.000Z07:00"

func (j *jsonProgress) event(e builder.Event) {
	out := eventJSON{
		Time: e.Time.UTC().Format(jsonTime), Image: e.Image.Name, Label: e.Image.Label(),
		Phase: e.Phase, Builder: cmp.Or(e.Builder, j.builder), Slot: e.Slot, Platform: e.Platform,
		Duration: e.Elapsed.Round(time.Millisecond).Seconds(), Reason: e.Reason,
	}
	if e.Err != nil {
		out.Error = e.Err.Error()
		if out.Reason == out.Error {
			out.Reason = ""
		}
		var be *image.BuildError
		if errors.As(e.Err, &be) {
			out.Stage, out.Log = be.Stage, be.Tail
		}
	}
	j.write(out)
}

func (j *jsonProgress) warn(w builder.Warning) {
	j.write(warningJSON{Time: time.Now().UTC().Format(jsonTime), Warning: w.Message, Path: w.Path})
}

func (j *jsonProgress) write(v any) {
	line, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings, numbers and slices of strings: cannot happen
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.w.Write(append(line, '\n'))
}

func (j *jsonProgress) stop() {}

// isTerminal says whether w is a terminal that wants a live status: not
// under CI, nor a dumb terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("CI") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// useColour says whether to colour what goes to w: a terminal, and no
// NO_COLOR set to anything but "" (https://no-color.org).
func useColour(w io.Writer) bool {
	return os.Getenv("NO_COLOR") == "" && isTerminal(w)
}

// SGR colours, each five bytes long: a table whose every cell of a column
// is painted stays aligned (tabwriter counts bytes).
const (
	red     = "\x1b[31m"
	green   = "\x1b[32m"
	yellow  = "\x1b[33m"
	noColor = "\x1b[39m" // the default foreground
	reset   = "\x1b[0m"
)

// paint colours s when on and colour is not "".
func paint(on bool, colour, s string) string {
	if !on || colour == "" {
		return s
	}
	return colour + s + reset
}

// phaseColour is the colour of an image's final phase, "" for the others.
func phaseColour(p builder.Phase) string {
	switch p {
	case builder.PhaseVerified, builder.PhasePublished:
		return green
	case builder.PhaseFailed:
		return red
	case builder.PhaseSkipped:
		return yellow
	}
	return ""
}
