package builder

import (
	"bytes"
	"context"
	"io"
	"slices"
	"sync"

	"github.com/docker-pkg/docker-pkg/image"
)

// slots is the semaphore of a Build: at most n images do their real work
// at once, and an image asks for a slot only once its parents are built,
// so images waiting on parents hold none. A free slot goes to the first
// image in plan order that asks for one or is about to (all its parents
// built, still pulling or not yet scheduled): with one slot, images build
// in plan order whatever the goroutines' timing. Each slot has a number,
// 1 to n, so that the images one slot held, one after the other, make a
// lane of the run's timeline.
type slots struct {
	mu       sync.Mutex
	free     int
	busy     []bool  // by slot number - 1
	held     []int   // by image: the slot number it holds, 0 for none
	parents  [][]int // positions in the chain; read-only
	children [][]int
	state    []slotState
	missing  []int  // parents not yet built
	blocked  []bool // a parent failed: the image will never ask
	grant    []chan struct{}
}

type slotState int

const (
	slotWaiting  slotState = iota // for its parents or pulls
	slotAsking                    // in acquire
	slotHolding                   // doing its work
	slotFinished                  // has its result
)

func newSlots(n int, parents [][]int) *slots {
	s := &slots{
		free:     n,
		busy:     make([]bool, n),
		held:     make([]int, len(parents)),
		parents:  parents,
		children: make([][]int, len(parents)),
		state:    make([]slotState, len(parents)),
		missing:  make([]int, len(parents)),
		blocked:  make([]bool, len(parents)),
		grant:    make([]chan struct{}, len(parents)),
	}
	for i, ps := range parents {
		s.missing[i] = len(ps)
		for _, p := range ps {
			s.children[p] = append(s.children[p], i)
		}
	}
	return s
}

// acquire waits for a slot for image i and returns its number, 1 to n.
// On error (ctx done) i holds none.
func (s *slots) acquire(ctx context.Context, i int) (int, error) {
	s.mu.Lock()
	s.state[i] = slotAsking
	granted := make(chan struct{})
	s.grant[i] = granted
	s.dispatch()
	s.mu.Unlock()
	select {
	case <-granted:
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.held[i], nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[i] == slotHolding { // granted meanwhile: give it back
		s.release(i)
	}
	s.state[i] = slotWaiting
	s.dispatch()
	return 0, ctx.Err()
}

// release frees the slot image i holds.
func (s *slots) release(i int) {
	s.busy[s.held[i]-1] = false
	s.held[i] = 0
	s.free++
}

// finish records image i's end, built or not, and frees its slot if it
// holds one.
func (s *slots) finish(i int, built bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[i] == slotHolding {
		s.release(i)
	}
	s.state[i] = slotFinished
	for _, c := range s.children[i] {
		if built {
			s.missing[c]--
		} else {
			s.blocked[c] = true
		}
	}
	s.dispatch()
}

// dispatch hands the free slots out in plan order, keeping one for each
// image about to ask that comes before the one asking. An image gets the
// free slot of lowest number.
func (s *slots) dispatch() {
	free := s.free
	for k := 0; k < len(s.state) && free > 0; k++ {
		switch {
		case s.state[k] == slotAsking:
			s.state[k] = slotHolding
			s.held[k] = slices.Index(s.busy, false) + 1
			s.busy[s.held[k]-1] = true
			s.free--
			free--
			close(s.grant[k])
		case s.state[k] == slotWaiting && s.missing[k] == 0 && !s.blocked[k]:
			free--
		}
	}
}

// lineLog is a run's log. Each image writes through its own writer, whose
// lines reach w whole, prefixed with the image's name and cut to
// image.MaxLine bytes.
type lineLog struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineLog) writer(name string) *prefixWriter {
	return &prefixWriter{log: l, prefix: []byte("[" + name + "] ")}
}

// prefixWriter buffers a partial line until its end arrives, keeping at
// most image.MaxLine bytes of it and counting the rest.
type prefixWriter struct {
	log    *lineLog
	prefix []byte
	mu     sync.Mutex
	part   image.LineBuffer
}

// Write never fails: the log is a copy, and a failing log must not fail a
// build.
func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(b)
	var out []byte
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		p.part.Add(b[:i])
		out = p.line(out)
		b = b[i+1:]
	}
	p.part.Add(b)
	p.log.write(out)
	return n, nil
}

// line appends the current line to out, whole, and starts a new one.
func (p *prefixWriter) line(out []byte) []byte {
	out = append(out, p.prefix...)
	out = append(out, p.part.String()...)
	p.part.Reset()
	return append(out, '\n')
}

// Close writes out an unfinished last line.
func (p *prefixWriter) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.part.Empty() {
		p.log.write(p.line(nil))
	}
	return nil
}

func (l *lineLog) write(b []byte) {
	if len(b) == 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = l.w.Write(b)
}
