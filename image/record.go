package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// LabelRecord is the one label docker-pkg writes into every image it
// builds: its build record, as compact JSON (see Record.Labels).
//
// One label, under the tool's own key, because labels are copied into
// every image built FROM ours, users' images included: an image of theirs
// must not claim to be ours (the org.opencontainers.image.* keys would say
// "title: python3-bookworm, version: 0.0.3"), and a record names the image
// it belongs to, so an inherited one is recognised as not this image's.
// One label is also one step: the classic builder adds a LABEL step, and a
// history entry, per label given through the build API.
const LabelRecord = "org.docker-pkg.record"

// recordFormat is the version of the JSON in LabelRecord.
const recordFormat = 1

// The labels of the records written by docker-pkg before LabelRecord: one
// label each, OCI keys among them. ParseRecord still reads them, so that
// images built then are not all taken for changed.
const (
	legacyTitle      = "org.opencontainers.image.title"
	legacyVersion    = "org.opencontainers.image.version"
	legacyCreated    = "org.opencontainers.image.created"
	legacyRevision   = "org.opencontainers.image.revision"
	legacyBaseName   = "org.opencontainers.image.base.name"
	legacyBaseDigest = "org.opencontainers.image.base.digest"
	legacyInputs     = "org.docker-pkg.inputs.digest"
	legacyParents    = "org.docker-pkg.parents"
)

// Record is what docker-pkg writes into the labels of every image it
// builds (through BuildOptions.Labels, never into the Dockerfile), so that
// a later run can say why the image is, or should be, rebuilt.
type Record struct {
	Title      string // short name
	Version    string // changelog version
	Created    time.Time
	Revision   string // commit of the definitions' git repository; "" outside one
	BaseName   string // the first FROM's image; "" for FROM scratch
	BaseDigest string // its image ID when this image was built
	Inputs     string // InputsDigest of the build
	// Parents maps every image the build used to its image ID then, the
	// base included. For an image built for several platforms, those of
	// the first.
	Parents map[string]string
	// Platforms, for an image built for a list of platforms, maps each to
	// its Parents: the image ID each parent had for that platform. nil
	// for an image built for the builder's own platform.
	Platforms map[string]map[string]string
}

// recordJSON is a Record as LabelRecord holds it. The base's digest is
// its entry in Parents.
type recordJSON struct {
	Format   int               `json:"v"`
	Name     string            `json:"name"`
	Version  string            `json:"version"`
	Created  string            `json:"created,omitempty"`
	Revision string            `json:"revision,omitempty"`
	Base     string            `json:"base,omitempty"`
	Inputs   string            `json:"inputs"`
	Parents  map[string]string `json:"parents,omitempty"`
	// Platforms is Record.Platforms.
	Platforms map[string]map[string]string `json:"platforms,omitempty"`
}

// Labels returns the record as the labels to build the image with: the
// one label LabelRecord.
func (r Record) Labels() map[string]string {
	j := recordJSON{
		Format: recordFormat, Name: r.Title, Version: r.Version, Revision: r.Revision,
		Base: r.BaseName, Inputs: r.Inputs, Parents: r.Parents, Platforms: r.Platforms,
	}
	if !r.Created.IsZero() {
		j.Created = r.Created.UTC().Format(time.RFC3339)
	}
	if r.BaseName != "" && r.Parents[r.BaseName] != r.BaseDigest {
		// Parents comes from the same resolution; keep both if not.
		j.Parents = maps.Clone(r.Parents)
		if j.Parents == nil {
			j.Parents = map[string]string{}
		}
		j.Parents[r.BaseName] = r.BaseDigest
	}
	data, err := json.Marshal(j) // map keys sorted: the same record, the same bytes
	if err != nil {
		panic(err) // strings and a map of strings always marshal
	}
	return map[string]string{LabelRecord: string(data)}
}

