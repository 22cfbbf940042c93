package image

import "github.com/docker-pkg/docker-pkg/internal/ref"

// Naming turns an image's short name and version into Docker references:
// Repo = registry, namespace and short name joined with "/", empty parts
// left out; tag = version + TagSuffix (the --nightly/--snapshot suffix).
type Naming struct {
	Registry  string
	Namespace string
	TagSuffix string
}

// Dependency is one item of a control file's Depends or Build-Depends.
type Dependency struct {
	Name    string // short name of another image
	Op      string // "", ">=", "<=", ">>", "<<" or "="
	Version string // the constraint's version, "" when Op is ""
	File    string // control file it was read from
	Line    int    // line of the field it was read from
}

// Image is one image definition: a folder holding Dockerfile.template and
// changelog, and optionally control and Dockerfile.build.template.
type Image struct {
	Name    string // short name, from the changelog
	Version string // changelog version, exactly as written
	Dir     string // absolute path of the folder
	// Root is the repository the folder belongs to (the scanned DIR): a
	// symbolic link in Dir may point anywhere inside it. "" means Dir.
	Root       string
	Repo       string // registry/namespace/name
	Tag        string // Version plus the naming's TagSuffix
	Depends    []Dependency
	BuildStage bool // Dockerfile.build.template exists
	// Platforms are the control file's Platforms, normalized: the
	// platforms this image is built for instead of the configuration's.
	// nil: the configuration's.
	Platforms []string
}

// Label is the full label, Repo:Tag.
func (img *Image) Label() string { return img.Repo + ":" + img.Tag }

// Repo joins registry, namespace and short name with "/", leaving out empty
// parts.
func (n Naming) Repo(short string) string {
	return ref.Join(n.Registry, n.Namespace, short)
}
