package ref

import (
	"errors"
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func TestCheckTag(t *testing.T) {
	tests := []struct {
		name, tag string
		want      string // "" when valid
	}{
		{"version", "1.2.3-1", ""},
		{"underscore first", "_x", ""},
		{"128 characters", strings.Repeat("a", 128), ""},
		{"empty", "", "it is empty"},
		{"129 characters", strings.Repeat("a", 129), "it is 129 characters long, the limit is 128"},
		{"tilde", "1.0~rc1", `'~' is not allowed in a tag`},
		{"plus", "1.0+dfsg", `'+' is not allowed in a tag`},
		{"epoch", "1:2.0", `':' is not allowed in a tag`},
		{"dash first", "-1", "a tag cannot start with '-'"},
		{"space", "1 0", "a tag is letters, digits, '_', '.' and '-'"},
		{"non-ASCII", "1é", "a tag is letters, digits, '_', '.' and '-'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckTag(tt.tag)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("CheckTag(%q) = %q, want %q", tt.tag, got, tt.want)
			}
			if ValidTag(tt.tag) != (tt.want == "") {
				t.Errorf("ValidTag(%q) = %v, want %v", tt.tag, !(tt.want == ""), tt.want == "")
			}
		})
	}
}

// TestComponentAgreesWithReference keeps ValidComponent equal to
// distribution/reference's path-component, which it does not export.
func TestComponentAgreesWithReference(t *testing.T) {
	for _, c := range []string{
		"a", "node20", "python3-bookworm", "a.b", "a_b", "a__b", "a---b", "a___b", "a..b", "a._b",
		"-a", "a-", ".a", "_a", "A", "aB", "a b", "a/b", "a:b", "é", "",
	} {
		_, err := reference.WithName("example.org/" + c)
		if want := err == nil && !strings.Contains(c, "/"); ValidComponent(c) != want {
			t.Errorf("ValidComponent(%q) = %v, reference says %v", c, !want, want)
		}
	}
}

func TestCheckRegistry(t *testing.T) {
	tests := []struct {
		name, registry string
		ok             bool
	}{
		{"empty", "", true},
		{"host", "docker-registry.example.org", true},
		{"host and port", "registry.example.org:5000", true},
		{"IPv4 and port", "127.0.0.1:5000", true},
		{"IPv6", "[::1]:5000", true},
		{"localhost", "localhost", true},
		{"URL", "https://host/", false},
		{"path", "host/releng", false},
		{"space", "my host", false},
		{"bad port", "host:port", false},
		{"underscore", "my_host", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckRegistry(tt.registry); (err == nil) != tt.ok {
				t.Errorf("CheckRegistry(%q) = %v, want ok=%v", tt.registry, err, tt.ok)
			}
		})
	}
}

// TestCheckRegistryCredentials: a registry holding a password is refused
// without the password, or any part of the value, in the message.
func TestCheckRegistryCredentials(t *testing.T) {
	for _, registry := range []string{"alice:s3cr3t-pw@reg.internal:5000", "https://alice:s3cr3t-pw@reg.internal/", "s3cr3t-pw@reg.internal"} {
		err := CheckRegistry(registry)
		if !errors.Is(err, ErrCredentials) {
			t.Fatalf("CheckRegistry(%q) = %v, want ErrCredentials", registry, err)
		}
		for _, secret := range []string{"s3cr3t", "alice", "reg.internal"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("CheckRegistry(%q) = %q: repeats %q", registry, err, secret)
			}
		}
	}
}

func TestCheckNamespace(t *testing.T) {
	tests := []struct {
		name, namespace string
		ok              bool
	}{
		{"empty", "", true},
		{"one", "releng", true},
		{"two", "releng/ci", true},
		{"upper", "Releng", false},
		{"space", "Rel Probe/UPPER", false},
		{"empty component", "releng//ci", false},
		{"leading slash", "/releng", false},
		{"too long", strings.Repeat("a/", 128) + "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckNamespace(tt.namespace); (err == nil) != tt.ok {
				t.Errorf("CheckNamespace(%q) = %v, want ok=%v", tt.namespace, err, tt.ok)
			}
		})
	}
}

func TestParseDebianVersion(t *testing.T) {
	tests := []struct {
		version string
		want    DebianVersion
		ok      bool
	}{
		{"1.2.3", DebianVersion{Upstream: "1.2.3"}, true},
		{"1.2.3-1", DebianVersion{Upstream: "1.2.3", Revision: "1"}, true},
		{"2:1.0-2-3", DebianVersion{Epoch: "2", Upstream: "1.0-2", Revision: "3"}, true},
		{"8.2.7-1~deb12u1", DebianVersion{Upstream: "8.2.7", Revision: "1~deb12u1"}, true},
		{"1.0:2", DebianVersion{Upstream: "1.0:2"}, true}, // python-debian's laxness
		{"", DebianVersion{}, false},
		{"1.0 beta", DebianVersion{}, false},
		{"1.0-", DebianVersion{Upstream: "1.0-"}, true},
	}
	for _, tt := range tests {
		got, ok := ParseDebianVersion(tt.version)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseDebianVersion(%q) = %+v, %v, want %+v, %v", tt.version, got, ok, tt.want, tt.ok)
		}
		if ValidDebianVersion(tt.version) != tt.ok {
			t.Errorf("ValidDebianVersion(%q) = %v, want %v", tt.version, !tt.ok, tt.ok)
		}
	}
}

func TestSplitLabel(t *testing.T) {
	tests := []struct {
		label, name, tag string
		ok               bool
	}{
		{"x:1", "x", "1", true},
		{"reg.example.org/ns/x:1.0-1", "reg.example.org/ns/x", "1.0-1", true},
		{"127.0.0.1:5000/ns/x:1.0-1", "127.0.0.1:5000/ns/x", "1.0-1", true},
		{"127.0.0.1:5000/ns/x", "127.0.0.1:5000/ns/x", "", false},
		{"x:1@sha256:abc", "x", "1", true},
		{"x@sha256:abc", "x", "", false},
	}
	for _, tt := range tests {
		if name, tag, ok := SplitLabel(tt.label); name != tt.name || tag != tt.tag || ok != tt.ok {
			t.Errorf("SplitLabel(%q) = %q, %q, %v, want %q, %q, %v", tt.label, name, tag, ok, tt.name, tt.tag, tt.ok)
		}
	}
}

func TestJoin(t *testing.T) {
	tests := []struct{ registry, namespace, short, want string }{
		{"r", "n", "x", "r/n/x"},
		{"", "n", "x", "n/x"},
		{"r", "", "x", "r/x"},
		{"", "", "x", "x"},
		{"r", "n/m", "x", "r/n/m/x"},
	}
	for _, tt := range tests {
		if got := Join(tt.registry, tt.namespace, tt.short); got != tt.want {
			t.Errorf("Join(%q, %q, %q) = %q, want %q", tt.registry, tt.namespace, tt.short, got, tt.want)
		}
	}
}
