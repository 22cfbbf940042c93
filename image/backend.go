package image

import (
	"fmt"
	"io"
	"time"

	"github.com/docker-pkg/docker-pkg/config"
)

// Stage says which part of an image's work failed.
type Stage string

const (
	StageRender     Stage = "render"      // rendering the templates
	StageBuildStage Stage = "build-stage" // the Dockerfile.build.template image
	StageBuild      Stage = "build"       // the image itself
	StageVerify     Stage = "verify"      // the verify command
)

// tailLines is how many lines of log an error carries.
const tailLines = 30

// BuildError is the error of one stage of one image. Tail holds the last
// lines of that stage's log, enough to see why without the log file.
type BuildError struct {
	Image string // full label
	Stage Stage
	Tail  []string
	Err   error
}

func (e *BuildError) Error() string {
	return fmt.Sprintf("%s: %s failed: %v", e.Image, e.Stage, e.Err)
}

func (e *BuildError) Unwrap() error { return e.Err }

// BuildRequest is what a backend needs to build one image: its rendered
// Dockerfiles and the folder holding its build context.
type BuildRequest struct {
	Image *Image
	// Context is a private folder holding the build context, as NewContext
	// makes it. The backend writes the Dockerfile into it (and the
	// build-stage's /build folder, as build/); the caller removes it.
	Context         string
	Dockerfile      []byte // rendered Dockerfile.template
	BuildDockerfile []byte // rendered Dockerfile.build.template; nil when none
	NoCache         bool   // true unless --use-cache
	// HTTPProxy, when set, is given to the build as the build args
	// http_proxy, https_proxy, HTTP_PROXY and HTTPS_PROXY.
	HTTPProxy string
	Limits    *config.Limits    // container_limits; nil for none
	Labels    map[string]string // the build record
	Log       io.Writer         // the build's output, line by line; nil discards it
	// Tags are given to the image by the same build, before its own label
	// (Image.UnverifiedLabel): the daemon tags in this order, so the image
	// never has its label without them. Local engine only.
	Tags []string

	// What a builder elsewhere (Remote) needs, which sees neither this
	// machine's engine nor its registry configuration:

	// Push is the repository the image is pushed to, by digest and
	// without a tag: it gets its tag once verified.
	Push string
	// Pins maps each image reference the Dockerfiles name (a FROM, a COPY
	// --from) to the repo@digest to build from: what the build record
	// says it was built on, whatever the tag says meanwhile.
	Pins map[string]string
	// Platforms to build for, in one build (an index of one image each);
	// none: the builder's own, one image.
	Platforms []string
	// Cache, when set, is the registry reference the build imports its
	// cache from and exports it to (mode=max); a cache not there yet is
	// not an error.
	Cache string
	// Annotations go on the pushed manifests (and index): unlike labels,
	// they are not inherited by images built FROM this one.
	Annotations map[string]string
	// Insecure says the registry is reached over plain HTTP (a host in
	// insecure_registries).
	Insecure bool
	// Epoch, when set, is the build's SOURCE_DATE_EPOCH: the time of the
	// image's configuration and history, so the same inputs give the same
	// manifest, which is what a child's cache is keyed on.
	Epoch time.Time
}

// Built is where a backend left the image it built.
type Built struct {
	ID string // image ID: the digest of its configuration
	// Local is true when the image is in the local Docker Engine, tagged
	// Image.Label().
	Local bool
	// Digest is the digest of the manifest (or index, for several
	// platforms) pushed by a builder elsewhere: the image is
	// BuildRequest.Push@Digest. "" for a local build.
	Digest string
	// Builder names the builder that built it; "" for the local engine.
	Builder string
}
