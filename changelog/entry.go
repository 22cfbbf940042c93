package changelog

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// NewEntry is a changelog entry to prepend to an image's changelog.
type NewEntry struct {
	Name         string // the image's short name
	Version      string
	Distribution string // config distribution, "wikimedia" by default
	Reason       string // one or more lines; see CheckReason
	Author       string
	Email        string
	Date         time.Time
}

// dateLayout is RFC 2822 as `date -R` prints it. Go formats day and month
// names in English whatever the locale, unlike the reference's strftime.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// Format renders the entry, ready to go on top of the old changelog text,
// with LF line endings (Batch.Stage turns them into CRLF for a CRLF file).
func (e NewEntry) Format() []byte {
	var b bytes.Buffer
	b.WriteString(e.Name + " (" + e.Version + ") " + e.Distribution + "; urgency=high\n\n")
	// A trailing newline in the reason would otherwise become an empty
	// reason line.
	for _, line := range strings.Split(strings.TrimRight(e.Reason, "\r\n"), "\n") {
		b.WriteString("   " + strings.TrimRight(line, "\r") + "\n")
	}
	b.WriteString("\n -- " + e.Author + " <" + e.Email + ">  " + e.Date.Format(dateLayout) + "\n\n")
	return b.Bytes()
}

// ErrInvalidReason is matched by the errors CheckReason returns.
var ErrInvalidReason = errors.New("invalid reason")

// ErrInvalidEntry is matched by the error Batch.Stage returns for an entry
// it will not write.
var ErrInvalidEntry = errors.New("invalid changelog entry")

// CheckReason says why reason cannot be the text of a changelog entry, or
// returns nil. A reason must hold more than white space: an empty one is
// refused, not replaced by a default (that is for a reason not given at
// all). It must be UTF-8, as Debian policy (4.4) wants of a changelog.
// It may hold newlines (one reason line each) and tabs (harmless in a text
// file, and common in pasted text); a carriage return only before a newline
// (text pasted from Windows; Format drops it). Every other control
// character is refused (an escape sequence would reach the terminal of
// whoever reads the changelog), and so are the bidirectional overrides and
// isolates (U+202A-U+202E, U+2066-U+2069), which make text read otherwise
// than it is stored.
func CheckReason(reason string) error {
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("%w: it is empty", ErrInvalidReason)
	}
	if err := checkText(strings.ReplaceAll(reason, "\r\n", "\n")); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidReason, err)
	}
	return nil
}

// checkEntry is CheckReason's rule for a whole formatted entry, which
// holds no carriage return at all: its maintainer comes from the
// environment or git and must be as clean as the reason.
func checkEntry(entry []byte) error {
	if err := checkText(string(entry)); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEntry, err)
	}
	return nil
}

// checkText finds the first character CheckReason forbids and names it
// with its line.
func checkText(s string) error {
	line := 1
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Errorf("line %d is not valid UTF-8 (byte 0x%02x)", line, s[i])
		case r == '\n':
			line++
		case r == '\t':
		case unicode.IsControl(r), r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
			return fmt.Errorf("line %d holds the control character %U; only newline and tab are allowed", line, r)
		}
	}
	return nil
}

// gitTimeout bounds each `git config` Maintainer runs: it answers in
// milliseconds, but a git wrapper or a hung file system must not stall an
// update.
const gitTimeout = 5 * time.Second

// maxGitOutput bounds what Maintainer reads of a git answer.
const maxGitOutput = 4 << 10

// Maintainer returns the author and email of a new entry: DEBFULLNAME, else
// `git config user.name`, else fallbackName; DEBEMAIL, else
// `git config user.email`, else fallbackEmail. Each is looked up on its own,
// so a known name with an unknown email still works. Each git run is
// stopped when ctx is done or after 5 seconds, and then the fallback
// applies.
func Maintainer(ctx context.Context, fallbackName, fallbackEmail string) (name, email string) {
	return lookup(ctx, "DEBFULLNAME", "user.name", fallbackName),
		lookup(ctx, "DEBEMAIL", "user.email", fallbackEmail)
}

func lookup(ctx context.Context, env, gitKey, fallback string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "config", "--get", gitKey)
	// A child git leaves behind (a wrapper script's) must not hold the
	// pipe open past the kill.
	cmd.WaitDelay = time.Second
	out := &capped{max: maxGitOutput}
	cmd.Stdout = out
	// No git, no such key, killed, or an answer too long: the fallback.
	if err := cmd.Run(); err != nil || out.over {
		return fallback
	}
	if v := strings.TrimSpace(out.b.String()); v != "" {
		return v
	}
	return fallback
}

// capped keeps the first max bytes written to it and notes whether there
// were more.
type capped struct {
	b    bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.b.Len(); len(p) > room {
		c.b.Write(p[:max(room, 0)])
		c.over = true
		return len(p), nil
	}
	return c.b.Write(p)
}
