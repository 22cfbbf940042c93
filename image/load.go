package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/internal/readfile"
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
	var p Present
	for name, found := range map[string]*bool{ControlFile: &p.Control, BuildTemplateFile: &p.BuildTemplate} {
		switch _, err := os.Lstat(filepath.Join(abs, name)); {
		case err == nil:
			*found = true
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("loading image %s: %w", abs, err)
		}
	}
	return LoadListed(abs, n, p)
}

// Present says which optional files of an image folder are there, for a
// caller that has listed the folder already (the scan).
type Present struct {
	Control       bool // ControlFile
	BuildTemplate bool // BuildTemplateFile
}

// LoadListed is Load of the image in dir, an absolute path whose
// Dockerfile.template is known to be there, with the optional files p
// says: it asks the file system only for what it reads.
func LoadListed(dir string, n Naming, p Present) (*Image, error) {
	abs := dir
	logPath := filepath.Join(abs, ChangelogFile)
	entry, err := changelog.Parse(logPath)
	if err != nil {
		return nil, err
	}
	img := &Image{
		Name:       entry.Name,
		Version:    entry.Version,
		Dir:        abs,
		Repo:       n.Repo(entry.Name),
		Tag:        entry.Version + n.TagSuffix,
		BuildStage: p.BuildTemplate,
	}
	if err := ref.CheckTag(img.Tag); err != nil {
		return nil, fmt.Errorf("%s: %w: version %q gives the tag %q, which Docker does not accept: %s",
			logPath, ErrInvalid, entry.Version, img.Tag, err)
	}
	if !ref.ValidComponent(entry.Name) {
		return nil, fmt.Errorf("%s: %w: Docker does not accept %q in a repository name: lower-case letters, digits and single separators (., _, __, -) only",
			logPath, ErrInvalid, entry.Name)
	}
	if p.Control {
		c, err := readControl(filepath.Join(abs, ControlFile))
		if err != nil {
			return nil, err
		}
		img.Depends, img.Platforms = c.depends, c.platforms
	}
	return img, nil
}

// MaxControlSize is the largest control file Load reads: 1 MiB, far above
// any real one (a few hundred bytes), so a file that grows without end
// (a link to /dev/zero, a log) cannot eat the memory.
const MaxControlSize = 1 << 20

// control is what docker-pkg reads of a control file.
type control struct {
	depends   []Dependency
	platforms []string // Platforms, normalized; nil when no paragraph has one
}

// readControl returns the Depends and Build-Depends of every paragraph of
// the deb822 file at path, and its Platforms; a missing file has none.
// Only a regular file of at most MaxControlSize bytes is read: a named
// pipe or a device would block or never end.
func readControl(path string) (control, error) {
	data, err := readRegular(path, MaxControlSize)
	if errors.Is(err, os.ErrNotExist) {
		return control{}, nil
	}
	if err != nil {
		return control{}, err
	}
	return readControlData(path, data)
}

// readControlData is readControl of data read from path.
func readControlData(path string, data []byte) (control, error) {
	var (
		c     control
		field []segment // the Depends/Build-Depends field being read
		plats []segment // the Platforms field being read
	)
	flush := func() error {
		if plats != nil {
			p, err := parsePlatforms(path, plats)
			if err != nil {
				return err
			}
			c.platforms = append(c.platforms, p...)
			plats = nil
		}
		if field == nil {
			return nil
		}
		d, err := parseDepends(path, field)
		c.depends = append(c.depends, d...)
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
				return control{}, err
			}
			inField = false
		case line[0] == ' ' || line[0] == '\t':
			if !inField {
				return control{}, fmt.Errorf("%s:%d: %w: continuation line outside a field", path, n, ErrInvalid)
			}
			if field != nil {
				field = append(field, segment{n, line})
			}
			if plats != nil {
				plats = append(plats, segment{n, line})
			}
		default:
			if err := flush(); err != nil {
				return control{}, err
			}
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return control{}, fmt.Errorf(`%s:%d: %w: expected "Field: value", got %q`, path, n, ErrInvalid, line)
			}
			inField = true
			switch k := strings.TrimSpace(name); {
			case strings.EqualFold(k, "Depends") || strings.EqualFold(k, "Build-Depends"):
				field = []segment{{n, value}}
			case strings.EqualFold(k, "Platforms"):
				plats = []segment{{n, value}}
			}
		}
	}
	if err := flush(); err != nil {
		return control{}, err
	}
	return c, nil
}

// parsePlatforms reads a Platforms field: platforms such as linux/amd64,
// separated by commas or spaces, each normalized (linux/arm64/v8 is
// linux/arm64). An empty field is an error: it would build for nothing.
func parsePlatforms(path string, field []segment) ([]string, error) {
	var out []string
	for _, seg := range field {
		for _, p := range strings.FieldsFunc(seg.text, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
			norm, err := config.NormalizePlatform(p)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w: Platforms: %v", path, seg.line, ErrInvalid, err)
			}
			if !slices.Contains(out, norm) {
				out = append(out, norm)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s:%d: %w: Platforms: empty; list platforms such as linux/amd64, linux/arm64, or remove the field", path, field[0].line, ErrInvalid)
	}
	return out, nil
}

// readRegular reads the regular file at path (a symbolic link to one is
// one), at most limit bytes of it (see readfile.Read): anything else is an
// ErrInvalid error naming path.
func readRegular(path string, limit int64) ([]byte, error) {
	data, _, err := readfile.Read(path, limit)
	var re *readfile.Error
	if errors.As(err, &re) {
		return nil, fmt.Errorf("%s: %w: %v: %s", path, ErrInvalid, re.Err, re.Detail)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return data, nil
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
