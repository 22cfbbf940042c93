package changelog

import (
	"bytes"
	"os"
	"os/exec"
	"strings"
	"time"
)

// NewEntry is a changelog entry to prepend to an image's changelog.
type NewEntry struct {
	Name         string // the image's short name
	Version      string
	Distribution string // config distribution, "wikimedia" by default
	Reason       string // one or more lines
	Author       string
	Email        string
	Date         time.Time
}

// dateLayout is RFC 2822 as `date -R` prints it. Go formats day and month
// names in English whatever the locale, unlike the reference's strftime.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// Format renders the entry, ready to go on top of the old changelog text.
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

// Maintainer returns the author and email of a new entry: DEBFULLNAME, else
// `git config user.name`, else fallbackName; DEBEMAIL, else
// `git config user.email`, else fallbackEmail. Each is looked up on its own,
// so a known name with an unknown email still works.
func Maintainer(fallbackName, fallbackEmail string) (name, email string) {
	return lookup("DEBFULLNAME", "user.name", fallbackName),
		lookup("DEBEMAIL", "user.email", fallbackEmail)
}

func lookup(env, gitKey, fallback string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	// No git, or no such key: git fails and the fallback applies.
	if out, err := exec.Command("git", "config", "--get", gitKey).Output(); err == nil {
		if v := strings.TrimSpace(string(out)); v != "" {
			return v
		}
	}
	return fallback
}
