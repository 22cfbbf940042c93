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
	"slices"
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
// folder dir minus what its .dockerignore excludes. root is the repository
// dir belongs to (the scanned DIR; "" means dir itself): a symbolic link
// that resolves inside root is sent as what it points to (see
// walkContext), one that resolves outside it, or nowhere, is an error. The
// caller removes the folder.
func NewContext(ctx context.Context, dir, root string) (string, error) {
	tmp, err := os.MkdirTemp("", ContextPrefix+strconv.Itoa(os.Getpid())+"-*") // mode 0700: private
	if err != nil {
		return "", fmt.Errorf("making build context: %w", err)
	}
	if err := copyContext(ctx, dir, root, tmp); err != nil {
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

// copyContext copies src to dst, keeping file modes, leaving out what
// .dockerignore excludes and following symbolic links as walkContext
// says: what walkContext walks. The folder's own Dockerfile is left out;
// the rendered one is written in its place.
func copyContext(ctx context.Context, src, root, dst string) error {
	return walkContext(ctx, src, root, func(rel string, info fs.FileInfo, name string) error {
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

// ErrLink is matched (errors.Is) by the error about a symbolic link in an
// image folder that points outside the repository, or nowhere.
var ErrLink = errors.New("symbolic link not followed")

// LinkError is a symbolic link walkContext will not send: its target is
// outside the repository, or does not exist.
type LinkError struct {
	Link   string // absolute path of the link
	Target string // what the link holds, as written
	Root   string // the repository the target must be in
	Reason string // "is outside ROOT", "does not exist", ...
}

func (e *LinkError) Error() string {
	return fmt.Sprintf("%s: %v: it points to %s, which %s", e.Link, ErrLink, e.Target, e.Reason)
}

func (e *LinkError) Is(target error) bool { return target == ErrLink }

// CheckLinks returns every symbolic link under dir (as a build context
// holds it) that a build would refuse, as *LinkError values joined, or nil.
func CheckLinks(ctx context.Context, dir, root string) error {
	w, err := newWalker(ctx, dir, root, func(string, fs.FileInfo, string) error { return nil })
	if err != nil {
		return err
	}
	w.collect = true
	if err := w.walk(w.dir, "", nil); err != nil {
		return err
	}
	return errors.Join(w.bad...)
}

// walkContext calls fn, in lexical order, for every entry of dir that
// NewContext copies into a build context: the same .dockerignore rules,
// the same kinds of file. The folder's own Dockerfile is left out, as the
// rendered one replaces it.
//
// Symbolic links are what a checkout of a real repository holds
// (run.sh -> ../common/run.sh), and the daemon refuses to follow them out
// of the context. A link whose target, written relative, stays inside dir
// and resolves there is passed on as a link (the image gets the link, as
// docker build would give it). Any other link that resolves inside root
// is passed on as its target, under the link's name: fn sees the target's
// FileInfo and path, and a folder is walked as if it were there. A link
// that resolves outside root (a host file such as /etc/shadow) or nowhere
// is a *LinkError: nothing of the host outside the repository ever enters
// a context.
func walkContext(ctx context.Context, dir, root string, fn func(rel string, info fs.FileInfo, path string) error) error {
	w, err := newWalker(ctx, dir, root, fn)
	if err != nil {
		return err
	}
	return w.walk(w.dir, "", nil)
}

type walker struct {
	ctx       context.Context
	pm        *patternmatcher.PatternMatcher
	dir, root string // symbolic links resolved
	fn        func(rel string, info fs.FileInfo, path string) error
	collect   bool    // CheckLinks: gather bad links rather than stop
	bad       []error // what collect gathered
}

func newWalker(ctx context.Context, dir, root string, fn func(string, fs.FileInfo, string) error) (*walker, error) {
	pm, err := readIgnore(dir)
	if err != nil {
		return nil, err
	}
	w := &walker{ctx: ctx, pm: pm, fn: fn}
	if w.dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, fmt.Errorf("reading image folder: %w", err)
	}
	w.root = w.dir
	if root != "" {
		if w.root, err = filepath.EvalSymlinks(root); err != nil {
			return nil, fmt.Errorf("reading repository folder: %w", err)
		}
	}
	return w, nil
}

// walk walks the folder real (symbolic links resolved) as rel in the
// context; followed holds the folders entered through links on the way,
// so a link to one of them is a loop, not an endless walk.
func (w *walker) walk(real, rel string, followed []string) error {
	entries, err := os.ReadDir(real)
	if err != nil {
		return err
	}
	for _, d := range entries {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		name := path.Join(rel, d.Name())
		full := filepath.Join(real, d.Name())
		isLink := d.Type()&fs.ModeSymlink != 0
		// A link may be a folder: a pattern may exclude it whole.
		out, skipDir, err := excluded(w.pm, name, d.IsDir() || isLink)
		switch {
		case err != nil:
			return fmt.Errorf("matching %s against .dockerignore: %w", name, err)
		case skipDir, out && !d.IsDir() && !isLink, name == "Dockerfile":
			continue
		case IsTemp(d.Name()):
			// A staged changelog or the journal of an update: never an input,
			// never sent to the daemon.
			continue
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := full
		if isLink {
			var keep bool
			target, info, keep, err = w.resolve(full, real, len(followed) > 0)
			var le *LinkError
			if w.collect && errors.As(err, &le) {
				w.bad = append(w.bad, err)
				continue
			}
			if err != nil {
				return err
			}
			if keep {
				if !out {
					if err := w.fn(name, info, full); err != nil {
						return err
					}
				}
				continue
			}
			if out && !info.IsDir() {
				continue
			}
		}
		switch t := info.Mode().Type(); {
		case t == fs.ModeDir:
			if !out {
				if err := w.fn(name, info, target); err != nil {
					return err
				}
			}
			next := followed
			if target != full {
				if slices.Contains(followed, target) || strings.HasPrefix(w.dir+string(filepath.Separator), target+string(filepath.Separator)) {
					return &LinkError{Link: full, Target: mustReadlink(full), Root: w.root, Reason: "holds the link: following it would never end"}
				}
				next = append(slices.Clone(followed), target)
			}
			if err := w.walk(target, name, next); err != nil {
				return err
			}
		case t == 0 && !out:
			if err := w.fn(name, info, target); err != nil {
				return err
			}
		}
		// Sockets, devices, pipes: left out, as copyContext does.
	}
	return nil
}

// resolve says what the link at full (in the folder real) is sent as:
// keep, the link itself (info is the link's); otherwise its target, whose
// path and FileInfo it returns. Inside a folder entered through a link
// (inFollowed), every link is resolved: its relative target would not
// mean the same thing in the context.
func (w *walker) resolve(full, real string, inFollowed bool) (target string, info fs.FileInfo, keep bool, err error) {
	link, err := os.Readlink(full)
	if err != nil {
		return "", nil, false, err
	}
	resolved, err := filepath.EvalSymlinks(full)
	if err != nil {
		reason := "does not exist"
		if !errors.Is(err, fs.ErrNotExist) {
			reason = "cannot be resolved: " + err.Error()
		}
		return "", nil, false, &LinkError{Link: full, Target: link, Root: w.root, Reason: reason}
	}
	if !within(w.root, resolved) {
		return "", nil, false, &LinkError{Link: full, Target: link, Root: w.root, Reason: "is outside the repository " + w.root}
	}
	if !inFollowed && !filepath.IsAbs(link) && within(w.dir, filepath.Join(real, link)) && within(w.dir, resolved) {
		info, err := os.Lstat(full)
		return full, info, true, err
	}
	info, err = os.Stat(resolved)
	return resolved, info, false, err
}

// within says whether p is dir or inside it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func mustReadlink(p string) string {
	link, err := os.Readlink(p)
	if err != nil {
		return "?"
	}
	return link
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
