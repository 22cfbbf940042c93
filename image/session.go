package image

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/secrets/secretsprovider"
	buildtypes "github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// BuildKitEngine is Engine plus the call that attaches a BuildKit session
// to the daemon, through which the daemon asks for the build's secrets. A
// *client.Client is one.
type BuildKitEngine interface {
	Engine
	DialHijack(ctx context.Context, url, proto string, meta map[string][]string) (net.Conn, error)
	NetworkInspect(ctx context.Context, networkID string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
}

var _ BuildKitEngine = (*client.Client)(nil)

// Session is the backend of the local Docker Engine's built-in BuildKit,
// to which it attaches a session, so a Dockerfile can use RUN --mount:
// type=secret reads the secrets given here, which never reach a layer or
// the history; type=cache keeps a folder out of the image and across
// builds. It builds as Classic does otherwise (same build stage, tags and
// errors). NoCache means what docker build --no-cache means: no step comes
// from the cache and, BuildKit's choice, cache mounts start empty (the steps
// of one build still share them). container_limits are not applied: the
// daemon's BuildKit ignores them. A missing secret, or a "# syntax=" line
// (the daemon would pull that frontend image), fails before anything is
// sent to the daemon.
type Session struct {
	eng     BuildKitEngine
	secrets map[string]config.Secret
}

// NewSession returns the BuildKit backend of eng, serving secrets.
func NewSession(eng BuildKitEngine, secrets map[string]config.Secret) *Session {
	return &Session{eng: eng, secrets: secrets}
}

// Build builds req.Context on the daemon's BuildKit. Errors are
// *BuildError.
func (s *Session) Build(ctx context.Context, req BuildRequest) (Built, error) {
	img := req.Image
	fail := func(stage Stage, err error) (Built, error) {
		return Built{}, &BuildError{Image: img.Label(), Stage: stage, Err: err}
	}
	if err := CheckSecrets(s.secrets); err != nil {
		return fail(StageBuild, err)
	}
	if err := checkSyntax(filepath.Join(img.Dir, BuildTemplateFile), req.BuildDockerfile); err != nil {
		return fail(StageBuildStage, err)
	}
	if err := checkSyntax(filepath.Join(img.Dir, TemplateFile), req.Dockerfile); err != nil {
		return fail(StageBuild, err)
	}
	provider, err := secretProvider(s.secrets)
	if err != nil {
		return fail(StageBuild, err)
	}
	if req.Limits != nil && req.Log != nil {
		// The daemon's BuildKit takes the limits and does nothing with them.
		fmt.Fprintln(req.Log, "WARNING: container_limits are not applied: the daemon's BuildKit ignores them")
	}
	kit := &kitEngine{BuildKitEngine: s.eng, secrets: provider}
	// An engine started without a bridge (--bridge=none) has no default
	// network for BuildKit's RUN steps ("network bridge not found"): they
	// use the host's, as the classic builder's effectively do there.
	if _, err := s.eng.NetworkInspect(ctx, "bridge", client.NetworkInspectOptions{}); cerrdefs.IsNotFound(err) {
		kit.network = "host"
		if req.Log != nil {
			fmt.Fprintln(req.Log, "the daemon has no bridge network: RUN steps use the host's network")
		}
	}
	id, err := buildEngine(ctx, kit, req)
	return Built{ID: id, Local: true}, err
}

// ValidateBuilder checks, before any build starts, that the configured
// builder can do what the configuration asks: secrets need BuildKit (the
// classic builder could only put them in a layer), and every secret's
// source must be there.
func ValidateBuilder(cfg *config.Config) error {
	if len(cfg.Secrets) == 0 {
		return nil
	}
	if cfg.Builder != "buildkit" && len(cfg.Builders) == 0 {
		return fmt.Errorf("secrets: the %s builder cannot keep secrets out of the image; set builder: buildkit to use them", cfg.Builder)
	}
	return CheckSecrets(cfg.Secrets)
}

// CheckSecrets says, naming the secret, which secret's environment variable
// is unset or whose file cannot be read. It never reads a value.
func CheckSecrets(secrets map[string]config.Secret) error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(secrets)) {
		s := secrets[id]
		switch {
		case s.Env != "" && s.File != "", s.Env == "" && s.File == "":
			errs = append(errs, fmt.Errorf("secret %s: want exactly one of env: NAME or file: PATH", id))
		case s.Env != "":
			if _, ok := os.LookupEnv(s.Env); !ok {
				errs = append(errs, fmt.Errorf("secret %s: environment variable %s is not set", id, s.Env))
			}
		default:
			info, err := os.Stat(s.File)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("secret %s: %w", id, err))
			case !info.Mode().IsRegular():
				errs = append(errs, fmt.Errorf("secret %s: %s is not a regular file", id, s.File))
			case info.Size() > secretsprovider.MaxSecretSize:
				errs = append(errs, fmt.Errorf("secret %s: %s is larger than BuildKit's limit of %d bytes", id, s.File, secretsprovider.MaxSecretSize))
			}
		}
	}
	return errors.Join(errs...)
}

