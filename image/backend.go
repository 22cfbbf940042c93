package image

import (
	"fmt"
	"io"

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
	// never has its label without them.
	Tags []string
}

// Built is where a backend left the image it built.
type Built struct {
	ID string // image ID: the digest of its configuration
	// Local is true when the image is in the local Docker Engine, tagged
	// Image.Label().
	Local bool
}
