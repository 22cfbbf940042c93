package registry

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLabelCache(t *testing.T) {
	dir := t.TempDir()
	digest := "sha256:" + strings.Repeat("ab", 32)
	labels := map[string]string{"org.docker-pkg.title": "app", "org.docker-pkg.version": "1.0-1"}

	c := newLabelCache(dir)
	if _, ok := c.get(digest); ok {
		t.Fatal("empty cache has an entry")
	}
	c.put(digest, labels)

	// A later run reads what an earlier one wrote.
	got, ok := newLabelCache(dir).get(digest)
	if !ok || !reflect.DeepEqual(got, labels) {
		t.Errorf("get = %v, %v; want %v", got, ok, labels)
	}
	if _, err := os.Stat(filepath.Join(dir, "sha256-"+strings.Repeat("ab", 32)+".json")); err != nil {
		t.Errorf("no cache file: %v", err)
	}

	// Nothing that is not a sha256 digest becomes a path.
	for _, bad := range []string{"sha256:../../etc/passwd", "md5:abc", "sha256:" + strings.Repeat("AB", 32)} {
		c.put(bad, labels)
		if _, ok := newLabelCache(dir).get(bad); ok {
			t.Errorf("%q was cached on disk", bad)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("cache folder holds %d entries, want 1", len(entries))
	}

	// A corrupt file is a miss, not an error.
	path := filepath.Join(dir, "sha256-"+strings.Repeat("cd", 32)+".json")
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := newLabelCache(dir).get("sha256:" + strings.Repeat("cd", 32)); ok {
		t.Error("corrupt entry read as a hit")
	}

	// Memory only.
	m := newLabelCache("")
	m.put(digest, labels)
	if got, ok := m.get(digest); !ok || !reflect.DeepEqual(got, labels) {
		t.Errorf("memory cache: %v, %v", got, ok)
	}
}
