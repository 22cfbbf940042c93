package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/moby/client"
)

// The labels of a build record. The OCI annotations say what the image is
// and what it was built on; LabelInputs says what it was built from.
const (
	LabelTitle      = "org.opencontainers.image.title"
	LabelVersion    = "org.opencontainers.image.version"
	LabelCreated    = "org.opencontainers.image.created"
	LabelRevision   = "org.opencontainers.image.revision"
	LabelBaseName   = "org.opencontainers.image.base.name"
	LabelBaseDigest = "org.opencontainers.image.base.digest"
	LabelInputs     = "org.docker-pkg.inputs.digest"
	// LabelParents holds every parent image the build used (FROM of any
	// stage, COPY --from), as space-separated label=ID pairs: a child is
	// stale when any of them, not only the base, has been rebuilt since.
	LabelParents = "org.docker-pkg.parents"
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
	// base included.
	Parents map[string]string
}

// Labels returns the record as labels. Every label is set, empty when
// unknown, so that none is inherited from the parent image.
func (r Record) Labels() map[string]string {
	created := ""
	if !r.Created.IsZero() {
		created = r.Created.UTC().Format(time.RFC3339)
	}
	return map[string]string{
		LabelTitle:      r.Title,
		LabelVersion:    r.Version,
		LabelCreated:    created,
		LabelRevision:   r.Revision,
		LabelBaseName:   r.BaseName,
		LabelBaseDigest: r.BaseDigest,
		LabelInputs:     r.Inputs,
		LabelParents:    formatParents(r.Parents),
	}
}

func formatParents(parents map[string]string) string {
	pairs := make([]string, 0, len(parents))
	for _, label := range slices.Sorted(maps.Keys(parents)) {
		pairs = append(pairs, label+"="+parents[label])
	}
	return strings.Join(pairs, " ")
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

// ParseRecord reads img's record from an image's labels. ok is false when
// they hold none for img at its version: an image built without records,
// or labels inherited from a parent that has one.
func ParseRecord(img *Image, labels map[string]string) (r Record, ok bool) {
	r = Record{
		Title:      labels[LabelTitle],
		Version:    labels[LabelVersion],
		Revision:   labels[LabelRevision],
		BaseName:   labels[LabelBaseName],
		BaseDigest: labels[LabelBaseDigest],
		Inputs:     labels[LabelInputs],
		Parents:    parseParents(labels[LabelParents]),
	}
	if r.Title != img.Name || r.Version != img.Version || r.Inputs == "" {
		return Record{}, false
	}
	r.Created, _ = time.Parse(time.RFC3339, labels[LabelCreated])
	return r, true
}

// Inspector is the Engine API call NewRecord uses; *client.Client
// satisfies it.
type Inspector interface {
	ImageInspect(ctx context.Context, imageID string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
}

// NewRecord returns the record of building img now from the rendered
// Dockerfiles (buildDockerfile nil when there is none). Every image they
// name must be in the daemon, as the build needs them there: their IDs go
// into the record. revision is Revision of the definitions' folder.
func NewRecord(ctx context.Context, c Inspector, img *Image, dockerfile, buildDockerfile []byte, revision string) (Record, error) {
	base, parents, err := Parents(dockerfile, buildDockerfile)
	if err != nil {
		return Record{}, fmt.Errorf("recording the build of %s: %w", img.Label(), err)
	}
	ids := make(map[string]string, len(parents))
	for _, p := range parents {
		res, err := c.ImageInspect(ctx, p)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				err = fmt.Errorf("parent image %s is not in the local daemon", p)
			}
			return Record{}, fmt.Errorf("recording the build of %s: %w", img.Label(), err)
		}
		ids[p] = res.ID
	}
	inputs, err := InputsDigest(ctx, img.Dir, Inputs{Dockerfile: dockerfile, BuildDockerfile: buildDockerfile, Parents: ids})
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
}

// InputsDigest is the sha256 digest of everything a build of the image in
// dir starts from: the rendered Dockerfiles, the files of the build context
// (as Build copies them: .dockerignore applied, the folder's own Dockerfile
// replaced) by path, mode and content, and the image ID of every parent.
// File order, modification times and owners do not count, so the digest is
// the same on every machine that has the same files.
func InputsDigest(ctx context.Context, dir string, in Inputs) (string, error) {
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
	err := walkContext(ctx, dir, func(rel string, info fs.FileInfo, path string) error {
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
			n, err := io.Copy(h, f)
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

// walkContext calls fn, in lexical order, for every entry of dir that
// newContext copies into a build context: the same .dockerignore rules,
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

// Holds says whether label names an image in this registry (a nil one
// holds none).
func (r *Registry) Holds(label string) bool {
	if r == nil {
		return false
	}
	ref, err := name.ParseReference(label)
	return err == nil && ref.Context().RegistryStr() == r.host
}

// ErrNotPublished is matched (errors.Is) by Registry.Config for an image
// the registry does not have.
var ErrNotPublished = errors.New("not in the registry")

// Config returns the image ID (the digest of its configuration, which the
// daemon also uses as ID once pulled) and the labels of label in its
// registry: its build record, without pulling it. A manifest list resolves
// to its linux/amd64 image. Failures are retried as in Published.
func (r *Registry) Config(ctx context.Context, label string) (id string, labels map[string]string, err error) {
	if r == nil {
		return "", nil, fmt.Errorf("reading %s: %w: no registry configured", label, ErrNotPublished)
	}
	if p, ok := r.published.Load(label); ok {
		return p.(publishedImage).id, p.(publishedImage).labels, nil
	}
	ref, err := r.reference(label)
	if err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", label, err)
	}
	found, err := r.retry(ctx, "reading "+label+" from the registry", func(ctx context.Context) (err error) {
		id, labels, err = r.config(ctx, ref)
		return err
	})
	switch {
	case err != nil:
		return "", nil, err
	case !found:
		return "", nil, fmt.Errorf("reading %s: %w", label, ErrNotPublished)
	}
	// Only what is there is remembered: a tag published later in the run
	// must not read as absent.
	r.published.Store(label, publishedImage{id, labels})
	return id, labels, nil
}

type publishedImage struct {
	id     string
	labels map[string]string
}

func (r *Registry) config(ctx context.Context, ref name.Reference) (string, map[string]string, error) {
	desc, err := r.puller.Get(ctx, ref)
	if err != nil {
		return "", nil, err
	}
	img, err := desc.Image()
	if err != nil {
		return "", nil, err
	}
	id, err := img.ConfigName()
	if err != nil {
		return "", nil, err
	}
	// The manifest names the config by digest: a config read once, in this
	// run or an earlier one, need not be fetched again. On a no-op run it is
	// the most expensive request of all.
	if labels, ok := r.labels.get(id.String()); ok {
		return id.String(), labels, nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", nil, err
	}
	r.labels.put(id.String(), cf.Config.Labels)
	return id.String(), cf.Config.Labels, nil
}
