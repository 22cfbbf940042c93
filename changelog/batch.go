package changelog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// TempPattern names the temporary files a Batch stages next to a
// changelog (the * is random). They are never build inputs: see IsTemp.
const TempPattern = ".changelog.docker-pkg-*.tmp"

// journalTempPattern names the journal while it is written, before it is
// renamed to JournalFile.
const journalTempPattern = ".docker-pkg.journal-*.tmp"

// IsTemp reports whether a file name is one of the temporary files of a
// Batch: a staged changelog, or a journal being written. One is left behind
// only by a run that died; the next Acquire removes it.
func IsTemp(name string) bool {
	for _, p := range []string{TempPattern, journalTempPattern} {
		if ok, _ := filepath.Match(p, name); ok { // the patterns are valid
			return true
		}
	}
	return false
}

// IsInternal reports whether a file name is one of the files this package
// keeps in a tree: the lock file, the journal, or a temporary file. None
// of them is a build input or belongs in a build context.
func IsInternal(name string) bool {
	return name == LockFile || name == JournalFile || IsTemp(name)
}

// Step is a point in the writing of a cascade where a Fault is called.
type Step int

// The steps, in order.
const (
	// StepStaged: a changelog is staged (Batch.Stage); n counts them from 1.
	StepStaged Step = iota + 1
	// StepPrepared: Commit has every changelog staged and is about to
	// write the journal; the last point where nothing is written.
	StepPrepared
	// StepJournaled: the journal is on disk, no changelog renamed yet.
	// From here on the cascade lands whole, even across a crash.
	StepJournaled
	// StepRenamed: a staged file is renamed over its changelog; n counts
	// them from 1.
	StepRenamed
	// StepRecovered: Acquire's recovery renamed a changelog of an
	// interrupted cascade; n counts them from 1.
	StepRecovered
)

var stepNames = map[Step]string{
	StepStaged: "staged", StepPrepared: "prepared", StepJournaled: "journaled",
	StepRenamed: "renamed", StepRecovered: "recovered",
}

func (s Step) String() string {
	if n, ok := stepNames[s]; ok {
		return n
	}
	return fmt.Sprintf("Step(%d)", int(s))
}

// ParseStep returns the Step whose String is name.
func ParseStep(name string) (Step, error) {
	for s, n := range stepNames {
		if n == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown step %q (staged, prepared, journaled, renamed or recovered)", name)
}

// Fault is a fault injection point for tests (see WithFault): called at
// each Step with the count n where the step has one. An error it returns
// before StepJournaled fails the Stage or the Commit with nothing written;
// from StepJournaled on, it stops the Commit or the recovery right there,
// as a crash would, and leaves the journal for the next Acquire. A Fault
// may also kill the process, to test a real crash.
type Fault func(ctx context.Context, step Step, n int) error

func (l *Lock) fault(ctx context.Context, step Step, n int) error {
	if l.opts.fault == nil {
		return nil
	}
	return l.opts.fault(ctx, step, n)
}

// Batch is a cascade of changelog rewrites that lands whole or not at all,
// across errors, interrupts and crashes. Stage writes each new changelog
// in full to a temporary file next to the old one, synced; Commit writes a
// journal listing them, synced, then renames each over its changelog and
// removes the journal. A crash before the journal is complete leaves every
// changelog as it was (the next Acquire removes the temporary files); a
// crash after leaves a journal from which the next Acquire finishes the
// renames. A changelog is never seen truncated.
type Batch struct {
	lock  *Lock
	files []staged
	done  bool // committed or aborted
}

type staged struct {
	path string // the changelog, symlinks resolved
	tmp  string
	old  string // sha256 of the content the staged file was made from
}

// Batch starts a cascade of writes under the lock. A Batch is used by one
// goroutine; Commits of several batches take turns.
func (l *Lock) Batch() *Batch { return &Batch{lock: l} }

// Stage writes entry followed by the current content of the changelog at
// path to a temporary file in the same folder, with the same permissions,
// and syncs it; the changelog is not touched. A link is followed, and the
// file it names is the one replaced.
//
// The changelog must be a regular file of at most MaxSize bytes
// (ErrNotRegular, ErrTooLarge) that may be written (ErrReadOnly: a
// read-only changelog is refused, not replaced). If its first line ends in
// CRLF, so do the lines of the new entry; its bytes are otherwise written
// as they are. The entry must be text CheckReason would accept (with no
// carriage return: Format writes none), else the error matches
// ErrInvalidEntry. Each changelog may be staged once per batch.
func (b *Batch) Stage(ctx context.Context, path string, entry []byte) error {
	if b.done {
		return fmt.Errorf("staging %s: the batch is already committed or aborted", path)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("staging %s: %w", path, err)
	}
	// Unlocked, a staged file could be taken for a leftover and removed by
	// another run's Acquire.
	if !b.lock.held() {
		return fmt.Errorf("staging %s: the lock on %s was released", path, b.lock.dir)
	}
	if err := checkEntry(entry); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("reading changelog %s: %w", path, err)
	}
	for _, s := range b.files {
		if s.path == real {
			return fmt.Errorf("staging %s: %s is already staged in this batch", path, real)
		}
	}
	old, info, err := readRegular(real, MaxSize)
	if err != nil && real != path {
		return fmt.Errorf("reading changelog %s: %w", path, err)
	}
	if err != nil {
		return fmt.Errorf("reading changelog: %w", err)
	}
	if perm := info.Mode().Perm(); perm&0o222 == 0 || syscall.Access(real, 2 /* W_OK */) != nil {
		return fmt.Errorf("%s: %w (mode %04o): make it writable (chmod u+w) to update it", real, ErrReadOnly, perm)
	}
	if crlf(old) {
		entry = bytes.ReplaceAll(entry, []byte("\n"), []byte("\r\n"))
	}
	if n := int64(len(entry) + len(old)); n > MaxSize {
		// Written, it could never be read again: every later command
		// would fail on it.
		return fmt.Errorf("%s: %w: the new entry would make it %d bytes, above the %d docker-pkg reads; move old entries out of it (to changelog.old, say)", real, ErrTooLarge, n, MaxSize)
	}
	f, err := os.CreateTemp(filepath.Dir(real), TempPattern)
	if err != nil {
		return fmt.Errorf("writing %s: %w", real, err)
	}
	err = write(f, info.Mode().Perm(), entry, old)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", real, err)
	}
	sum := sha256.Sum256(old)
	b.files = append(b.files, staged{path: real, tmp: f.Name(), old: hex.EncodeToString(sum[:])})
	if err := b.lock.fault(ctx, StepStaged, len(b.files)); err != nil {
		return fmt.Errorf("staging %s: %w", real, err)
	}
	return nil
}

