package registry

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/containerd/platforms"
	"github.com/docker-pkg/docker-pkg/internal/ref"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// This file is the hand-over between machines: a builder elsewhere pushes
// what it built by digest, the registry says which image a reference is
// for each platform, the local engine pulls one platform of a digest, and
// a verified digest gets its tags, its manifest uploaded once.

// Image is what the registry holds under one reference.
type Image struct {
	// Digest is the digest of the manifest or index the reference names:
	// what to pin a build to (repo@Digest).
	Digest string
	// Index is true for an index (manifest list) of several images.
	Index bool
	// Platforms maps each platform the reference offers (linux/amd64) to
	// the image ID there: the digest of that platform's configuration,
	// the ID the daemon gives it once pulled. Attestations are left out.
	Platforms map[string]string
}

// PlatformList is Platforms' keys, sorted.
func (i Image) PlatformList() []string { return slices.Sorted(maps.Keys(i.Platforms)) }

// Resolve reads what label (repo:tag or repo@digest, in any registry
// Docker's rules let us reach) is now, without pulling it: its digest and,
// for each platform, the image ID. ErrNotPublished when it is absent.
// Failures are retried as in Published; a label is read once per Client.
func (r *Client) Resolve(ctx context.Context, label string) (Image, error) {
	if r == nil {
		return Image{}, fmt.Errorf("reading %s: %w: no registry configured", label, ErrNotPublished)
	}
	if v, ok := r.resolved.Load(label); ok {
		return v.(Image), nil
	}
	ref, err := r.reference(label)
	if err != nil {
		return Image{}, fmt.Errorf("reading %s: %w", label, err)
	}
	var img Image
	found, err := r.retry(ctx, ref.Context().RegistryStr(), "reading "+label+" from the registry", func(ctx context.Context) (err error) {
		img, err = r.resolve(ctx, ref)
		return err
	})
	switch {
	case err != nil:
		return Image{}, err
	case !found:
		return Image{}, fmt.Errorf("reading %s: %w", label, ErrNotPublished)
	}
	r.resolved.Store(label, img)
	return img, nil
}

func (r *Client) resolve(ctx context.Context, ref name.Reference) (Image, error) {
	desc, err := r.puller.Get(ctx, ref)
	if err != nil {
		return Image{}, err
	}
	out := Image{Digest: desc.Digest.String(), Platforms: map[string]string{}}
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return Image{}, err
		}
		id, p, err := r.platformOf(img)
		if err != nil {
			return Image{}, err
		}
		out.Platforms[p] = id
		return out, nil
	}
	out.Index = true
	idx, err := desc.ImageIndex()
	if err != nil {
		return Image{}, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return Image{}, err
	}
	for _, m := range im.Manifests {
		if m.Platform == nil || m.Platform.OS == "unknown" || m.Annotations["vnd.docker.reference.type"] != "" {
			continue // an attestation, not an image to run
		}
		child, err := idx.Image(m.Digest)
		if err != nil {
			return Image{}, err
		}
		cm, err := child.Manifest()
		if err != nil {
			return Image{}, err
		}
		p := platforms.Format(platforms.Normalize(ocispec.Platform{OS: m.Platform.OS, Architecture: m.Platform.Architecture, Variant: m.Platform.Variant}))
		out.Platforms[p] = cm.Config.Digest.String()
	}
	return out, nil
}

// platformOf reads an image's configuration: its ID and the platform it
// says it is for.
func (r *Client) platformOf(img v1.Image) (id, platform string, err error) {
	m, err := img.Manifest()
	if err != nil {
		return "", "", err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", "", err
	}
	r.labels.put(m.Config.Digest.String(), cf.Config.Labels)
	p := platforms.Normalize(ocispec.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant})
	return m.Config.Digest.String(), platforms.Format(p), nil
}

