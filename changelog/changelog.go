package changelog

import "errors"

// ErrMalformed is matched by every error Parse returns for a changelog that
// cannot be read as a Debian changelog.
var ErrMalformed = errors.New("malformed changelog")

// Entry is what docker-pkg needs of a changelog: its top entry.
type Entry struct {
	Name    string // source package field: the image's short name
	Version string // exactly as written, epoch and ~ included
}

// Parse reads the top entry of the changelog at path. Errors name the file
// and, where known, the line.
func Parse(path string) (Entry, error) {
	panic("TODO")
}
