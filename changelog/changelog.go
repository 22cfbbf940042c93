package changelog

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/docker-pkg/docker-pkg/internal/ref"
)

// ErrMalformed is matched by every error Parse returns for a changelog that
// cannot be read as a Debian changelog.
var ErrMalformed = errors.New("malformed changelog")

// Entry is what docker-pkg needs of a changelog: its top entry.
type Entry struct {
	Name    string // source package field: the image's short name
	Version string // exactly as written, epoch and ~ included
}

// header is dpkg's changelog header regexp (Dpkg::Changelog::Entry::Debian),
// which python-debian, used by the reference, shares.
var header = regexp.MustCompile(`(?i)^(\w[-+0-9a-z.]*) \(([^() \t]+)\)((?:\s+[-+0-9a-z.]+)+);(.*?)\s*$`)

// Parse reads the top entry of the changelog at path. Errors name the file
// and, where known, the line. The changelog must be a regular file (links
// followed) of at most MaxSize bytes: anything else is refused, matching
// ErrNotRegular or ErrTooLarge, before it is read.
//
// Only the header line is read, by hand rather than with
// pault.ag/go/debian/changelog: that library insists on a zero-padded day in
// the trailer's date and so rejects the changelogs the reference docker-pkg
// wrote (`Mon,  5 Jan 2026`), and it does not need the rest of the entry.
// Blank lines before the header are skipped, as dpkg-parsechangelog does.
func Parse(path string) (Entry, error) {
	b, _, err := readRegular(path, MaxSize)
	if err != nil {
		return Entry{}, fmt.Errorf("reading changelog: %w", err)
	}
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if strings.TrimSpace(string(line)) != "" {
			return parseHeader(path, n, strings.TrimRight(string(line), "\r"))
		}
	}
	return Entry{}, fmt.Errorf("%s: %w: empty changelog", path, ErrMalformed)
}

func parseHeader(path string, n int, line string) (Entry, error) {
	m := header.FindStringSubmatch(line)
	if m == nil {
		return Entry{}, fmt.Errorf(`%s:%d: %w: header line must look like "name (version) distribution; urgency=..."`,
			path, n, ErrMalformed)
	}
	if !ref.ValidDebianVersion(m[2]) {
		return Entry{}, fmt.Errorf("%s:%d: %w: invalid version %q", path, n, ErrMalformed, m[2])
	}
	return Entry{Name: m[1], Version: m[2]}, nil
}

// Date reads the date of the top entry of the changelog at path, from its
// trailer line (" -- Author <email>  DATE"): zero when it has none that
// parses. Builds on builders take it as SOURCE_DATE_EPOCH, so the same
// version gives the same image bytes. Parse leaves it: the scan of a
// large tree has no use for it.
func Date(path string) (time.Time, error) {
	b, _, err := readRegular(path, MaxSize)
	if err != nil {
		return time.Time{}, fmt.Errorf("reading changelog: %w", err)
	}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if strings.TrimSpace(string(line)) != "" {
			return trailerDate(b), nil // the header: the trailer follows
		}
	}
	return time.Time{}, nil
}

// trailerDate is the date of the first trailer line of rest, the entry
// after its header; zero when there is none before the next entry, or it
// does not parse (the reference's space-padded days do: mail.ParseDate
// takes them).
func trailerDate(rest []byte) time.Time {
	for len(rest) > 0 {
		line := rest
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		if len(line) > 0 && line[0] != ' ' && line[0] != '\t' && strings.TrimSpace(string(line)) != "" {
			return time.Time{} // the next entry's header: this one has no trailer
		}
		after, ok := bytes.CutPrefix(line, []byte(" -- "))
		if !ok {
			continue
		}
		_, date, ok := strings.Cut(string(after), ">  ")
		if !ok {
			return time.Time{}
		}
		t, err := mail.ParseDate(strings.TrimSpace(date))
		if err != nil {
			return time.Time{}
		}
		return t
	}
	return time.Time{}
}
