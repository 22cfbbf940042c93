// Package readfile reads the small files of an image repository that a
// broken or hostile tree could make dangerous to read: a changelog, a
// control file, a template. Only a regular file is read (a link to one is
// followed); a FIFO never blocks, a device is never read, and never more
// than a limit is held in memory.
package readfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// Sentinels, matched with errors.Is.
var (
	ErrNotRegular = errors.New("not a regular file")
	ErrTooLarge   = errors.New("file too large")
)

// Error is a file Read refused: Err is ErrNotRegular or ErrTooLarge, Detail
// says why in words ("it is a FIFO", "N bytes, at most M may be read").
type Error struct {
	Path   string
	Err    error
	Detail string
}

func (e *Error) Error() string { return e.Path + ": " + e.Err.Error() + ": " + e.Detail }
func (e *Error) Unwrap() error { return e.Err }

// Read returns the content and the FileInfo of the regular file at path,
// at most limit bytes. It is opened non-blocking and its type read from
// the open descriptor, so what path names cannot change in between. A
// file refused is an *Error; one that cannot be opened an *fs.PathError.
func Read(path string, limit int64) ([]byte, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err // an *fs.PathError, naming path
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, info, &Error{path, ErrNotRegular, "it is " + Kind(info.Mode())}
	}
	if info.Size() > limit {
		return nil, info, &Error{path, ErrTooLarge, fmt.Sprintf("%d bytes, at most %d may be read", info.Size(), limit)}
	}
	// The file may grow after the Stat: the limit holds whatever happens.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, info, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, info, &Error{path, ErrTooLarge, fmt.Sprintf("it grew beyond %d bytes while being read", limit)}
	}
	return b, info, nil
}

// Kind names the type of a file that is not a regular one: "a folder", "a
// FIFO", ...
func Kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "a regular file"
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file (mode " + m.String() + ")"
}
