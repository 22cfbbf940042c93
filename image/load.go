package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/internal/ref"
	"pault.ag/go/debian/version"
)

// The files of an image folder.
const (
	TemplateFile      = "Dockerfile.template"
	BuildTemplateFile = "Dockerfile.build.template"
	ChangelogFile     = "changelog"
	ControlFile       = "control"
)

// ErrInvalid is matched (errors.Is) by every error Load returns for a
// definition the user must fix, as opposed to a file it could not read.
var ErrInvalid = errors.New("invalid image definition")

// Load reads the image definition in dir: its changelog for name and
// version, its control file (optional) for dependencies, and whether it has
// a build-stage template. Errors name the file (and line) to fix.
func Load(dir string, n Naming) (*Image, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("loading image %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(abs, TemplateFile)); err != nil {
		return nil, fmt.Errorf("loading image %s: %w", abs, err)
	}
	logPath := filepath.Join(abs, ChangelogFile)
	entry, err := changelog.Parse(logPath)
	if err != nil {
		return nil, err
	}
	img := &Image{
		Name:    entry.Name,
		Version: entry.Version,
		Dir:     abs,
		Repo:    n.Repo(entry.Name),
		Tag:     entry.Version + n.TagSuffix,
	}
	if err := ref.CheckTag(img.Tag); err != nil {
		return nil, fmt.Errorf("%s: %w: version %q gives the tag %q, which Docker does not accept: %s",
			logPath, ErrInvalid, entry.Version, img.Tag, err)
	}
	if !ref.ValidComponent(entry.Name) {
		return nil, fmt.Errorf("%s: %w: Docker does not accept %q in a repository name: lower-case letters, digits and single separators (., _, __, -) only",
			logPath, ErrInvalid, entry.Name)
	}
	img.Depends, err = readControl(filepath.Join(abs, ControlFile))
	if err != nil {
		return nil, err
	}
	switch _, err := os.Stat(filepath.Join(abs, BuildTemplateFile)); {
	case err == nil:
		img.BuildStage = true
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("loading image %s: %w", abs, err)
	}
	return img, nil
}

// MaxControlSize is the largest control file Load reads: 1 MiB, far above
// any real one (a few hundred bytes), so a file that grows without end
// (a link to /dev/zero, a log) cannot eat the memory.
const MaxControlSize = 1 << 20

// readControl returns the Depends and Build-Depends of every paragraph of
// the deb822 file at path; a missing file has none. Only a regular file
// of at most MaxControlSize bytes is read: a named pipe or a device would
// block or never end.
func readControl(path string) ([]Dependency, error) {
	data, err := readRegular(path, MaxControlSize)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return readControlData(path, data)
}

// readControlData is readControl of data read from path.
func readControlData(path string, data []byte) ([]Dependency, error) {

	var (
		deps  []Dependency
		field []segment // the Depends/Build-Depends field being read
	)
	flush := func() error {
		if field == nil {
			return nil
		}
		d, err := parseDepends(path, field)
		deps = append(deps, d...)
		field = nil
		return err
	}
	inField := false // the current field continues on indented lines
	for n, line := range strings.Split(string(data), "\n") {
		n++
		line = strings.TrimRight(line, "\r")
		switch {
		case strings.HasPrefix(line, "#"): // deb822 comment
		case strings.TrimSpace(line) == "": // paragraph separator
			if err := flush(); err != nil {
				return nil, err
			}
			inField = false
		case line[0] == ' ' || line[0] == '\t':
			if !inField {
				return nil, fmt.Errorf("%s:%d: %w: continuation line outside a field", path, n, ErrInvalid)
			}
			if field != nil {
				field = append(field, segment{n, line})
			}
		default:
			if err := flush(); err != nil {
				return nil, err
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf(`%s:%d: %w: expected "Field: value", got %q`, path, n, ErrInvalid, line)
			}
			inField = true
			if k := strings.TrimSpace(name); strings.EqualFold(k, "Depends") || strings.EqualFold(k, "Build-Depends") {
				field = []segment{{n, value}}
			}
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return deps, nil
}

// readRegular reads the regular file at path (a symbolic link to one is
// one), at most limit bytes of it: anything else is an ErrInvalid error
// naming path, and nothing is opened that could block (a named pipe with
// no writer) or never end (a device).
func readRegular(path string, limit int64) ([]byte, error) {
	notRegular := func(mode fs.FileMode) error {
		return fmt.Errorf("%s: %w: not a regular file but %s", path, ErrInvalid, fileKind(mode))
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, notRegular(info.Mode())
	}
	// O_NONBLOCK: should path become a named pipe meanwhile, opening it
	// does not wait for a writer; the check below then refuses it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !info.Mode().IsRegular() {
		return nil, notRegular(info.Mode())
	}
	tooLarge := fmt.Errorf("%s: %w: larger than the limit of %d MiB", path, ErrInvalid, limit>>20)
	if info.Size() > limit {
		return nil, tooLarge
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, tooLarge
	}
	return data, nil
}

// fileKind names the type of a file that is not a regular one.
func fileKind(mode fs.FileMode) string {
	switch {
	case mode.IsDir():
		return "a directory"
	case mode&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	case mode&fs.ModeCharDevice != 0:
		return "a character device"
	case mode&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// segment is one line of a field's value, with its line number.
type segment struct {
	line int
	text string
}

// parseDepends splits a field on commas and parses each item. An item's
// line is the line where it starts, so errors point at it even in a field
// folded over many lines.
func parseDepends(path string, field []segment) ([]Dependency, error) {
	var (
		deps    []Dependency
		item    strings.Builder
		at      int  // line where the item starts
		started bool // item has a non-blank character
	)
	end := func() error {
		text := strings.Join(strings.Fields(item.String()), " ")
		item.Reset()
		started = false
		if text == "" {
			return nil
		}
		d, err := parseDependency(text)
		if err != nil {
			return fmt.Errorf("%s:%d: %w: %q: %v", path, at, ErrInvalid, text, err)
		}
		d.File, d.Line = path, at
		deps = append(deps, d)
		return nil
	}
	for _, seg := range field {
		for _, r := range seg.text {
			if r == ',' {
				if err := end(); err != nil {
					return nil, err
				}
				continue
			}
			if !started && r != ' ' && r != '\t' {
				at, started = seg.line, true
			}
			item.WriteRune(r)
		}
		item.WriteByte(' ')
	}
	return deps, end()
}

// dependency is a Debian dependency without alternatives, architectures or
// build profiles, which have no meaning for images.
var dependency = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9.+_-]*)(?: ?\( ?(>=|<=|>>|<<|=) ?([^ ()]+) ?\))?$`)

func parseDependency(text string) (Dependency, error) {
	if strings.Contains(text, "|") {
		return Dependency{}, errors.New("alternatives (a | b) are not supported: an image depends on exactly one image per item")
	}
	m := dependency.FindStringSubmatch(text)
	if m == nil {
		if strings.Contains(text, "[") || strings.Contains(text, "<!") {
			return Dependency{}, errors.New("architecture and build-profile restrictions are not supported")
		}
		return Dependency{}, errors.New(`want "name" or "name (op version)" with op one of >=, <=, >>, <<, =`)
	}
	d := Dependency{Name: m[1], Op: m[2], Version: m[3]}
	if d.Op != "" {
		if _, err := version.Parse(d.Version); err != nil {
			return Dependency{}, fmt.Errorf("invalid version %q: %v", d.Version, err)
		}
	}
	return d, nil
}
