package changelog

import (
	"errors"
	"io/fs"

	"github.com/docker-pkg/docker-pkg/internal/readfile"
)

// MaxSize is the largest changelog Parse reads and a Batch rewrites: 1 MiB,
// some ten thousand entries. A larger file is refused before it is read, so
// a runaway file, or a changelog linked to /dev/zero, cannot exhaust memory.
const MaxSize = 1 << 20

// Sentinels for a changelog that cannot be read or rewritten as it is.
var (
	// ErrNotRegular: the changelog is a folder, a FIFO, a device or a
	// socket.
	ErrNotRegular = readfile.ErrNotRegular
	// ErrTooLarge: the changelog holds more than MaxSize bytes.
	ErrTooLarge = readfile.ErrTooLarge
	// ErrReadOnly: the changelog has no write permission; a Batch does not
	// replace it behind its owner's back.
	ErrReadOnly = errors.New("changelog is read-only")
)

// readRegular returns the content and mode of the regular file at path,
// links followed, at most limit bytes (see readfile.Read).
func readRegular(path string, limit int64) ([]byte, fs.FileInfo, error) {
	return readfile.Read(path, limit)
}