// crlf reports whether the first line of b ends in CRLF.
func crlf(b []byte) bool {
	i := bytes.IndexByte(b, '\n')
	return i > 0 && b[i-1] == '\r'
}

func write(f *os.File, perm os.FileMode, parts ...[]byte) error {
	if err := f.Chmod(perm); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := f.Write(p); err != nil {
			return err
		}
	}
	return f.Sync()
}

// IncompleteError is returned by Commit when it stopped after the journal
// was written: some changelogs have their new content, the others are
// staged and listed in the journal, and the next Acquire on the tree
// finishes them.
type IncompleteError struct {
	Journal string
	Written []string // changelogs renamed
	Pending []string // changelogs staged, not renamed yet
	Err     error
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("%v\n%d of %d changelogs written; the others are staged and listed in %s, and the next docker-pkg run that takes the lock on %s finishes them\nwritten: %s\nnot yet written: %s",
		e.Err, len(e.Written), len(e.Written)+len(e.Pending), e.Journal, filepath.Dir(e.Journal),
		strings.Join(e.Written, ", "), strings.Join(e.Pending, ", "))
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// Commit puts every staged changelog in place, all or nothing. It fails
// with nothing written (the batch aborted) if ctx is done or the lock was
// released before it starts, or if the journal cannot be written. Once the
// journal is on disk ctx is no longer consulted: finishing the renames is
// quicker and safer than leaving them to the next run. If a rename then
// fails, the error is an *IncompleteError and the journal stays for the
// next Acquire.
func (b *Batch) Commit(ctx context.Context) error {
	l := b.lock
	l.mu.Lock()
	defer l.mu.Unlock()
	if b.done {
		return errors.New("committing changelogs: the batch is already committed or aborted")
	}
	if l.file == nil {
		b.abort()
		return fmt.Errorf("committing changelogs: the lock on %s was released", l.dir)
	}
	if len(b.files) == 0 {
		b.done = true
		return nil
	}
	if err := ctx.Err(); err != nil {
		b.abort()
		return fmt.Errorf("committing changelogs: %w", err)
	}
	if err := l.fault(ctx, StepPrepared, 0); err != nil {
		b.abort()
		return fmt.Errorf("committing changelogs: %w", err)
	}
	journal := filepath.Join(l.dir, JournalFile)
	if err := writeJournal(l.dir, b.files); err != nil {
		b.abort()
		return fmt.Errorf("writing the journal %s: %w", journal, err)
	}
	// From here the journal owns the staged files: an error leaves them for
	// the next Acquire rather than removing them.
	b.done = true
	incomplete := func(renamed []bool, err error) error {
		e := &IncompleteError{Journal: journal, Err: err}
		for i, s := range b.files {
			if renamed[i] {
				e.Written = append(e.Written, s.path)
			} else {
				e.Pending = append(e.Pending, s.path)
			}
		}
		return e
	}
	renamed := make([]bool, len(b.files))
	if err := l.fault(ctx, StepJournaled, 0); err != nil {
		return incomplete(renamed, err)
	}
	var errs []error
	for i, s := range b.files {
		if err := os.Rename(s.tmp, s.path); err != nil {
			// Go on: the fewer left to the next run, the better.
			errs = append(errs, fmt.Errorf("replacing %s: %w", s.path, err))
			continue
		}
		renamed[i] = true
		if err := l.fault(ctx, StepRenamed, i+1); err != nil {
			return incomplete(renamed, err)
		}
	}
	// The renames must be durable before the journal goes: a crash then
	// could otherwise undo some of them with no journal to redo them.
	for _, dir := range dirs(b.files) {
		if err := syncDir(dir); err != nil {
			errs = append(errs, fmt.Errorf("syncing %s: %w", dir, err))
		}
	}
	if len(errs) > 0 {
		return incomplete(renamed, errors.Join(errs...))
	}
	// Every rename is durable: a journal that survives this (a failed
	// remove, a crash) only makes the next Acquire find nothing to do.
	if err := os.Remove(journal); err == nil {
		syncDir(l.dir)
	}
	return nil
}

// Abort removes the staged files, leaving every changelog untouched. It
// does nothing after Commit or a previous Abort, so it can be deferred.
func (b *Batch) Abort() {
	if b.done {
		return
	}
	b.abort()
}

func (b *Batch) abort() {
	for _, s := range b.files {
		os.Remove(s.tmp) // best effort: the next Acquire removes a leftover
	}
	b.files = nil
	b.done = true
}

// dirs lists the folders of the staged changelogs, once each.
func dirs(files []staged) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range files {
		if d := filepath.Dir(s.path); !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
