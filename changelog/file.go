package changelog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxSize is the largest changelog Parse reads and a Batch rewrites: 1 MiB,
// some ten thousand entries. A larger file is refused before it is read, so
// a runaway file, or a changelog linked to /dev/zero, cannot exhaust memory.
const MaxSize = 1 << 20

// Sentinels for a changelog that cannot be read or rewritten as it is.
var (
	// ErrNotRegular: the changelog is a folder, a FIFO, a device or a
	// socket.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: the changelog holds more than MaxSize bytes.
	ErrTooLarge = errors.New("changelog too large")
	// ErrReadOnly: the changelog has no write permission; a Batch does not
	// replace it behind its owner's back.
	ErrReadOnly = errors.New("changelog is read-only")
)

// readRegular returns the content and mode of the regular file at path,
// links followed, at most limit bytes. Anything else is refused from its
// mode before it is opened, so a FIFO never blocks and a device is never
// opened; the descriptor is checked again after opening in case the file
// was swapped in between.
func readRegular(path string, limit int64) ([]byte, fs.FileInfo, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, nil, err // names path
	}
	if err := checkRegular(path, info, limit); err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if err := checkRegular(path, info, limit); err != nil {
		return nil, nil, err
	}
	// The file may grow after the Stat: the limit holds whatever happens.
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, nil, fmt.Errorf("%s: %w: it grew beyond %d bytes while being read", path, ErrTooLarge, limit)
	}
	return b, info, nil
}

func checkRegular(path string, info fs.FileInfo, limit int64) error {
	var what string
	switch m := info.Mode(); {
	case m.IsRegular():
		if info.Size() > limit {
			return fmt.Errorf("%s: %w: %d bytes, at most %d may be read", path, ErrTooLarge, info.Size(), limit)
		}
		return nil
	case m.IsDir():
		what = "a folder"
	case m&fs.ModeNamedPipe != 0:
		what = "a FIFO"
	case m&fs.ModeCharDevice != 0:
		what = "a character device"
	case m&fs.ModeDevice != 0:
		what = "a block device"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	default:
		what = "not a regular file (mode " + m.String() + ")"
	}
	return fmt.Errorf("%s: %w: it is %s", path, ErrNotRegular, what)
}
