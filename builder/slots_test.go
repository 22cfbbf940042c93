package builder

import (
	"errors"
	"slices"
	"testing"
	"time"
)

func pools(jobs ...int) []*pool {
	var out []*pool
	for i, n := range jobs {
		out = append(out, &pool{name: string(rune('a' + i)), busy: make([]bool, n), free: n})
	}
	return out
}

func TestCriticalOrder(t *testing.T) {
	// 0 -> 1 -> 2 -> 3, and 4, 5 alone; 6 on 0.
	parents := [][]int{{}, {0}, {1}, {2}, {}, {}, {0}}
	got := criticalOrder(parents)
	// 0 heads a chain of 4 images, 1 of 3, 2 of 2; the others one each,
	// in plan order.
	if want := []int{0, 1, 2, 3, 4, 5, 6}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	// A long chain that starts later in the plan goes before a short one.
	got = criticalOrder([][]int{{}, {}, {1}, {2}})
	if want := []int{1, 2, 0, 3}; !slices.Equal(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

func TestSlotsPreferTheParentsBuilder(t *testing.T) {
	ctx := t.Context()
	// 1 and 2 need 0.
	s := newPoolSlots(pools(2, 2), [][]int{{}, {0}, {0}}, nil)
	l0, err := s.acquire(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.finish(0, true)
	l1, err := s.acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if l1.pool != l0.pool {
		t.Errorf("image 1 went to pool %d, want %d where its parent was built", l1.pool, l0.pool)
	}
	l2, err := s.acquire(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if l2.pool != l0.pool || l2.slot == l1.slot {
		t.Errorf("image 2 got %+v, want the other slot of pool %d", l2, l0.pool)
	}
}

func TestSlotsSpreadOverPools(t *testing.T) {
	ctx := t.Context()
	s := newPoolSlots(pools(2, 2), [][]int{{}, {}, {}}, nil)
	seen := map[int]int{}
	for i := range 3 {
		l, err := s.acquire(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		seen[l.pool]++
	}
	if seen[0] == 0 || seen[1] == 0 {
		t.Errorf("three images without parents went to pools %v, want both used", seen)
	}
}

func TestSlotsRefuseWhatNoPoolBuilds(t *testing.T) {
	s := newPoolSlots(pools(1, 1), [][]int{{}, {}}, nil)
	s.fits = func(i, p int) bool { return i == 0 || p == 5 }
	if _, err := s.acquire(t.Context(), 1); !errors.Is(err, errNoPool) {
		t.Fatalf("acquire = %v, want errNoPool", err)
	}
	if _, err := s.acquire(t.Context(), 0); err != nil {
		t.Fatalf("the refusal held a slot: %v", err)
	}
}

func TestSlotsLostPool(t *testing.T) {
	ctx := t.Context()
	s := newPoolSlots(pools(1, 1), [][]int{{}, {}}, nil)
	a, err := s.acquire(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	s.lost(0) // a's pool is gone: 0 asks again and waits for b's
	done := make(chan lane)
	go func() {
		l, err := s.acquire(ctx, 0)
		if err != nil {
			t.Error(err)
		}
		done <- l
	}()
	asking(t, s, 0)
	if granted(s, 0) {
		t.Fatal("image 0 got a slot of the lost pool")
	}
	s.finish(1, true)
	if l := <-done; l.pool != b.pool || l.pool == a.pool {
		t.Errorf("image 0 got %+v, want pool %d", l, b.pool)
	}
	// Every pool lost: refused.
	s.lost(0)
	if _, err := s.acquire(ctx, 0); !errors.Is(err, errNoPool) {
		t.Errorf("acquire with every pool lost = %v, want errNoPool", err)
	}
}

func TestSlotsFreeEarly(t *testing.T) {
	ctx := t.Context()
	// Two pools of one slot; 1 needs 0; 2 needs nothing.
	s := newPoolSlots(pools(1, 1), [][]int{{}, {0}, {}}, nil)
	l0, err := s.acquire(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.free(0) // 0 is pushed, its test runs here: its slot goes on
	done := make(chan lane)
	go func() {
		l, err := s.acquire(ctx, 2)
		if err != nil {
			t.Error(err)
		}
		done <- l
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("image 2 got no slot though image 0 gave its back")
	}
	s.finish(0, true)
	// 1 goes where its parent was built, though 0 gave the slot back
	// before its end: the other pool is as free.
	s.finish(2, true)
	l1, err := s.acquire(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if l1.pool != l0.pool {
		t.Errorf("image 1 went to pool %d, want %d, its parent's", l1.pool, l0.pool)
	}
}
