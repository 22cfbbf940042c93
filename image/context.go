package image

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// ContextPrefix starts the name of every temporary build context folder
// (under os.TempDir): ContextPrefix, the PID of the process that made it,
// "-" and a random part, so that a folder left by a run that was killed
// can be recognised and its owner known (RemoveStaleContexts).
const ContextPrefix = "docker-pkg-ctx-"

// NewContext makes a private temporary folder holding a copy of the image
// folder dir minus what its .dockerignore excludes. The caller removes it.
func NewContext(ctx context.Context, dir string) (string, error) {
	tmp, err := os.MkdirTemp("", ContextPrefix+strconv.Itoa(os.Getpid())+"-*") // mode 0700: private
	if err != nil {
		return "", fmt.Errorf("making build context: %w", err)
	}
	if err := copyContext(ctx, dir, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("copying %s to the build context: %w", dir, err)
	}
	return tmp, nil
}

// maxStaleContexts bounds how many leftover folders one call of
// RemoveStaleContexts removes: a TMPDIR full of them cannot hold up the
// start of a build, and the next build goes on with the rest.
const maxStaleContexts = 100

// RemoveStaleContexts removes the build context folders under os.TempDir
// that runs now gone left behind: a run killed with SIGKILL cannot remove
// its own. A folder counts as left behind when it is ours (same user), is
// named ContextPrefix+PID+"-..." and no process PID exists on this
// machine. Another live run's folders, folders named without a PID (older
// versions) and anything else are left alone. At most 100 are removed per
// call. It returns the folders removed, and what could not be read or
// removed.
func RemoveStaleContexts() ([]string, error) {
	tmp := os.TempDir()
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return nil, fmt.Errorf("looking for leftover build contexts in %s: %w", tmp, err)
	}
	var (
		removed []string
		errs    []error
	)
	for _, e := range entries {
		if len(removed) == maxStaleContexts {
			break
		}
		pid, ok := contextOwner(e.Name())
		if !ok || !e.IsDir() || alive(pid) {
			continue
		}
		path := filepath.Join(tmp, e.Name())
		info, err := os.Lstat(path)
		if err != nil {
			continue // removed meanwhile
		}
		if st, ok := info.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Getuid() {
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, fmt.Errorf("removing leftover build context: %w", err))
			continue
		}
		removed = append(removed, path)
	}
	return removed, errors.Join(errs...)
}

// contextOwner reads the PID out of a build context folder's name.
func contextOwner(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, ContextPrefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0 && strconv.Itoa(pid) == digits
}

// alive says whether process pid exists (a process of another user, or a
// zombie, counts).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// readIgnore reads dir/.dockerignore; nil when there is none.
func readIgnore(dir string) (*patternmatcher.PatternMatcher, error) {
	name := filepath.Join(dir, ".dockerignore")
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return pm, nil
}

// excluded says whether .dockerignore leaves out rel (slash-separated), and
// for a folder whether the walk may skip it altogether.
func excluded(pm *patternmatcher.PatternMatcher, rel string, isDir bool) (out, skipDir bool, err error) {
	// The daemon needs .dockerignore to drop the files it matches after
	// reading the Dockerfile, as docker build does.
	if pm == nil || rel == ".dockerignore" {
		return false, false, nil
	}
	out, err = pm.MatchesOrParentMatches(rel)
	if err != nil || !out || !isDir {
		return out, false, err
	}
	// Docker's own walk: an excluded folder is still entered when an
	// exception (!dir/keep) may bring back something inside it.
	for _, p := range pm.Patterns() {
		if p.Exclusion() && strings.HasPrefix(p.String()+"/", rel+"/") {
			return true, false, nil
		}
	}
	return true, true, nil
}

