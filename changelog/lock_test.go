package changelog

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAcquireRelease(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", l.Dir(), dir)
	}
	if !l.Recovered().Empty() {
		t.Errorf("Recovered() = %+v in a clean tree", l.Recovered())
	}
	// The lock file names its holder while the lock is held ...
	assertContent(t, filepath.Join(dir, LockFile), strconv.Itoa(os.Getpid())+"\n")
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	// ... and is gone after: nothing is left in the user's tree.
	if _, err := os.Stat(filepath.Join(dir, LockFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after Release: %v", err)
	}
	if err := l.Release(); err != nil {
		t.Errorf("second Release: %v", err)
	}
	var none *Lock
	if err := none.Release(); err != nil {
		t.Errorf("Release of a nil lock: %v", err)
	}
}

func TestAcquireNotAFolder(t *testing.T) {
	file := writeFile(t, filepath.Join(t.TempDir(), "file"), "x", 0o644)
	if _, err := Acquire(t.Context(), file); err == nil || !strings.Contains(err.Error(), file+": it is not a folder") {
		t.Errorf("Acquire(file) error = %v", err)
	}
}

// A lock file left by a killed run (its pid, no flock) does not stop
// anyone.
func TestAcquireStaleLockFile(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, LockFile), "999999999\n", 0o644)
	l := lock(t, dir, NoWait())
	assertContent(t, filepath.Join(dir, LockFile), strconv.Itoa(os.Getpid())+"\n")
	l.Release()
}

// With NoWait a held lock fails at once, naming the holder, here another
// process.
func TestAcquireNoWait(t *testing.T) {
	dir := t.TempDir()
	pid, release := holdLock(t, dir)
	_, err := Acquire(t.Context(), dir, NoWait())
	var lerr *LockedError
	if !errors.As(err, &lerr) || !errors.Is(err, ErrLocked) {
		t.Fatalf("Acquire() error = %v, want a *LockedError", err)
	}
	want := dir + " is locked by another docker-pkg run (pid " + strconv.Itoa(pid) + "), which is writing changelogs there (lock file " + filepath.Join(dir, LockFile) + ")"
	if lerr.PID != pid || err.Error() != want {
		t.Errorf("error = %q\nwant %q", err, want)
	}
	release()
	lock(t, dir, NoWait())
}

// Without NoWait, Acquire says once that it waits, with the holder's pid,
// and gets the lock when the holder lets go.
func TestAcquireWaits(t *testing.T) {
	dir := t.TempDir()
	pid, release := holdLock(t, dir)
	var calls []int
	var mu sync.Mutex
	got := make(chan error, 1)
	go func() {
		l, err := Acquire(t.Context(), dir, OnWait(func(holder int) {
			mu.Lock()
			calls = append(calls, holder)
			mu.Unlock()
		}))
		if err == nil {
			defer l.Release()
			assertContent(t, filepath.Join(dir, LockFile), strconv.Itoa(os.Getpid())+"\n")
		}
		got <- err
	}()
	// Let it poll several times before the holder lets go.
	for {
		mu.Lock()
		n := len(calls)
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	select {
	case err := <-got:
		t.Fatalf("Acquire returned %v while the lock was held", err)
	default:
	}
	release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || calls[0] != pid {
		t.Errorf("OnWait called with %v, want once with %d", calls, pid)
	}
}

func TestAcquireContext(t *testing.T) {
	dir := t.TempDir()
	lock(t, dir) // held by this process, through another descriptor
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := Acquire(ctx, dir); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for the lock on "+dir) {
		t.Errorf("Acquire() error = %v, want the deadline", err)
	}
}

// Many takers, each removing the lock file as it releases: never two
// holders at once. A lock file removed under a waiter must not give it a
// lock of its own (see tryLock).
func TestLockExclusive(t *testing.T) {
	dir := t.TempDir()
	var holders, max, turns atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				l, err := Acquire(t.Context(), dir)
				if err != nil {
					t.Error(err)
					return
				}
				n := holders.Add(1)
				if n > max.Load() {
					max.Store(n)
				}
				turns.Add(1)
				time.Sleep(100 * time.Microsecond)
				holders.Add(-1)
				if err := l.Release(); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if max.Load() != 1 || turns.Load() != 200 {
		t.Errorf("at most %d holders at once over %d turns; want 1 over 200", max.Load(), turns.Load())
	}
}