// Annotations returns the record's OCI annotations (title, version,
// created, revision, base name and digest), for a manifest: unlike labels,
// annotations of a manifest are not inherited by the images built FROM
// it. The local Docker Engine cannot put annotations on what it builds or
// pushes (docker push writes its own manifest); a builder that pushes
// through BuildKit (the remote builder) sets them there.
func (r Record) Annotations() map[string]string {
	out := map[string]string{
		legacyTitle:   r.Title,
		legacyVersion: r.Version,
	}
	if !r.Created.IsZero() {
		out[legacyCreated] = r.Created.UTC().Format(time.RFC3339)
	}
	if r.Revision != "" {
		out[legacyRevision] = r.Revision
	}
	if r.BaseName != "" {
		out[legacyBaseName] = r.BaseName
		out[legacyBaseDigest] = r.BaseDigest
	}
	return out
}

func parseParents(s string) map[string]string {
	out := map[string]string{}
	for _, pair := range strings.Fields(s) {
		if label, id, ok := strings.Cut(pair, "="); ok {
			out[label] = id
		}
	}
	return out
}

// ParseRecord reads img's record from an image's labels: LabelRecord, or
// the labels of a record written before it. ok is false when they hold
// none for img at its version: an image built without records, or labels
// inherited from a parent that has one.
func ParseRecord(img *Image, labels map[string]string) (r Record, ok bool) {
	if raw, found := labels[LabelRecord]; found {
		var j recordJSON
		if err := json.Unmarshal([]byte(raw), &j); err != nil || j.Format != recordFormat {
			return Record{}, false
		}
		r = Record{
			Title: j.Name, Version: j.Version, Revision: j.Revision,
			BaseName: j.Base, BaseDigest: j.Parents[j.Base], Inputs: j.Inputs, Parents: j.Parents,
			Platforms: j.Platforms,
		}
		if r.Parents == nil {
			r.Parents = map[string]string{}
		}
		r.Created, _ = time.Parse(time.RFC3339, j.Created)
	} else {
		r = Record{
			Title:      labels[legacyTitle],
			Version:    labels[legacyVersion],
			Revision:   labels[legacyRevision],
			BaseName:   labels[legacyBaseName],
			BaseDigest: labels[legacyBaseDigest],
			Inputs:     labels[legacyInputs],
			Parents:    parseParents(labels[legacyParents]),
		}
		r.Created, _ = time.Parse(time.RFC3339, labels[legacyCreated])
	}
	if r.Title != img.Name || r.Version != img.Version || r.Inputs == "" {
		return Record{}, false
	}
	return r, true
}

// Resolver gives the image ID a parent image has where the build will
// take it from, or an error naming it when it is not there.
type Resolver func(ctx context.Context, label string) (id string, err error)

// NewRecord returns the record of building img now from the rendered
// Dockerfiles (buildDockerfile nil when there is none). Every image they
// name is resolved to its ID, which goes into the record. revision is
// Revision of the definitions' folder.
func NewRecord(ctx context.Context, img *Image, dockerfile, buildDockerfile []byte, revision string, resolve Resolver) (Record, error) {
	base, parents, err := Parents(dockerfile, buildDockerfile)
	if err != nil {
		return Record{}, fmt.Errorf("recording the build of %s: %w", img.Label(), err)
	}
	ids := make(map[string]string, len(parents))
	for _, p := range parents {
		id, err := resolve(ctx, p)
		if err != nil {
			return Record{}, fmt.Errorf("recording the build of %s: %w", img.Label(), err)
		}
		ids[p] = id
	}
	return newRecord(ctx, img, dockerfile, buildDockerfile, revision, base, ids, nil)
}

// PlatformResolver gives, for a parent image, the image ID it has for
// each platform where the build takes it from (the registry's index), or
// an error naming it when it is not there.
type PlatformResolver func(ctx context.Context, label string) (ids map[string]string, err error)

