package main

import (
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
	total   int
	done    int
	running map[string]time.Time // short name -> since
	quit    chan struct{}
	ticker  sync.WaitGroup
}

func newProgress(w io.Writer, total int, live bool) *progress {
	p := &progress{w: w, live: live, total: total, running: map[string]time.Time{}, quit: make(chan struct{})}
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

// stop ends the redrawing and clears the status line.
func (p *progress) stop() {
	close(p.quit)
	p.ticker.Wait()
	if p.live {
		p.mu.Lock()
		io.WriteString(p.w, "\r\x1b[K")
		p.mu.Unlock()
	}
}

func (p *progress) event(e builder.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch e.Phase {
	case builder.PhaseBuilding, builder.PhaseVerifying, builder.PhasePublishing:
		p.running[e.Image.Name] = time.Now()
	case builder.PhaseVerified, builder.PhaseFailed, builder.PhaseSkipped, builder.PhasePublished:
		delete(p.running, e.Image.Name)
		p.done++
	}
	p.write(stateLine(e))
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
		s += sep + name + " " + time.Since(p.running[name]).Truncate(time.Second).String()
	}
	if r := []rune(s); len(r) > statusWidth {
		s = string(r[:statusWidth-1]) + "…"
	}
	return s
}

// stateLine is "[name] phase", the time it took and, for a failure, the
// error and the last lines of the failing stage's log, every line cut to
// image.MaxLine bytes.
func stateLine(e builder.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", e.Image.Name, e.Phase)
	switch e.Phase {
	case builder.PhaseFailed, builder.PhaseSkipped:
		fmt.Fprintf(&b, ": %s", image.CutLine(e.Reason))
	case builder.PhaseBuilt, builder.PhaseVerified, builder.PhasePublished:
		fmt.Fprintf(&b, " %s", e.Elapsed.Round(100*time.Millisecond))
		if e.Reason != "" {
			fmt.Fprintf(&b, " (%s)", e.Reason)
		}
	}
	b.WriteByte('\n')
	var be *image.BuildError
	if e.Phase == builder.PhaseFailed && errors.As(e.Err, &be) {
		for _, line := range be.Tail {
			fmt.Fprintf(&b, "    %s\n", image.CutLine(line))
		}
	}
	return b.String()
}

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
