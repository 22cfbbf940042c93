package image

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/registry"
	"github.com/docker/cli/cli/config/types"
	controlapi "github.com/moby/buildkit/api/services/control"
	bkclient "github.com/moby/buildkit/client"
	_ "github.com/moby/buildkit/client/connhelper/dockercontainer" // docker-container:// addresses
	_ "github.com/moby/buildkit/client/connhelper/kubepod"         // kube-pod:// addresses
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/tonistiigi/fsutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ErrBuilderLost is matched (errors.Is) by the error of a build that
// ended because its builder could not be reached any more, rather than
// because the image failed to build: the image may be built elsewhere.
var ErrBuilderLost = errors.New("builder lost")

// LostError is a build that lost its builder.
type LostError struct {
	Builder string
	Err     error
}

func (e *LostError) Error() string {
	return fmt.Sprintf("builder %s was lost: %v", e.Builder, plainGRPC(e.Err))
}
func (e *LostError) Is(target error) bool { return target == ErrBuilderLost }
func (e *LostError) Unwrap() error        { return e.Err }

// Credentials gives, for a registry host, the credential a builder
// elsewhere uses to pull from it and push to it (registry.Client's
// CredentialFor). They go to the builder through the build's session
// when it asks, never in a build argument or a log line.
type Credentials func(ctx context.Context, host string) (registry.Credential, error)

// RemoteOptions says how to use a builder elsewhere.
type RemoteOptions struct {
	Credentials Credentials              // nil: anonymous
	Secrets     map[string]config.Secret // served to RUN --mount=type=secret
	// DialTimeout bounds connecting and the first answer. Default: 10s.
	DialTimeout time.Duration
}

// Remote is the backend of one BuildKit daemon (buildkitd) of builders:,
// driven through BuildKit's client: the Dockerfile frontend built into the
// daemon (no frontend image is pulled), the context sent from the local
// folder, and the image pushed to the registry by digest, without a tag;
// it is not in the local engine. What the Dockerfiles build on comes from
// the registry, pinned by digest (BuildRequest.Pins).
type Remote struct {
	name, address string
	jobs          int
	platforms     []string
	c             *bkclient.Client
	o             RemoteOptions
}

// DialRemote connects to the builder cfg describes and asks it for its
// workers, which also says it answers: a builder that does not answer
// within the dial timeout is an error. Its platforms are the
// configuration's, else those its workers can build.
func DialRemote(ctx context.Context, cfg config.Remote, o RemoteOptions) (*Remote, error) {
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	var opts []bkclient.ClientOpt
	if t := cfg.TLS; t != nil {
		server := t.ServerName
		if server == "" {
			if u, err := url.Parse(cfg.Address); err == nil {
				server = u.Hostname()
			}
		}
		for _, f := range []string{t.CA, t.Cert, t.Key} {
			if _, err := os.Stat(f); err != nil {
				return nil, fmt.Errorf("builder %s: tls: %w", cfg.Name, err)
			}
		}
		opts = append(opts, bkclient.WithServerConfig(server, t.CA), bkclient.WithCredentials(t.Cert, t.Key))
	}
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	c, err := bkclient.New(dctx, cfg.Address, opts...)
	if err != nil {
		return nil, fmt.Errorf("builder %s at %s: %w", cfg.Name, cfg.Address, err)
	}
	r := &Remote{name: cfg.Name, address: cfg.Address, jobs: cfg.Jobs, c: c, o: o}
	workers, err := c.ListWorkers(dctx)
	if err == nil && len(workers) == 0 {
		err = errors.New("it has no workers")
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("builder %s at %s does not answer: %w", cfg.Name, cfg.Address, plainGRPC(err))
	}
	r.platforms = cfg.Platforms
	if len(r.platforms) == 0 {
		for _, w := range workers {
			for _, p := range w.Platforms {
				if norm, err := config.NormalizePlatform(p.OS + "/" + p.Architecture + variant(p.Variant)); err == nil && !slices.Contains(r.platforms, norm) {
					r.platforms = append(r.platforms, norm)
				}
			}
		}
	}
	return r, nil
}

func variant(v string) string {
	if v == "" {
		return ""
	}
	return "/" + v
}

// Name is the builder's name in the configuration.
func (r *Remote) Name() string { return r.name }

// Jobs is how many images it builds at once.
func (r *Remote) Jobs() int { return r.jobs }

// Platforms are the platforms it can build, the first its own.
func (r *Remote) Platforms() []string { return r.platforms }

// Close ends the connection.
func (r *Remote) Close() error { return r.c.Close() }

// Ping says whether the builder still answers, within a few seconds.
func (r *Remote) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := r.c.ListWorkers(ctx)
	return err
}