// NewPlatformRecord is NewRecord for an image built for platforms, each
// parent resolved for every one of them: a parent that lacks one is an
// error naming the parent and the platform. Parents holds the first
// platform's IDs, Platforms all of them.
func NewPlatformRecord(ctx context.Context, img *Image, dockerfile, buildDockerfile []byte, revision string, platforms []string, resolve PlatformResolver) (Record, error) {
	base, parents, err := Parents(dockerfile, buildDockerfile)
	if err != nil {
		return Record{}, fmt.Errorf("recording the build of %s: %w", img.Label(), err)
	}
	per := make(map[string]map[string]string, len(platforms))
	for _, p := range platforms {
		per[p] = map[string]string{}
	}
	for _, parent := range parents {
		ids, err := resolve(ctx, parent)
		if err != nil {
			return Record{}, fmt.Errorf("recording the build of %s: %w", img.Label(), err)
		}
		for _, p := range platforms {
			id, ok := ids[p]
			if !ok {
				return Record{}, &PlatformError{Image: img.Label(), Parent: parent, Platform: p, Has: slices.Sorted(maps.Keys(ids))}
			}
			per[p][parent] = id
		}
	}
	return newRecord(ctx, img, dockerfile, buildDockerfile, revision, base, per[platforms[0]], per)
}

// ErrPlatform is matched (errors.Is) by the error of an image a parent of
// which lacks a platform the image is built for.
var ErrPlatform = errors.New("a parent image lacks a platform")

// PlatformError says which parent lacks which platform. BuildKit would
// build such an image all the same, on the parent's other platform: an
// "arm64" image full of amd64 binaries.
type PlatformError struct {
	Image, Parent, Platform string
	Has                     []string // the platforms the parent offers
}

func (e *PlatformError) Error() string {
	return fmt.Sprintf("parent image %s has no %s image (it offers %s): %s cannot be built for %s on it",
		e.Parent, e.Platform, strings.Join(e.Has, ", "), e.Image, e.Platform)
}

func (e *PlatformError) Is(target error) bool { return target == ErrPlatform }

func newRecord(ctx context.Context, img *Image, dockerfile, buildDockerfile []byte, revision, base string, ids map[string]string, platforms map[string]map[string]string) (Record, error) {
	in := Inputs{Dockerfile: dockerfile, BuildDockerfile: buildDockerfile, Parents: ids}
	if platforms != nil {
		// Every platform's parents, whatever order the platforms come in.
		in.Parents, in.Platforms = nil, platforms
	}
	inputs, err := InputsDigest(ctx, img.Dir, img.Root, in)
	if err != nil {
		return Record{}, fmt.Errorf("recording the build of %s: %w", img.Label(), err)
	}
	return Record{
		Title:      img.Name,
		Version:    img.Version,
		Created:    time.Now(),
		Revision:   revision,
		BaseName:   base,
		BaseDigest: ids[base],
		Inputs:     inputs,
		Parents:    ids,
		Platforms:  platforms,
	}, nil
}

