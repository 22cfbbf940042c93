package registry

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// labelCache keeps the labels of image configs by config digest. A digest
// names its content, so an entry never goes stale; the folder can be
// removed at any time. Failing to read or write it only costs a fetch.
type labelCache struct {
	dir string // "" for memory only

	mu  sync.Mutex
	mem map[string]map[string]string
}

// DefaultLabelCache is the folder where the docker-pkg command keeps labels
// between runs: docker-pkg/labels under the user's cache folder
// ($XDG_CACHE_HOME, ~/.cache); "" when there is none.
func DefaultLabelCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "docker-pkg", "labels")
}

func newLabelCache(dir string) *labelCache {
	return &labelCache{dir: dir, mem: map[string]map[string]string{}}
}

// file is where digest's labels are kept; "" when digest is not a plain
// algorithm:hex string, which could otherwise name a path.
func (c *labelCache) file(digest string) string {
	algo, hex, ok := strings.Cut(digest, ":")
	if c.dir == "" || !ok || algo != "sha256" || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return ""
	}
	return filepath.Join(c.dir, algo+"-"+hex+".json")
}

func (c *labelCache) get(digest string) (map[string]string, bool) {
	c.mu.Lock()
	labels, ok := c.mem[digest]
	c.mu.Unlock()
	if ok {
		return labels, true
	}
	path := c.file(digest)
	if path == "" {
		return nil, false
	}
	data, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(data, &labels) != nil {
		return nil, false
	}
	c.mu.Lock()
	c.mem[digest] = labels
	c.mu.Unlock()
	return labels, true
}

func (c *labelCache) put(digest string, labels map[string]string) {
	c.mu.Lock()
	c.mem[digest] = labels
	c.mu.Unlock()
	path := c.file(digest)
	if path == "" {
		return
	}
	data, err := json.Marshal(labels)
	if err != nil || os.MkdirAll(c.dir, 0o700) != nil {
		return
	}
	// Written under a temporary name and renamed: a reader never sees half
	// a file.
	tmp, err := os.CreateTemp(c.dir, ".labels-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(data)
	if cerr := tmp.Close(); werr != nil || cerr != nil || os.Rename(tmp.Name(), path) != nil {
		os.Remove(tmp.Name())
	}
}