// Build builds req on the builder and pushes the image (an index, for
// several platforms) by digest to req.Push. A build-stage template is
// built first, its /build folder brought back into the context as build/.
// Errors are *BuildError; one whose builder stopped answering also
// matches ErrBuilderLost.
func (r *Remote) Build(ctx context.Context, req BuildRequest) (Built, error) {
	img := req.Image
	if req.Log == nil {
		req.Log = io.Discard
	}
	fail := func(stage Stage, log *tail, err error) (Built, error) {
		var lines []string
		if log != nil {
			lines = log.Lines()
		}
		return Built{}, &BuildError{Image: img.Label(), Stage: stage, Tail: lines, Err: r.lost(ctx, err)}
	}
	if req.Push == "" {
		return fail(StageBuild, nil, errors.New("no repository to push to: a builder elsewhere hands images over through the registry"))
	}
	if err := CheckSecrets(r.o.Secrets); err != nil {
		return fail(StageBuild, nil, err)
	}
	if err := checkSyntax(filepath.Join(img.Dir, BuildTemplateFile), req.BuildDockerfile); err != nil {
		return fail(StageBuildStage, nil, err)
	}
	if err := checkSyntax(filepath.Join(img.Dir, TemplateFile), req.Dockerfile); err != nil {
		return fail(StageBuild, nil, err)
	}
	if req.Limits != nil {
		fmt.Fprintln(req.Log, "WARNING: container_limits are not applied on builder "+r.name+": BuildKit has no such limits")
	}
	attach, err := r.attachables()
	if err != nil {
		return fail(StageBuild, nil, err)
	}
	if req.BuildDockerfile != nil {
		log := &tail{w: req.Log}
		if err := r.buildStage(ctx, req, attach, log); err != nil {
			return fail(StageBuildStage, log, err)
		}
	}
	if err := writeDockerfile(req.Context, req.Dockerfile); err != nil {
		return fail(StageBuild, nil, err)
	}
	attrs := r.frontendAttrs(req)
	for k, v := range req.Labels {
		attrs["label:"+k] = v
	}
	if req.NoCache {
		attrs["no-cache"] = ""
	}
	if len(req.Platforms) > 0 {
		attrs["platform"] = strings.Join(req.Platforms, ",")
	}
	export := map[string]string{
		"name":           req.Push,
		"push":           "true",
		"push-by-digest": "true",
		// Annotations need OCI media types; the Docker Engine of Debian
		// 11 and later pulls them.
		"oci-mediatypes": "true",
	}
	if req.Insecure {
		export["registry.insecure"] = "true"
	}
	for k, v := range req.Annotations {
		export["annotation."+k] = v
		if len(req.Platforms) > 1 {
			export["annotation-index."+k] = v
		}
	}
	opt := bkclient.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		Exports:       []bkclient.ExportEntry{{Type: bkclient.ExporterImage, Attrs: export}},
		Session:       attach,
	}
	opt.CacheImports, opt.CacheExports = cacheEntries(req, req.Cache)
	log := &tail{w: req.Log}
	fmt.Fprintf(log, "building on %s (%s)\n", r.name, r.address)
	resp, err := r.solve(ctx, req.Context, opt, log)
	if err != nil {
		return fail(StageBuild, log, err)
	}
	digest := resp.ExporterResponse["containerimage.digest"]
	if digest == "" {
		return fail(StageBuild, log, errors.New("the builder pushed the image but did not say its digest"))
	}
	fmt.Fprintf(log, "pushed %s@%s\n", req.Push, digest)
	return Built{
		ID:      resp.ExporterResponse["containerimage.config.digest"], // "" for an index
		Digest:  digest,
		Builder: r.name,
	}, nil
}

// cacheEntries import the registry cache at ref and export to it
// (mode=max: every step's result, not only the final image's); none when
// ref is "".
func cacheEntries(req BuildRequest, ref string) (imports, exports []bkclient.CacheOptionsEntry) {
	if ref == "" {
		return nil, nil
	}
	cache := map[string]string{"ref": ref}
	if req.Insecure {
		cache["registry.insecure"] = "true"
	}
	exp := maps.Clone(cache)
	exp["mode"] = "max"
	exp["oci-mediatypes"] = "true"
	return []bkclient.CacheOptionsEntry{{Type: "registry", Attrs: cache}},
		[]bkclient.CacheOptionsEntry{{Type: "registry", Attrs: exp}}
}

// frontendAttrs are the attributes every solve of req has: the Dockerfile
// at the root of the context, its pins, the proxy.
func (r *Remote) frontendAttrs(req BuildRequest) map[string]string {
	attrs := map[string]string{"filename": "Dockerfile"}
	for name, pinned := range req.Pins {
		attrs["context:"+name] = "docker-image://" + pinned
	}
	if req.HTTPProxy != "" {
		for _, k := range []string{"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"} {
			attrs["build-arg:"+k] = req.HTTPProxy
		}
	}
	if !req.Epoch.IsZero() {
		attrs["build-arg:SOURCE_DATE_EPOCH"] = strconv.FormatInt(req.Epoch.Unix(), 10)
	}
	return attrs
}