// copyContext copies src to dst, keeping file modes and symbolic links as
// they are, leaving out what .dockerignore excludes: what walkContext
// walks. The folder's own Dockerfile is left out; the rendered one is
// written in its place.
func copyContext(ctx context.Context, src, dst string) error {
	return walkContext(ctx, src, func(rel string, info fs.FileInfo, name string) error {
		target := filepath.Join(dst, filepath.FromSlash(rel))
		// A parent may be missing when .dockerignore excludes it and an
		// exception brings back a file inside; the daemon would make it 0755.
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		switch mode := info.Mode(); {
		case mode.IsDir():
			// Owner write so the copy can be filled and removed (the image
			// gets it too: a folder without it is not worth a second pass).
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			return os.Chmod(target, mode.Perm()|0o700) // past the umask
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(name)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			return copyFile(name, target, info)
		}
	})
}

// walkContext calls fn, in lexical order, for every entry of dir that
// NewContext copies into a build context: the same .dockerignore rules,
// the same kinds of file. The folder's own Dockerfile is left out, as the
// rendered one replaces it.
func walkContext(ctx context.Context, dir string, fn func(rel string, info fs.FileInfo, path string) error) error {
	pm, err := readIgnore(dir)
	if err != nil {
		return err
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return fmt.Errorf("reading image folder: %w", err)
	}
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		out, skipDir, err := excluded(pm, rel, d.IsDir())
		switch {
		case err != nil:
			return fmt.Errorf("matching %s against .dockerignore: %w", rel, err)
		case skipDir:
			return filepath.SkipDir
		case out, rel == "Dockerfile":
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if t := info.Mode().Type(); t != 0 && t != fs.ModeDir && t != fs.ModeSymlink {
			return nil // sockets, devices, pipes: copyContext leaves them out too
		}
		return fn(rel, info, path)
	})
}

func copyFile(src, dst string, info fs.FileInfo) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	// The umask may have cut the mode; setuid and friends need Chmod too.
	if err := os.Chmod(dst, info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
		return err
	}
	return os.Chtimes(dst, info.ModTime(), info.ModTime())
}

// writeDockerfile puts the rendered Dockerfile at the root of the context,
// replacing any file of that name copied from the image folder.
func writeDockerfile(dir string, data []byte) error {
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), data, 0o644); err != nil {
		return fmt.Errorf("writing the Dockerfile into the build context: %w", err)
	}
	return nil
}

// tarStream is a build context being sent as a tar. Close stops the writer
// and waits for it, so the folder can be removed safely afterwards.
type tarStream struct {
	*io.PipeReader
	done chan struct{}
}

func (s *tarStream) Close() error {
	s.PipeReader.CloseWithError(errors.New("build context no longer read"))
	<-s.done
	return nil
}

// tarContext streams dir as a tar archive, in lexical order, without
// holding it in memory.
func tarContext(dir string) *tarStream {
	pr, pw := io.Pipe()
	s := &tarStream{PipeReader: pr, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		pw.CloseWithError(writeTar(pw, dir))
	}()
	return s
}

func writeTar(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, name)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(name); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if d.IsDir() {
			hdr.Name += "/"
		}
		// Owners on this machine mean nothing in the image; the daemon
		// makes copied files root's, as docker build's context does.
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err != nil {
		return fmt.Errorf("sending the build context: %w", err)
	}
	return tw.Close()
}

// extractTar unpacks a tar (as CopyFromContainer returns it) into dir.
// os.Root keeps every entry, symbolic links included, inside dir.
func extractTar(r io.Reader, dir string) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "/"))
		if name == "." || name == ".." || strings.HasPrefix(name, "../") {
			return fmt.Errorf("unsafe path %q in archive", hdr.Name)
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		if parent := path.Dir(name); parent != "." {
			if err := root.MkdirAll(parent, 0o755); err != nil {
				return err
			}
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := writeEntry(root, name, mode, tr); err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = root.Remove(name)
			if err := root.Symlink(hdr.Linkname, name); err != nil {
				return err
			}
		case tar.TypeLink:
			_ = root.Remove(name)
			if err := root.Link(path.Clean(strings.TrimPrefix(hdr.Linkname, "/")), name); err != nil {
				return err
			}
		}
	}
}

func writeEntry(root *os.Root, name string, mode fs.FileMode, r io.Reader) error {
	f, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return root.Chmod(name, mode)
}
