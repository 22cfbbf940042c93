package changelog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LockFile is the name of the lock file Acquire creates in the tree's
// folder. It holds the pid of the process holding the lock, and exists
// only while the lock is held.
//
// Why there: the changelogs a run writes are all under the tree's folder,
// so that folder is the one place every run on the tree knows, whoever
// runs it, whatever its TMPDIR or HOME, and on whatever machine mounts the
// tree (flock works over NFS on Linux). One file for the whole tree keeps
// the rule simple: a run that writes changelogs under DIR holds DIR's lock
// from the moment it reads the tree until its last rename. The tree's
// folder is the top of the git work tree holding DIR, when there is one:
// two runs given nested folders (images and images/app) then take the same
// lock and keep the one journal. Outside git, each DIR is its own tree.
const LockFile = ".docker-pkg.lock"

// Root is the folder whose lock guards the changelogs under dir: the top
// of the git work tree holding dir, else dir itself (absolute).
func Root(ctx context.Context, dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "git", "-C", abs, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return abs, nil
	}
	top := strings.TrimSpace(string(out))
	if rel, err := filepath.Rel(top, abs); err != nil || strings.HasPrefix(rel, "..") || !filepath.IsAbs(top) {
		return abs, nil
	}
	return top, nil
}

// Pending says whether an update interrupted under dir's root left a
// journal that the next lock must finish: a command that only reads the
// tree takes the lock first then (see Acquire), or it would read half a
// cascade.
func Pending(ctx context.Context, dir string) bool {
	// The root is dir or above it: look there, without running git.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		if _, err := os.Lstat(filepath.Join(abs, JournalFile)); err == nil {
			root, err := Root(ctx, dir)
			return err == nil && root == abs
		}
		parent := filepath.Dir(abs)
		if parent == abs {
			return false
		}
		abs = parent
	}
}

// ErrLocked is matched by the error Acquire returns with NoWait when
// another process holds the lock (a *LockedError).
var ErrLocked = errors.New("locked by another docker-pkg run")

// LockedError says who holds the lock Acquire could not take.
type LockedError struct {
	Dir string // the tree's folder
	PID int    // the holder's pid, 0 if unknown
}

func (e *LockedError) Error() string {
	holder := "another docker-pkg run"
	if e.PID > 0 {
		holder += " (pid " + strconv.Itoa(e.PID) + ")"
	}
	return fmt.Sprintf("%s is locked by %s, which is writing changelogs there (lock file %s)",
		e.Dir, holder, filepath.Join(e.Dir, LockFile))
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Option configures Acquire.
type Option func(*options)

type options struct {
	noWait bool
	onWait func(pid int)
	fault  Fault
}

// NoWait makes Acquire fail at once with a *LockedError when another
// process holds the lock. Default: wait until the lock is free or ctx is
// done.
func NoWait() Option { return func(o *options) { o.noWait = true } }

// OnWait has Acquire call fn once, before it starts to wait for another
// process to release the lock, with that process's pid (0 if unknown), so
// the caller can say why nothing happens. Default: no call.
func OnWait(fn func(pid int)) Option { return func(o *options) { o.onWait = fn } }

// WithFault has the lock's recovery and every Batch of the lock call f at
// each Step, for tests that fail or crash a write at a chosen point.
// Default: none.
func WithFault(f Fault) Option { return func(o *options) { o.fault = f } }

// Lock is the exclusive lock on a tree's changelogs: while a process holds
// it no other process, docker-pkg or a library user going through Acquire,
// reads the tree to update it or writes a changelog in it. Every write goes
// through a Batch of the lock.
type Lock struct {
	dir       string // absolute
	opts      options
	recovered Recovery

	mu   sync.Mutex // held by Release and Commit: Commits share the journal
	file *os.File   // nil once released
}

// pollMin and pollMax bound the interval at which a waiting Acquire tries
// the lock again. flock cannot wait on a context, so Acquire polls; a
// released lock is taken within pollMax.
const (
	pollMin = 5 * time.Millisecond
	pollMax = 200 * time.Millisecond
)

// Acquire takes the exclusive lock on the tree in dir, an flock on
// dir/LockFile, waiting while another process holds it (see NoWait and
// OnWait) until ctx is done. Then, before it returns, it repairs what an
// interrupted run left behind (see Recovery): it finishes a cascade of
// renames whose journal is complete, and removes every staged temporary
// file left in the tree. Release the lock when done.
func Acquire(ctx context.Context, dir string, opts ...Option) (*Lock, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	tree, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	if info, err := os.Stat(tree); err != nil {
		return nil, fmt.Errorf("locking %s: %w", tree, err)
	} else if !info.IsDir() {
		return nil, fmt.Errorf("locking %s: it is not a folder", tree)
	}
	abs, err := Root(ctx, tree)
	if err != nil {
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	path := filepath.Join(abs, LockFile)
	waited := false
	for delay := pollMin; ; delay = min(2*delay, pollMax) {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("locking %s: %w", abs, err)
		}
		f, err := tryLock(path)
		if err == nil {
			l := &Lock{dir: abs, opts: o, file: f}
			if l.recovered, err = recoverTree(ctx, abs, tree, o.fault); err != nil {
				l.Release()
				return nil, err
			}
			return l, nil
		}
		if !errors.Is(err, errBusy) {
			return nil, fmt.Errorf("locking %s: %w", abs, err)
		}
		if o.noWait {
			return nil, &LockedError{Dir: abs, PID: holder(path)}
		}
		if !waited {
			waited = true
			if o.onWait != nil {
				o.onWait(holder(path))
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the lock on %s: %w", abs, ctx.Err())
		case <-t.C:
		}
	}
}

// errBusy: another open file description holds the flock.
var errBusy = errors.New("lock busy")

// tryLock opens path and takes an exclusive flock on it without waiting.
// Release removes the file while still holding the lock, so a file locked
// here may have been removed, or replaced by a new one, since it was
// opened: then the lock is worthless and tryLock starts over with the file
// the path names now.
func tryLock(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, errBusy
			}
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		held, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, err
		}
		named, err := os.Stat(path)
		if err == nil && os.SameFile(held, named) {
			if err := writePID(f); err != nil {
				f.Close()
				return nil, fmt.Errorf("writing %s: %w", path, err)
			}
			return f, nil
		}
		f.Close()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// holder reads the pid in the lock file at path: 0 if there is none yet
// (the holder has not written it) or if that process is gone (a file left
// by a killed run, just locked by a run that has not written its pid).
func holder(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 32))
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return 0
	}
	return pid
}

func (l *Lock) held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.file != nil
}

// Dir is the tree's folder, absolute: the root (see Root) of the folder
// given to Acquire.
func (l *Lock) Dir() string { return l.dir }

// Recovered says what Acquire found of an interrupted run and did about
// it.
func (l *Lock) Recovered() Recovery { return l.recovered }

// Release removes the lock file and releases the lock. A Batch of the lock
// can no longer commit. Releasing twice, or a nil Lock, does nothing, so
// Release can be deferred.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	// Removed while held: a process that opened the file meanwhile finds it
	// gone once it gets the flock, and starts over (tryLock).
	err := os.Remove(filepath.Join(l.dir, LockFile))
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if cerr := l.file.Close(); err == nil {
		err = cerr
	}
	l.file = nil
	if err != nil {
		return fmt.Errorf("releasing the lock on %s: %w", l.dir, err)
	}
	return nil
}