// buildStage builds the build-stage Dockerfile and brings its last
// stage's /build folder back into the context as build/, through a stage
// added at the end that holds only that folder: nothing else of the
// build-stage image leaves the builder, and nothing of it is kept.
func (r *Remote) buildStage(ctx context.Context, req BuildRequest, attach []session.Attachable, log *tail) error {
	stages := countStages(req.BuildDockerfile)
	if stages == 0 {
		return errors.New("the rendered Dockerfile.build.template has no FROM")
	}
	df := fmt.Sprintf("%s\nFROM scratch AS docker-pkg-build-export\nCOPY --from=%d /build /\n", req.BuildDockerfile, stages-1)
	name := "Dockerfile.docker-pkg-build"
	if err := os.WriteFile(filepath.Join(req.Context, name), []byte(df), 0o644); err != nil {
		return fmt.Errorf("writing the build-stage Dockerfile: %w", err)
	}
	defer os.Remove(filepath.Join(req.Context, name))
	out := filepath.Join(req.Context, "build")
	if err := os.RemoveAll(out); err != nil {
		return err
	}
	attrs := r.frontendAttrs(req)
	attrs["filename"] = name
	attrs["target"] = "docker-pkg-build-export"
	if req.NoCache {
		attrs["no-cache"] = ""
	}
	fmt.Fprintf(log, "building the build stage on %s\n", r.name)
	opt := bkclient.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		Exports:       []bkclient.ExportEntry{{Type: bkclient.ExporterLocal, OutputDir: out}},
		Session:       attach,
	}
	if req.Cache != "" {
		// A cache of its own: the main build's export would replace it.
		opt.CacheImports, opt.CacheExports = cacheEntries(req, req.Cache+"-build")
	}
	_, err := r.solve(ctx, req.Context, opt, log)
	return err
}

// countStages counts the FROM instructions of a Dockerfile.
func countStages(df []byte) int {
	n := 0
	for _, line := range strings.Split(string(df), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.EqualFold(f[0], "FROM") {
			n++
		}
	}
	return n
}

// solve runs one solve with dir as both the context and the folder of
// the Dockerfile, printing its progress to log as the engine's BuildKit
// output is printed, and a summary of the failed step on failure.
func (r *Remote) solve(ctx context.Context, dir string, opt bkclient.SolveOpt, log *tail) (*bkclient.SolveResponse, error) {
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		return nil, err
	}
	opt.LocalMounts = map[string]fsutil.FS{"context": fs, "dockerfile": fs}
	ch := make(chan *bkclient.SolveStatus)
	done := make(chan struct{})
	p := newStatusPrinter(log)
	go func() {
		defer close(done)
		for s := range ch {
			p.status(statusResponse(s))
		}
	}()
	resp, err := r.c.Solve(ctx, nil, opt, ch)
	<-done // Solve closes ch
	if err != nil {
		p.summary()
		return nil, plainGRPC(err)
	}
	return resp, nil
}

// statusResponse is a client's status update in the form the engine's
// stream carries, which statusPrinter reads.
func statusResponse(s *bkclient.SolveStatus) *controlapi.StatusResponse {
	ts := func(t *time.Time) *timestamppb.Timestamp {
		if t == nil {
			return nil
		}
		return timestamppb.New(*t)
	}
	out := &controlapi.StatusResponse{}
	for _, v := range s.Vertexes {
		out.Vertexes = append(out.Vertexes, &controlapi.Vertex{
			Digest: v.Digest.String(), Name: v.Name, Started: ts(v.Started), Completed: ts(v.Completed),
			Cached: v.Cached, Error: v.Error,
		})
	}
	for _, l := range s.Logs {
		out.Logs = append(out.Logs, &controlapi.VertexLog{Vertex: l.Vertex.String(), Msg: l.Data})
	}
	return out
}

// attachables are what the builder may ask of this side during a build:
// registry credentials and the secrets.
func (r *Remote) attachables() ([]session.Attachable, error) {
	creds := r.o.Credentials
	auth := authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(ctx context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			if creds == nil {
				return types.AuthConfig{}, nil
			}
			c, err := creds(ctx, host)
			if err != nil {
				return types.AuthConfig{}, err
			}
			return types.AuthConfig{
				Username: c.Username, Password: c.Password,
				IdentityToken: c.IdentityToken, RegistryToken: c.RegistryToken,
				ServerAddress: host,
			}, nil
		},
	})
	out := []session.Attachable{auth}
	if len(r.o.Secrets) > 0 {
		secrets, err := secretProvider(r.o.Secrets)
		if err != nil {
			return nil, err
		}
		out = append(out, secrets)
	}
	return out, nil
}

// lost wraps err as a LostError when the builder no longer answers: a
// connection that broke, not a step that failed. A cancelled ctx is
// neither.
func (r *Remote) lost(ctx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	if status.Code(err) == codes.Unavailable || r.Ping(ctx) != nil {
		return &LostError{Builder: r.name, Err: err}
	}
	return err
}

// plainGRPC keeps the message of a gRPC error without its "rpc error:
// code = ... desc =" frame, which says nothing to a user.
func plainGRPC(err error) error {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		if s := se.GRPCStatus(); s != nil && s.Code() != codes.OK {
			return &grpcError{msg: s.Message(), err: err}
		}
	}
	return err
}

type grpcError struct {
	msg string
	err error
}

func (e *grpcError) Error() string { return e.msg }
func (e *grpcError) Unwrap() error { return e.err }
