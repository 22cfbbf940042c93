package ref

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/distribution/reference"
)

// The grammars, anchored. tag and domain are distribution/reference's own
// patterns; component is its path-component, which it does not export
// (TestComponentAgreesWithReference keeps them equal).
var (
	tag       = regexp.MustCompile(`^(?:` + reference.TagRegexp.String() + `)$`)
	domain    = regexp.MustCompile(`^(?:` + reference.DomainRegexp.String() + `)$`)
	component = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	// debian is python-debian's version syntax. It is laxer than dpkg's (an
	// upstream version may start with a letter, dpkg only warns about it),
	// and docker-pkg 4.0.4 accepts whatever python-debian accepts.
	debian = regexp.MustCompile(`^(?:([0-9]+):)?([A-Za-z0-9.+:~-]+?)(?:-([A-Za-z0-9+.~]+))?$`)
)

// ValidTag reports whether Docker accepts tag: letters, digits, '_', '.'
// and '-', not starting with '.' or '-', at most 128 characters.
func ValidTag(t string) bool { return tag.MatchString(t) }

// CheckTag says why Docker would refuse tag, or returns nil. The message
// does not repeat the tag; callers name it.
func CheckTag(t string) error {
	if ValidTag(t) {
		return nil
	}
	switch {
	case t == "":
		return errors.New("it is empty")
	case len(t) > 128:
		return fmt.Errorf("it is %d characters long, the limit is 128", len(t))
	case strings.ContainsAny(t, "~+:"):
		return fmt.Errorf("%q is not allowed in a tag", t[strings.IndexAny(t, "~+:")])
	case t[0] == '.' || t[0] == '-':
		return fmt.Errorf("a tag cannot start with %q", t[0])
	}
	return errors.New("a tag is letters, digits, '_', '.' and '-'")
}

// ValidComponent reports whether c is one component of a repository path
// as Docker accepts it: lower-case letters and digits, with single
// separators (., _, __, or dashes) between them. An image's short name
// must be one.
func ValidComponent(c string) bool { return component.MatchString(c) }

// ErrCredentials is matched by the error of CheckRegistry for a registry
// holding user information (user:password@host). The error never repeats
// the value.
var ErrCredentials = errors.New("holds credentials (user:password@); set username and password instead")

// CheckRegistry says why registry is not a registry host as Docker reads
// one, host[:port], or returns nil; "" (Docker Hub) is valid. A value
// holding user information is refused without being repeated, since it
// holds a password.
func CheckRegistry(registry string) error {
	switch {
	case registry == "":
		return nil
	case strings.Contains(registry, "@"):
		return ErrCredentials
	case strings.Contains(registry, "://"):
		return fmt.Errorf("%q is a URL; want host[:port], e.g. registry.example.org:5000", registry)
	case strings.Contains(registry, "/"):
		return fmt.Errorf("%q holds a path; want host[:port] and put the path in namespace", registry)
	case !domain.MatchString(registry):
		return fmt.Errorf("%q is not a host[:port] (letters, digits, '-' and '.', an optional :port)", registry)
	}
	return nil
}

// CheckNamespace says why namespace is not a repository path Docker
// accepts (components joined with '/'), or returns nil; "" is valid.
func CheckNamespace(namespace string) error {
	if namespace == "" {
		return nil
	}
	for _, c := range strings.Split(namespace, "/") {
		if !ValidComponent(c) {
			return fmt.Errorf("%q: Docker does not accept %q in a repository path: lower-case letters, digits and single separators (., _, __, -) only", namespace, c)
		}
	}
	if len(namespace) > reference.RepositoryNameTotalLengthMax {
		return fmt.Errorf("%q is longer than Docker's %d characters for a whole repository name", namespace, reference.RepositoryNameTotalLengthMax)
	}
	return nil
}

// Join joins registry, namespace and short name with "/", leaving out
// empty parts: the repository of an image.
func Join(registry, namespace, short string) string {
	out := ""
	for _, part := range []string{registry, namespace, short} {
		if part == "" {
			continue
		}
		if out != "" {
			out += "/"
		}
		out += part
	}
	return out
}

// SplitLabel splits a full label into name and tag at the last colon after
// the last slash, so a registry port (127.0.0.1:5000/x:1.0) stays in the
// name. A digest (@sha256:...) is not part of the tag. ok is false when
// the label has no tag; name is then the whole label without its digest.
func SplitLabel(label string) (name, tag string, ok bool) {
	r, _, _ := strings.Cut(label, "@")
	slash := strings.LastIndexByte(r, '/')
	colon := strings.LastIndexByte(r[slash+1:], ':')
	if colon < 0 {
		return r, "", false
	}
	colon += slash + 1
	return r[:colon], r[colon+1:], true
}

// DebianVersion is a version split as python-debian splits it.
type DebianVersion struct {
	Epoch    string // "" when there is none
	Upstream string
	Revision string // "" when there is none
}

// ParseDebianVersion splits v with python-debian's version syntax; ok is
// false when v does not match it.
func ParseDebianVersion(v string) (DebianVersion, bool) {
	m := debian.FindStringSubmatch(v)
	if m == nil {
		return DebianVersion{}, false
	}
	return DebianVersion{Epoch: m[1], Upstream: m[2], Revision: m[3]}, true
}

// ValidDebianVersion reports whether v matches python-debian's version
// syntax.
func ValidDebianVersion(v string) bool { return debian.MatchString(v) }
