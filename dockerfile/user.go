package dockerfile

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// ErrNonNumericUser is matched by the error of CheckNumericUser.
var ErrNonNumericUser = errors.New("the last USER is not a numeric uid[:gid] (force_numeric_user)")

var (
	userInstruction = regexp.MustCompile(`(?i)^USER\s`)
	numericUser     = regexp.MustCompile(`(?i)^USER\s+\d+(:\d+)?$`)
	continuation    = regexp.MustCompile(`\\[ \t]*$`)
)

// CheckNumericUser enforces force_numeric_user on a rendered Dockerfile: the
// last USER instruction must be a numeric uid, optionally with a numeric gid.
// A Dockerfile without USER passes. Unlike the reference, which only reads
// lines starting with "USER ", indented, tab-separated and lower-case
// instructions count too, and continuation lines do not.
func CheckNumericUser(rendered []byte) error {
	last, lastLine := "", 0
	continued := false
	for i, line := range strings.Split(string(rendered), "\n") {
		text := strings.TrimSpace(line)
		if continued {
			// Comments and blank lines do not end a continuation.
			if text != "" && !strings.HasPrefix(text, "#") {
				continued = continuation.MatchString(line)
			}
			continue
		}
		if userInstruction.MatchString(text) {
			last, lastLine = text, i+1
		}
		continued = !strings.HasPrefix(text, "#") && continuation.MatchString(line)
	}
	if last != "" && !numericUser.MatchString(last) {
		return fmt.Errorf("line %d: %s: %w", lastLine, last, ErrNonNumericUser)
	}
	return nil
}
