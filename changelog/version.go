package changelog

import (
	"errors"
	"fmt"
	"math/big"
	"regexp"

	"github.com/docker-pkg/docker-pkg/internal/ref"
	"pault.ag/go/debian/version"
)

// ErrCannotBump is matched by the error Bump returns for a tag it cannot
// turn into a higher one.
var ErrCannotBump = errors.New("cannot bump version")

// ErrInvalidVersion is matched by the error Compare returns for a string
// that is not a Debian version.
var ErrInvalidVersion = errors.New("invalid Debian version")

// Bump returns the tag of the next security update of tag, with updateID
// the letter of the update suffix (config update_id, "s" by default).
//
// A tag the reference docker-pkg accepts, one matching
// `^([\d\-\.]+?)(-{id}(\d+))?$`, gets the reference's result: `{base}-{id}1`,
// or `{base}-{id}{N+1}`. Beyond the reference, any other tag ending in
// `-{id}N` gets N incremented and every other tag gets `-{id}1` appended.
//
// The result must be a valid Docker tag that sorts above tag under Debian
// version rules; otherwise the error matches ErrCannotBump and names the
// tag. So a tag holding an epoch (`1:2.0`) or a tilde (`1.0~rc1`) cannot be
// bumped: appending a suffix cannot remove the character Docker rejects.
func Bump(tag, updateID string) (string, error) {
	next := bumped(tag, updateID)
	if !ref.ValidTag(next) {
		return "", fmt.Errorf("%w %q: %q is not a valid Docker tag", ErrCannotBump, tag, next)
	}
	c, err := Compare(next, tag)
	if err != nil {
		return "", fmt.Errorf("%w %q: %w", ErrCannotBump, tag, err)
	}
	if c <= 0 {
		return "", fmt.Errorf("%w %q: %q does not sort above it", ErrCannotBump, tag, next)
	}
	return next, nil
}

func bumped(tag, updateID string) string {
	id := regexp.QuoteMeta(updateID)
	// Go's regexp picks the same submatches as Python's backtracking one,
	// lazy base included, so this is the reference's result.
	if m := regexp.MustCompile(`^([\d\-.]+?)(-` + id + `(\d+))?$`).FindStringSubmatch(tag); m != nil {
		if m[2] == "" {
			return m[1] + "-" + updateID + "1"
		}
		return m[1] + "-" + updateID + increment(m[3])
	}
	if m := regexp.MustCompile(`^(.*)-` + id + `(\d+)$`).FindStringSubmatch(tag); m != nil {
		return m[1] + "-" + updateID + increment(m[2])
	}
	return tag + "-" + updateID + "1"
}

// increment adds one to a decimal number of any length, dropping leading
// zeros as Python's int() does in the reference.
func increment(digits string) string {
	n, _ := new(big.Int).SetString(digits, 10) // digits matched \d+
	return n.Add(n, big.NewInt(1)).String()
}

// Compare orders two Debian versions: -1 if a sorts below b, 0 if they are
// equal, +1 if a sorts above b.
func Compare(a, b string) (int, error) {
	va, err := version.Parse(a)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrInvalidVersion, a, err)
	}
	vb, err := version.Parse(b)
	if err != nil {
		return 0, fmt.Errorf("%w %q: %v", ErrInvalidVersion, b, err)
	}
	switch c := version.Compare(va, vb); {
	case c < 0:
		return -1, nil
	case c > 0:
		return 1, nil
	}
	return 0, nil
}
