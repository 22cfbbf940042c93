package builder

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync"

	"github.com/docker-pkg/docker-pkg/image"
)

// slots is the semaphore of a Build: each pool (the local engine, or one
// builder of the fleet) does the real work of at most its jobs images at
// once, and an image asks for a slot only once its parents are built, so
// images waiting on parents hold none. Free slots go to images in order
// (plan order on the local engine, longest remaining chain first on a
// fleet), keeping one for each image about to ask (all its parents built,
// still pulling or not yet scheduled) that comes before the one asking:
// with one slot, images build in that order whatever the goroutines'
// timing. Each slot has a number, 1 to its pool's jobs, so that the images
// one slot held, one after the other, make a lane of the run's timeline.
type slots struct {
	mu       sync.Mutex
	pools    []*pool
	order    []int   // images in the order slots go to them
	held     []lane  // by image: the slot it holds; pool -1 for none
	parents  [][]int // positions in the chain; read-only
	children [][]int
	state    []slotState
	missing  []int  // parents not yet built
	blocked  []bool // a parent failed: the image will never ask
	grant    []chan struct{}
	builtOn  []int   // by image: the pool it was built on, -1 for none
	refused  []error // by image: why no pool can build it
	// fits says whether pool p can build image i (its platforms); nil:
	// every pool can.
	fits func(i, p int) bool
	// unfit says why no pool up can build image i.
	unfit func(i int) error
}

// pool is one place that builds: its name ("" for the local engine) and
// its slots.
type pool struct {
	name string
	busy []bool // by slot number - 1
	free int
	down bool // lost: gets no more images
}

// lane is a slot of a pool.
type lane struct {
	pool int // index in slots.pools; -1 for none
	slot int // 1 to the pool's jobs
}

type slotState int

const (
	slotWaiting  slotState = iota // for its parents or pulls
	slotAsking                    // in acquire
	slotHolding                   // doing its work
	slotFreed                     // its slot given back, its work not done (a test on this machine)
	slotFinished                  // has its result
)

// errNoPool is matched by the error of acquire for an image that no pool
// up can build.
var errNoPool = errors.New("no builder can build it")

// newSlots makes the slots of one pool of n, images going in plan order.
func newSlots(n int, parents [][]int) *slots {
	return newPoolSlots([]*pool{{busy: make([]bool, n), free: n}}, parents, nil)
}

// newPoolSlots makes the slots of pools, images going in order (nil: plan
// order).
func newPoolSlots(pools []*pool, parents [][]int, order []int) *slots {
	n := len(parents)
	s := &slots{
		pools:    pools,
		order:    order,
		held:     make([]lane, n),
		parents:  parents,
		children: make([][]int, n),
		state:    make([]slotState, n),
		missing:  make([]int, n),
		blocked:  make([]bool, n),
		grant:    make([]chan struct{}, n),
		builtOn:  make([]int, n),
		refused:  make([]error, n),
	}
	if s.order == nil {
		s.order = make([]int, n)
		for i := range s.order {
			s.order[i] = i
		}
	}
	for i, ps := range parents {
		s.held[i] = lane{pool: -1}
		s.builtOn[i] = -1
		s.missing[i] = len(ps)
		for _, p := range ps {
			s.children[p] = append(s.children[p], i)
		}
	}
	return s
}

// acquire waits for a slot for image i and returns it. On error (ctx done,
// or errNoPool) i holds none.
func (s *slots) acquire(ctx context.Context, i int) (lane, error) {
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
		if err := s.refused[i]; err != nil {
			s.state[i] = slotWaiting
			return lane{pool: -1}, err
		}
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
	return lane{pool: -1}, ctx.Err()
}

// release frees the slot image i holds.
func (s *slots) release(i int) {
	l := s.held[i]
	p := s.pools[l.pool]
	p.busy[l.slot-1] = false
	p.free++
	s.held[i] = lane{pool: -1}
}

// lost marks the pool image i holds a slot of as lost, as its builder
// no longer answers: it gets no more images. i gives its slot back, to ask
// again.
func (s *slots) lost(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[i] != slotHolding {
		return
	}
	s.pools[s.held[i].pool].down = true
	s.release(i)
	s.state[i] = slotWaiting
	s.dispatch()
}

// free gives image i's slot back before i has its result: what is left of
// its work (its test, on this machine) does not use the slot's builder.
// The pool counts as where i was built.
func (s *slots) free(i int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[i] != slotHolding {
		return
	}
	s.builtOn[i] = s.held[i].pool
	s.release(i)
	s.state[i] = slotFreed
	s.dispatch()
}

// finish records image i's end, built or not, and frees its slot if it
// holds one.
func (s *slots) finish(i int, built bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state[i] == slotHolding {
		if built {
			s.builtOn[i] = s.held[i].pool
		}
		s.release(i)
	}
	if !built {
		s.builtOn[i] = -1
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

// dispatch hands the free slots out in order, keeping one for each image
// about to ask that comes before the one asking. An image goes to a pool
// up that can build it: the one a parent was built on if it has a free
// slot, else the one with the most free slots; it gets the free slot of
// lowest number. An image asking that no pool up can build is refused.
func (s *slots) dispatch() {
	free := 0
	for _, p := range s.pools {
		if !p.down {
			free += p.free
		}
	}
	// An image no pool up can build is refused whatever is free.
	for k, st := range s.state {
		if st == slotAsking {
			if p, _ := s.choose(k); p < 0 {
				s.refused[k] = s.unfitErr(k)
				s.state[k] = slotWaiting
				close(s.grant[k])
			}
		}
	}
	for _, k := range s.order {
		switch {
		case s.state[k] == slotAsking:
			if free == 0 {
				return
			}
			p, ok := s.choose(k)
			if !ok {
				continue
			}
			pl := s.pools[p]
			n := slices.Index(pl.busy, false) + 1
			pl.busy[n-1] = true
			pl.free--
			s.held[k] = lane{pool: p, slot: n}
			s.state[k] = slotHolding
			free--
			close(s.grant[k])
		case s.state[k] == slotWaiting && s.missing[k] == 0 && !s.blocked[k] && s.refused[k] == nil:
			if free == 0 {
				return
			}
			free--
		}
	}
}

// choose picks the pool for image k: ok is false when every pool that
// can build it is busy, and the pool is -1 when none up can.
func (s *slots) choose(k int) (p int, ok bool) {
	best, fit := -1, false
	for _, parent := range s.parents[k] {
		if b := s.builtOn[parent]; b >= 0 && s.usable(k, b) && s.pools[b].free > 0 {
			return b, true
		}
	}
	for j, pl := range s.pools {
		if !s.usable(k, j) {
			continue
		}
		fit = true
		if pl.free > 0 && (best < 0 || pl.free > s.pools[best].free) {
			best = j
		}
	}
	switch {
	case !fit:
		return -1, true
	case best < 0:
		return 0, false
	}
	return best, true
}

func (s *slots) usable(k, p int) bool {
	return !s.pools[p].down && (s.fits == nil || s.fits(k, p))
}

func (s *slots) unfitErr(k int) error {
	if s.unfit != nil {
		return s.unfit(k)
	}
	return errNoPool
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
