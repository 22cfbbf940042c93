package changelog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// JournalFile is the name of the journal a Batch's Commit writes in the
// tree's folder before its first rename and removes after its last.
const JournalFile = ".docker-pkg.journal"

// maxJournal bounds the journal Acquire reads: some thousands of entries.
const maxJournal = 4 * MaxSize

// journal lists the changelogs of a cascade and the staged file of each,
// relative to the tree's folder. It is written to a temporary name, synced
// and renamed into place, so it exists complete or not at all.
type journal struct {
	PID   int            `json:"pid"`
	Files []journalEntry `json:"files"`
}

type journalEntry struct {
	Changelog string `json:"changelog"`
	Staged    string `json:"staged"`
	// OldSHA256 is the hash of the changelog the staged file was made
	// from: recovery does not put an entry over a changelog edited since.
	OldSHA256 string `json:"old_sha256"`
}

func writeJournal(dir string, files []staged) error {
	j := journal{PID: os.Getpid()}
	for _, s := range files {
		rel := func(p string) string {
			// Lexical, and both absolute: this cannot fail, and a path out of
			// dir (a changelog linked elsewhere) gets "../".
			r, _ := filepath.Rel(dir, p)
			return filepath.ToSlash(r)
		}
		j.Files = append(j.Files, journalEntry{Changelog: rel(s.path), Staged: rel(s.tmp), OldSHA256: s.old})
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, journalTempPattern)
	if err != nil {
		return err
	}
	err = write(f, 0o644, b, []byte("\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, JournalFile))
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := syncDir(dir); err != nil {
		// Perhaps not durable: no rename may rest on it.
		os.Remove(filepath.Join(dir, JournalFile))
		return err
	}
	return nil
}

// Recovery is what Acquire found of an interrupted run and did about it.
type Recovery struct {
	// Journal is the journal of an interrupted Commit, "" if there was
	// none. Its cascade is now whole.
	Journal string
	// Finished lists the changelogs of that cascade that were still
	// staged: their new content is now in place.
	Finished []string
	// Kept lists the changelogs of that cascade changed since they were
	// staged (by hand, after the crash): they are left as they are and
	// their staged entry is dropped.
	Kept []string
	// Removed lists the temporary files removed from the tree: the staged
	// files of a cascade interrupted before its journal (so rolled back),
	// and any other leftover. Folders are walked as the scan walks them:
	// hidden folders and links to folders are not, and neither is the
	// folder of a changelog that is a link out of the tree, whose staged
	// file is found only through a journal.
	Removed []string
	// Lost lists the changelogs of that cascade whose staged file was gone
	// though they were never written: their entry is not in them, and the
	// cascade is partial. Give them their entry again (update).
	Lost []string
}

// Empty reports whether there was nothing to repair.
func (r Recovery) Empty() bool {
	return r.Journal == "" && len(r.Finished) == 0 && len(r.Kept) == 0 && len(r.Removed) == 0 && len(r.Lost) == 0
}

// recoverTree finishes the cascade of a journal in dir, the lock's root,
// if any, then removes every temporary file under tree (dir or a folder in
// it). The caller holds the lock, so no other run is writing: every
// temporary file is a leftover.
func recoverTree(ctx context.Context, dir, tree string, fault Fault) (Recovery, error) {
	var r Recovery
	path := filepath.Join(dir, JournalFile)
	b, _, err := readRegular(path, maxJournal)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return r, fmt.Errorf("reading the journal of an interrupted update: %w", err)
	default:
		r.Journal = path
		if err := replay(ctx, dir, path, b, fault, &r); err != nil {
			return r, fmt.Errorf("finishing the interrupted update of %s: %w (the journal is kept; fix this and run again)", path, err)
		}
	}
	err = filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			// Like the scan: no image, so no staged file, in a hidden folder.
			if p != tree && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if IsTemp(d.Name()) {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			r.Removed = append(r.Removed, p)
		}
		return nil
	})
	if err != nil {
		return r, fmt.Errorf("removing the temporary files of an interrupted update under %s: %w", dir, err)
	}
	return r, nil
}

// replay renames each staged file of the journal still there over its
// changelog, syncs, and removes the journal. Run again after a crash in
// the middle, it finds the files renamed the first time gone and goes on
// with the rest.
func replay(ctx context.Context, dir, path string, b []byte, fault Fault, r *Recovery) error {
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("reading the journal: %w", err)
	}
	var targets []staged
	for i, e := range j.Files {
		target := filepath.Join(dir, filepath.FromSlash(e.Changelog))
		tmp := filepath.Join(dir, filepath.FromSlash(e.Staged))
		// Only ever rename a staged file over the changelog beside it,
		// whatever the journal says.
		if e.Changelog == "" || !IsTemp(filepath.Base(tmp)) || filepath.Dir(tmp) != filepath.Dir(target) {
			return fmt.Errorf("entry %d of the journal is not a staged changelog beside its changelog: %q, %q", i+1, e.Staged, e.Changelog)
		}
		targets = append(targets, staged{path: target, tmp: tmp})
		cur, _, err := readRegular(target, MaxSize)
		if _, serr := os.Lstat(tmp); errors.Is(serr, fs.ErrNotExist) {
			// Renamed before the crash, unless the changelog is still the one
			// it was staged from: then its entry was lost (the staged file
			// removed by hand), and the cascade cannot be whole.
			if sum := sha256.Sum256(cur); err == nil && hex.EncodeToString(sum[:]) == e.OldSHA256 {
				r.Lost = append(r.Lost, target)
			}
			continue
		}
		if sum := sha256.Sum256(cur); err != nil || hex.EncodeToString(sum[:]) != e.OldSHA256 {
			os.Remove(tmp)
			r.Kept = append(r.Kept, target)
			continue
		}
		if err := os.Rename(tmp, target); err != nil {
			return err
		}
		r.Finished = append(r.Finished, target)
		if fault != nil {
			if err := fault(ctx, StepRecovered, len(r.Finished)); err != nil {
				return err
			}
		}
	}
	for _, d := range dirs(targets) {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	return syncDir(dir)
}