// Tag gives the manifest or index repo@digest the tags, in that order, in
// its repository: the manifest is uploaded again under each tag, its
// layers are not. It fails with ErrNoCredentials rather than tag
// anonymously, as Publish does.
func (r *Client) Tag(ctx context.Context, digestRef string, tags ...string) error {
	if r == nil {
		return fmt.Errorf("tagging %s: no registry configured", digestRef)
	}
	found, err := r.Credentials(ctx)
	if err != nil {
		return fmt.Errorf("tagging %s: %w", digestRef, err)
	}
	if !found {
		return fmt.Errorf("tagging %s: %w %s", digestRef, ErrNoCredentials, r.host)
	}
	src, err := r.reference(digestRef)
	if err != nil {
		return fmt.Errorf("tagging %s: %w", digestRef, err)
	}
	host := src.Context().RegistryStr()
	var desc *remote.Descriptor
	if _, err := r.retry(ctx, host, "reading "+digestRef, func(ctx context.Context) (err error) {
		desc, err = r.puller.Get(ctx, src)
		return err
	}); err != nil {
		return err
	}
	if desc == nil {
		return fmt.Errorf("tagging %s: %w", digestRef, ErrNotPublished)
	}
	for _, t := range tags {
		tag := src.Context().Tag(t)
		if _, err := r.retry(ctx, host, "tagging "+digestRef+" as "+t, func(ctx context.Context) error {
			return r.pusher.Put(ctx, tag, desc)
		}); err != nil {
			return err
		}
		// The tag now names this digest: forget what was read of it.
		r.published.Delete(tag.String())
		r.resolved.Delete(tag.String())
	}
	return nil
}

// PullPlatform has the daemon pull platform's image of ref (repo@digest
// of an index, say) and gives it the tags, so it can be run as any image
// built locally. log gets the daemon's progress.
func (r *Client) PullPlatform(ctx context.Context, eng PlatformPuller, digestRef, platform string, log io.Writer, tags ...string) error {
	auth, err := r.engineAuth(ctx, digestRef)
	if err != nil {
		return fmt.Errorf("pulling %s: %w", digestRef, err)
	}
	opts := client.ImagePullOptions{RegistryAuth: auth}
	if platform != "" {
		p, err := platforms.Parse(platform)
		if err != nil {
			return fmt.Errorf("pulling %s: platform %q: %w", digestRef, platform, err)
		}
		opts.Platforms = []ocispec.Platform{p}
	}
	resp, err := eng.ImagePull(ctx, digestRef, opts)
	if err != nil {
		return r.redact(fmt.Errorf("pulling %s for %s: %w", digestRef, platform, err))
	}
	defer resp.Close()
	if err := r.progress(resp, log); err != nil {
		return fmt.Errorf("pulling %s for %s: %w", digestRef, platform, err)
	}
	for _, t := range tags {
		if _, err := eng.ImageTag(ctx, client.ImageTagOptions{Source: digestRef, Target: t}); err != nil {
			return fmt.Errorf("tagging %s as %s: %w", digestRef, t, err)
		}
	}
	return nil
}

// PlatformPuller is what PullPlatform needs of the Engine API; a
// *client.Client is one.
type PlatformPuller interface {
	Puller
	ImageTag(ctx context.Context, options client.ImageTagOptions) (client.ImageTagResult, error)
}

// Credential is a registry credential as a BuildKit session hands it to
// the daemon that asks: never a build argument, never logged.
type Credential struct {
	Username, Password, IdentityToken, RegistryToken string
}

// CredentialFor is the credential for host: the configured one for our
// registry, else Docker's credential store's; the zero Credential for
// none. A builder elsewhere asks it through the session whenever it pulls
// or pushes.
func (r *Client) CredentialFor(ctx context.Context, host string) (Credential, error) {
	if r == nil {
		return Credential{}, nil
	}
	if host == "registry-1.docker.io" {
		host = name.DefaultRegistry
	}
	ac, err := r.authConfig(ctx, host)
	if err != nil {
		return Credential{}, err
	}
	return Credential{ac.Username, ac.Password, ac.IdentityToken, ac.RegistryToken}, nil
}

// Redact removes every credential the Client has seen from err's message:
// for errors of others (a builder's) that may quote one.
func (r *Client) Redact(err error) error {
	if r == nil {
		return err
	}
	return r.redact(err)
}

// Insecure says whether label's registry is reached over plain HTTP
// though it is not on loopback (insecure_registries): a builder
// elsewhere must be told, it treats only loopback so by itself.
func (r *Client) Insecure(label string) bool {
	if r == nil {
		return false
	}
	ref, err := name.ParseReference(label)
	if err != nil {
		return false
	}
	host := ref.Context().RegistryStr()
	return r.plainHTTP(host) && !isLoopback(host)
}

// Host is the registry host, as references name it (127.0.0.1:5000).
func (r *Client) Host() string {
	if r == nil {
		return ""
	}
	return r.host
}

// DigestRef is repo@digest for a full label's repository.
func DigestRef(label, digest string) string {
	repo, _, ok := ref.SplitLabel(label)
	if !ok {
		repo = label
	}
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	return repo + "@" + digest
}