// secretProvider serves the secrets' values to the daemon, reading each
// when the daemon asks for it.
func secretProvider(secrets map[string]config.Secret) (session.Attachable, error) {
	sources := make([]secretsprovider.Source, 0, len(secrets))
	for id, s := range secrets {
		sources = append(sources, secretsprovider.Source{ID: id, Env: s.Env, FilePath: s.File})
	}
	store, err := secretsprovider.NewStore(sources)
	if err != nil {
		return nil, fmt.Errorf("reading secrets: %w", err)
	}
	return secretsprovider.NewSecretProvider(store), nil
}

// directive is a Dockerfile parser directive, as BuildKit's frontend reads
// them: "# key=value" lines at the very top of the file.
var directive = regexp.MustCompile(`^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`)

// checkSyntax rejects a "# syntax=" directive in a rendered Dockerfile:
// with one, BuildKit pulls that frontend image, and docker-pkg never lets
// the daemon pull. The daemon's built-in frontend already knows RUN --mount.
func checkSyntax(template string, dockerfile []byte) error {
	sc := bufio.NewScanner(bytes.NewReader(dockerfile))
	for n := 1; sc.Scan(); n++ {
		m := directive.FindStringSubmatch(sc.Text())
		if m == nil {
			return nil // directives end at the first other line
		}
		if strings.EqualFold(m[1], "syntax") {
			return fmt.Errorf("%s: line %d of the rendered Dockerfile: \"# syntax=%s\" would make the daemon pull a frontend image, which docker-pkg never lets it do; remove the line (the built-in frontend supports RUN --mount)", template, n, m[2])
		}
	}
	return nil
}

// kitEngine runs every ImageBuild on BuildKit with a session attached that
// serves secrets, and hands back the daemon's output in the classic
// builder's form, so Build's context, build stage, output reading and
// errors serve BuildKit unchanged.
type kitEngine struct {
	BuildKitEngine
	secrets session.Attachable
	network string // NetworkMode of every build; "" for the default
}

func (k *kitEngine) ImageBuild(ctx context.Context, buildContext io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error) {
	// The session and the build share a context: whichever fails first
	// stops the other.
	ctx, cancel := context.WithCancelCause(ctx)
	s, err := session.NewSession(ctx, "")
	if err != nil {
		cancel(nil)
		return client.ImageBuildResult{}, fmt.Errorf("starting a BuildKit session: %w", err)
	}
	s.Allow(k.secrets)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		err := s.Run(ctx, func(ctx context.Context, proto string, meta map[string][]string) (net.Conn, error) {
			return k.DialHijack(ctx, "/session", proto, meta)
		})
		if err != nil {
			cancel(fmt.Errorf("attaching the BuildKit session: %w", err))
		}
	}()
	stop := func() {
		cancel(nil) // ends the session's connection, or its dial
		s.Close()
		<-ran
	}

	opts.Version = buildtypes.BuilderBuildKit
	opts.SessionID = s.ID()
	if k.network != "" {
		opts.NetworkMode = k.network
	}
	res, err := k.BuildKitEngine.ImageBuild(ctx, buildContext, opts)
	if err != nil {
		err = causeOf(ctx, err)
		stop()
		return client.ImageBuildResult{}, err
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := translateBuildKit(pw, res.Body)
		pw.CloseWithError(causeOf(ctx, err))
	}()
	return client.ImageBuildResult{Body: &kitBody{PipeReader: pr, close: func() {
		pr.CloseWithError(errors.New("build output no longer read"))
		res.Body.Close()
		<-done
		stop()
	}}}, nil
}

// causeOf gives the reason ctx was cancelled, the session's failure say,
// when that is why err happened.
func causeOf(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != ctx.Err() {
			return fmt.Errorf("%w (%v)", cause, err)
		}
	}
	return err
}

// kitBody is the translated build output; closing it ends the daemon's
// stream and the session.
type kitBody struct {
	*io.PipeReader
	close func()
}

func (b *kitBody) Close() error {
	b.close()
	return nil
}
