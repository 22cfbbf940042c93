package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// The environment and cache folder as the test binary started, before a
// test's t.Setenv (of HOME, say) could send a build elsewhere.
var (
	startEnv            = os.Environ()
	cacheRoot, cacheErr = testCache()
)

// CacheEnv names the folder test artefacts are kept in, instead of the
// user's cache folder: a machine whose $HOME must stay untouched sets it.
const CacheEnv = "DOCKER_PKG_TESTENV_CACHE"

// testCache is $DOCKER_PKG_TESTENV_CACHE, else the user's cache folder
// (as Go keeps its build cache there). Nothing of docker-pkg's own (its
// label cache) is ever written there by a test.
func testCache() (string, error) {
	if dir := os.Getenv(CacheEnv); dir != "" {
		return filepath.Abs(dir)
	}
	return os.UserCacheDir()
}

// artefact is something the tests need made once per machine (a binary
// built from the Go module proxy, a package fetched from Debian) and kept
// in the test cache folder (testCache), at docker-pkg-testenv/KEY/NAME.
type artefact struct {
	key, name string
	timeout   time.Duration
	// make makes it inside tmp, a fresh folder, and returns its path
	// there.
	make func(ctx context.Context, tmp string) (string, error)

	once sync.Once
	path string
	err  error
}

// get returns the artefact's path, making it first if no test binary
// has: go test runs packages' test binaries in parallel, so the making is
// under a file lock, and the result is renamed into place whole.
func (a *artefact) get() (string, error) {
	a.once.Do(func() { a.path, a.err = a.fetch() })
	return a.path, a.err
}

func (a *artefact) fetch() (string, error) {
	if cacheErr != nil {
		return "", cacheErr
	}
	dir := filepath.Join(cacheRoot, "docker-pkg-testenv", a.key)
	path := filepath.Join(dir, a.name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close() // releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err == nil { // made by another test binary meanwhile
		return path, nil
	}
	tmp, err := os.MkdirTemp(dir, "make-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	made, err := a.make(ctx, tmp)
	if err != nil {
		return "", fmt.Errorf("making %s: %w", a.key, err)
	}
	if err := os.Rename(made, path); err != nil {
		return "", err
	}
	return path, nil
}