// Revision returns the commit checked out in the git repository holding
// dir, or "" when there is none (or no git).
func Revision(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--verify", "--quiet", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// FolderRevision returns the last commit that changed dir in the git
// repository holding it, or "" when there is none (or no git): unlike
// Revision, it changes only with the image's own files.
func FolderRevision(ctx context.Context, dir string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "log", "-1", "--format=%H", "--", ".").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// Parents returns the images rendered Dockerfiles build on: base is the
// image of the main Dockerfile's first FROM ("" for scratch), all is every
// image a FROM or a COPY --from names in either, in order, without stage
// names, scratch or repeats. A reference holding a variable ($ARG) is left
// out: it cannot be resolved without the build.
func Parents(dockerfile, buildDockerfile []byte) (base string, all []string, err error) {
	for i, df := range [][]byte{dockerfile, buildDockerfile} {
		if df == nil {
			continue
		}
		refs, first, err := fromImages(df)
		if err != nil {
			name := "Dockerfile"
			if i == 1 {
				name = "build Dockerfile"
			}
			return "", nil, fmt.Errorf("reading the rendered %s: %w", name, err)
		}
		if i == 0 {
			base = first
		}
		for _, r := range refs {
			if !slices.Contains(all, r) {
				all = append(all, r)
			}
		}
	}
	return base, all, nil
}

// fromImages lists the images one Dockerfile names, and its first FROM's.
func fromImages(df []byte) (refs []string, first string, err error) {
	res, err := parser.Parse(bytes.NewReader(df))
	if err != nil {
		return nil, "", err
	}
	stages := map[string]bool{}
	add := func(ref string) {
		if ref == "" || strings.EqualFold(ref, "scratch") || stages[strings.ToLower(ref)] ||
			strings.Contains(ref, "$") || slices.Contains(refs, ref) {
			return
		}
		if _, err := strconv.Atoi(ref); err == nil { // COPY --from=0: a stage index
			return
		}
		refs = append(refs, ref)
	}
	seenFrom := false
	for _, n := range res.AST.Children {
		switch strings.ToLower(n.Value) {
		case "from":
			if n.Next == nil {
				continue
			}
			ref := n.Next.Value
			if !seenFrom {
				seenFrom = true
				if !strings.EqualFold(ref, "scratch") && !strings.Contains(ref, "$") {
					first = ref
				}
			}
			add(ref)
			if as := n.Next.Next; as != nil && strings.EqualFold(as.Value, "as") && as.Next != nil {
				stages[strings.ToLower(as.Next.Value)] = true
			}
		case "copy":
			for _, f := range n.Flags {
				if ref, ok := strings.CutPrefix(f, "--from="); ok {
					add(ref)
				}
			}
		}
	}
	return refs, first, nil
}

// Inputs is what an image is built from besides its folder.
type Inputs struct {
	Dockerfile      []byte            // rendered Dockerfile.template
	BuildDockerfile []byte            // rendered Dockerfile.build.template; nil when none
	Parents         map[string]string // every image Parents lists -> its image ID
	// Platforms, for an image built for a list of platforms: each
	// platform -> every parent -> its image ID for that platform.
	Platforms map[string]map[string]string
}

// InputsDigest is the sha256 digest of everything a build of the image in
// dir (of the repository root) starts from: the rendered Dockerfiles, the
// files of the build context (as NewContext copies them: .dockerignore
// applied, the folder's own Dockerfile replaced, symbolic links followed)
// by path, mode and content, and the image ID of every parent.
// File order, modification times and owners do not count, so the digest is
// the same on every machine that has the same files.
func InputsDigest(ctx context.Context, dir, root string, in Inputs) (string, error) {
	h := sha256.New()
	// Every item is length-prefixed so no two different inputs can write
	// the same stream.
	item := func(kind string, fields ...string) {
		fmt.Fprintf(h, "%s %d\n", kind, len(fields))
		for _, f := range fields {
			fmt.Fprintf(h, "%d:%s\n", len(f), f)
		}
	}
	item("docker-pkg-inputs-v1")
	item("dockerfile", string(in.Dockerfile))
	if in.BuildDockerfile != nil {
		item("build-dockerfile", string(in.BuildDockerfile))
	}
	for _, ref := range slices.Sorted(maps.Keys(in.Parents)) {
		item("parent", ref, in.Parents[ref])
	}
	for _, p := range slices.Sorted(maps.Keys(in.Platforms)) {
		item("platform", p)
		for _, ref := range slices.Sorted(maps.Keys(in.Platforms[p])) {
			item("platform-parent", p, ref, in.Platforms[p][ref])
		}
	}
	buf := make([]byte, 32<<10)
	err := walkContext(ctx, dir, root, func(rel string, info fs.FileInfo, path string) error {
		mode := strconv.FormatUint(uint64(info.Mode()&(fs.ModeType|fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)), 8)
		switch {
		case info.IsDir():
			item("dir", rel, mode)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			item("symlink", rel, mode, link)
		case info.Mode().IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintf(h, "file 3\n%d:%s\n%d:%s\n%d:", len(rel), rel, len(mode), mode, info.Size())
			// Through one buffer for every file: io.Copy would take
			// File.WriteTo, which makes a new one for each.
			n, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf)
			if err != nil {
				return err
			}
			if n != info.Size() {
				return fmt.Errorf("%s changed while being read", path)
			}
			fmt.Fprintln(h)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("digesting the build inputs of %s: %w", dir, err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
