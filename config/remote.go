package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	"github.com/docker-pkg/docker-pkg/internal/ref"
)

// The address schemes of a builder: those BuildKit's client dials itself
// (tcp, unix) and its connection helpers (kube-pod through kubectl exec,
// docker-container through docker exec).
var remoteSchemes = []string{"tcp", "unix", "kube-pod", "docker-container"}

// parseRemotes reads builders: a list of mappings, each with name and
// address, and optionally jobs, platforms and tls {ca, cert, key}. Relative
// TLS paths are taken from dir, the folder of the file that set them.
func parseRemotes(v any, dir string, bad func(string, ...any)) []Remote {
	list, ok := v.([]any)
	if !ok {
		bad("want a list of {name, address, jobs, platforms, tls}, got %s", describe(v))
		return nil
	}
	var out []Remote
	for i, item := range list {
		fields, ok := item.(map[string]any)
		if !ok {
			bad("builder %d: want a mapping with name and address, got %s", i+1, describe(item))
			continue
		}
		b, errs := parseRemote(fields, dir)
		who := fmt.Sprintf("builder %d", i+1)
		if b.Name != "" {
			who = "builder " + b.Name
		}
		for _, err := range errs {
			bad("%s: %v", who, err)
		}
		if len(errs) > 0 {
			continue
		}
		if slices.ContainsFunc(out, func(o Remote) bool { return o.Name == b.Name }) {
			bad("%s: the name is used twice", who)
			continue
		}
		out = append(out, b)
	}
	return out
}

func parseRemote(fields map[string]any, dir string) (Remote, []error) {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	b := Remote{Jobs: 1}
	for _, k := range sortedKeys(fields) {
		v := fields[k]
		switch k {
		case "name":
			s, _ := v.(string)
			if !ref.ValidComponent(s) {
				fail("name: want lower-case letters, digits and . _ -, got %s", describe(v))
			}
			b.Name = s
		case "address":
			s, _ := v.(string)
			if err := checkAddress(s); err != nil {
				fail("address: %v", err)
			}
			b.Address = s
		case "jobs":
			n, ok := v.(int)
			if !ok || n < 1 {
				fail("jobs: want a whole number of images at once, at least 1, got %s", describe(v))
			}
			b.Jobs = n
		case "platforms":
			var list []string
			items, ok := v.([]any)
			if !ok {
				fail("platforms: want a list such as [linux/amd64, linux/arm64], got %s", describe(v))
			}
			for _, it := range items {
				s, _ := it.(string)
				list = append(list, s)
			}
			b.Platforms = platformList(list, fail)
		case "tls":
			b.TLS = parseTLS(v, dir, fail)
		default:
			fail("unknown key %q (known: name, address, jobs, platforms, tls)", k)
		}
	}
	if b.Name == "" && !slices.ContainsFunc(errs, func(e error) bool { return strings.HasPrefix(e.Error(), "name:") }) {
		fail("name: missing")
	}
	if b.Address == "" && fields["address"] == nil {
		fail("address: missing (tcp://HOST:PORT, unix:///PATH, kube-pod://POD or docker-container://NAME)")
	}
	if b.TLS != nil && !strings.HasPrefix(b.Address, "tcp://") {
		fail("tls: only a tcp:// address is reached over TLS")
	}
	return b, errs
}

func checkAddress(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return fmt.Errorf("want tcp://HOST:PORT, unix:///PATH, kube-pod://POD or docker-container://NAME, got %q", s)
	}
	if !slices.Contains(remoteSchemes, u.Scheme) {
		return fmt.Errorf("unknown scheme %s:// in %q (known: %s://)", u.Scheme, s, strings.Join(remoteSchemes, "://, "))
	}
	if u.User != nil {
		return fmt.Errorf("holds credentials (user@); use tls for a tcp address")
	}
	switch {
	case u.Scheme == "unix" && u.Path == "":
		return fmt.Errorf("want unix:///PATH, got %q", s)
	case u.Scheme == "tcp" && (u.Hostname() == "" || u.Port() == ""):
		return fmt.Errorf("want tcp://HOST:PORT, got %q", s)
	case u.Scheme != "unix" && u.Scheme != "tcp" && u.Host == "":
		return fmt.Errorf("want %s://NAME, got %q", u.Scheme, s)
	}
	return nil
}

func parseTLS(v any, dir string, fail func(string, ...any)) *TLSFiles {
	fields, ok := v.(map[string]any)
	if !ok {
		fail("tls: want {ca: PATH, cert: PATH, key: PATH}, got %s", describe(v))
		return nil
	}
	t := &TLSFiles{}
	path := func(k string) string {
		s, ok := fields[k].(string)
		if !ok || s == "" {
			fail("tls: %s: want the path of a PEM file, got %s", k, describe(fields[k]))
			return ""
		}
		if !filepath.IsAbs(s) && dir != "" {
			s = filepath.Join(dir, s)
		}
		return s
	}
	for _, k := range sortedKeys(fields) {
		switch k {
		case "ca", "cert", "key", "server_name":
		default:
			fail("tls: unknown key %q (known: ca, cert, key, server_name)", k)
		}
	}
	t.CA, t.Cert, t.Key = path("ca"), path("cert"), path("key")
	if s, ok := fields["server_name"].(string); ok {
		t.ServerName = s
	}
	return t
}

// platformList normalizes platforms (linux/arm64/v8 -> linux/arm64),
// dropping repeats; a platform that does not parse is an error naming it.
func platformList(list []string, fail func(string, ...any)) []string {
	var out []string
	for _, s := range list {
		p, err := NormalizePlatform(s)
		if err != nil {
			fail("%v", err)
			continue
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// NormalizePlatform returns platform as BuildKit and registries write it:
// os/arch, with a variant only where it is not the default (linux/arm/v7;
// linux/arm64/v8 is linux/arm64).
func NormalizePlatform(s string) (string, error) {
	if strings.TrimSpace(s) == "" || strings.Count(s, "/") == 0 {
		return "", fmt.Errorf("platform %q: want os/architecture, such as linux/amd64", s)
	}
	p, err := platforms.Parse(s)
	if err != nil {
		return "", fmt.Errorf("platform %q: %v", s, err)
	}
	return platforms.Format(platforms.Normalize(p)), nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
