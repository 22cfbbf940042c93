package changelog

import (
	"fmt"
	"os"
	"path/filepath"
)

// TempPattern names the temporary files Stage writes next to a changelog
// (the * is random). One is left behind only if the process dies between
// Stage and Commit; IsTemp lets scans ignore it.
const TempPattern = ".changelog.docker-pkg-*.tmp"

// IsTemp reports whether a file name is one of Stage's temporary files.
func IsTemp(name string) bool {
	ok, _ := filepath.Match(TempPattern, name) // the pattern is valid
	return ok
}

// beforeRename runs in Commit between the fsync of the temporary file and
// the rename; tests replace it to fail there.
var beforeRename = func(tmp string) error { return nil }

// Staged is a changelog whose new content is written and synced to a
// temporary file next to it, waiting for Commit to replace the original or
// Abort to drop it. Staging every file of a cascade before committing any
// means a failure leaves all of them untouched.
type Staged struct {
	path string // the changelog, symlinks resolved
	tmp  string // "" once committed or aborted
}

// Prepend puts entry on top of the file at path, the old bytes kept as they
// are. The file is replaced atomically: a reader, or a crash, sees either
// the old content or the new one, never a truncated file.
func Prepend(path string, entry []byte) error {
	s, err := Stage(path, entry)
	if err != nil {
		return err
	}
	return s.Commit()
}

// Stage writes entry followed by the current content of path to a temporary
// file in the same folder, with the same permissions, and syncs it. The
// original is not touched.
func Stage(path string, entry []byte) (*Staged, error) {
	// Replace the file a symlink points to, not the link.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading changelog: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading changelog: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), TempPattern)
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	s := &Staged{path: path, tmp: f.Name()}
	err = write(f, info.Mode().Perm(), entry, old)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.Abort()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	return s, nil
}

func write(f *os.File, perm os.FileMode, parts ...[]byte) error {
	if err := f.Chmod(perm); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := f.Write(p); err != nil {
			return err
		}
	}
	return f.Sync()
}

// Commit renames the staged file over the original and syncs the folder so
// the rename survives a crash. On failure the temporary file is removed and
// the original left as it was, except when only the folder sync fails: the
// new content is then in place but may not be durable.
func (s *Staged) Commit() error {
	if s.tmp == "" {
		return fmt.Errorf("committing %s: already committed or aborted", s.path)
	}
	if err := beforeRename(s.tmp); err != nil {
		s.Abort()
		return fmt.Errorf("replacing %s: %w", s.path, err)
	}
	if err := os.Rename(s.tmp, s.path); err != nil {
		s.Abort()
		return fmt.Errorf("replacing %s: %w", s.path, err)
	}
	s.tmp = ""
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("syncing the folder of %s: %w", s.path, err)
	}
	return nil
}

// Abort removes the staged file, leaving the original untouched. It does
// nothing after Commit or a previous Abort, so it can be deferred.
func (s *Staged) Abort() {
	if s.tmp == "" {
		return
	}
	os.Remove(s.tmp) // best effort: a leftover is recognisable by IsTemp
	s.tmp = ""
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
