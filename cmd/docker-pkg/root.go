package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/docker-pkg/docker-pkg/changelog"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/registry"
	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
)

// globals are the reference's global flags, and how a command shows
// warnings.
type globals struct {
	configFile string
	debug      bool
	info       bool
	// offline: no registry contact at all (--offline).
	offline bool
	// hinted: the hint about --offline was printed.
	hinted bool
	// warn prints a warning of the scan; nil prints "warning: ..." on the
	// command's stderr.
	warn func(builder.Warning)
}

// exitError ends the program with a given status; msg may be empty when
// the command already said what went wrong.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "docker-pkg",
		Short: "Build, test, publish, prune and version-bump a tree of container images",
		Long: `docker-pkg manages a repository of interdependent container images. Each image
is a folder holding a Dockerfile.template, a Debian changelog that names and
versions it, and an optional control file listing the images it depends on.

Every command takes the directory to scan as its last argument.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version(),
	}
	root.SetVersionTemplate("docker-pkg {{.Version}}\n")
	root.PersistentFlags().StringVarP(&g.configFile, "configfile", "c", "config.yaml", "configuration file")
	root.PersistentFlags().BoolVar(&g.debug, "debug", false, "log debug messages to the terminal instead of the log file")
	root.PersistentFlags().BoolVar(&g.info, "info", false, "log informational messages to the terminal instead of the log file")
	root.PersistentFlags().BoolVar(&g.offline, "offline", false, "never contact the registry: states from the local Docker daemon alone, nothing pulled or published")
	root.AddCommand(
		newBuildCmd(g),
		newPruneCmd(g),
		newUpdateCmd(g),
		newPlanCmd(g),
		newRenderCmd(g),
		newGraphCmd(g),
		newLintCmd(g),
		newVersionCmd(),
	)
	return root
}

// loadConfig reads the configuration named by -c.
func (g *globals) loadConfig() (*config.Config, error) {
	return config.Load(g.configFile)
}

// logFile is where build logs go unless --info or --debug send them to the
// terminal.
const logFile = "docker-pkg-build.log"

// logger returns the logger for a command that writes no build log: to
// stderr at info or debug level with --info/--debug, otherwise warnings
// only, on stderr.
func (g *globals) logger(stderr io.Writer) *slog.Logger {
	level := slog.LevelWarn
	switch {
	case g.debug:
		level = slog.LevelDebug
	case g.info:
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
}

// open loads the configuration and scans dir into a Builder, printing how
// many problems the scan found on stderr (lint lists them). The registry client (nil when none is
// configured) and the daemon given are wired in; opts come last.
func (g *globals) open(ctx context.Context, dir string, docker *client.Client, stderr io.Writer, opts ...builder.Option) (*builder.Builder, error) {
	cfg, err := g.loadConfig()
	if err != nil {
		return nil, err
	}
	return g.openWith(ctx, cfg, dir, docker, stderr, opts...)
}

// openWith is open with the configuration already loaded.
func (g *globals) openWith(ctx context.Context, cfg *config.Config, dir string, docker *client.Client, stderr io.Writer, opts ...builder.Option) (*builder.Builder, error) {
	if err := finishUpdate(ctx, dir, stderr); err != nil {
		return nil, err
	}
	var reg *registry.Client
	if g.offline {
		if cfg.Registry != "" {
			fmt.Fprintf(stderr, "docker-pkg: offline: not contacting the registry %s: states come from the local Docker daemon alone, nothing is pulled or published\n", cfg.Registry)
		}
	} else {
		var err error
		if reg, err = registry.New(cfg, registry.WithLabelCache(registry.DefaultLabelCache())); err != nil {
			return nil, err
		}
	}
	base := []builder.Option{builder.WithRegistry(reg), builder.WithLogger(g.logger(stderr))}
	if docker != nil {
		base = append(base, builder.WithEngine(docker))
	}
	b, err := builder.New(ctx, dir, cfg, append(base, opts...)...)
	if err != nil {
		return nil, err
	}
	// The list is lint's: repeated on every command, it hid everything else.
	if n := len(b.Tree().Warnings); n > 0 {
		msg := fmt.Sprintf("%d %s; see docker-pkg lint %s", n, plural(n, "problem"), dir)
		if g.warn != nil {
			g.warn(builder.Warning{Message: msg})
		} else {
			fmt.Fprintf(stderr, "warning: %s\n", msg)
		}
	}
	return b, nil
}

// finishUpdate finishes the cascade of an update killed in the middle of
// its renames, which left a journal: until the lock finishes it the tree
// holds half a cascade, which no command may read as it is.
func finishUpdate(ctx context.Context, dir string, stderr io.Writer) error {
	if !changelog.Pending(ctx, dir) {
		return nil
	}
	lock, err := lockTree(ctx, dir, &updateOptions{}, stderr)
	if err != nil {
		return err
	}
	return lock.Release()
}

// hintOffline says once, when err means the registry could not be reached
// at all, that --offline exists.
func (g *globals) hintOffline(stderr io.Writer, cfg *config.Config, err error) {
	if g.hinted || g.offline || !registry.Unreachable(err) {
		return
	}
	g.hinted = true
	fmt.Fprintf(stderr, "docker-pkg: the registry %s cannot be reached; to work from the local Docker daemon alone, without it, use --offline\n", cfg.Registry)
}

// reportUnreachable says once why the registry could not be reached, when
// a plan met that (the images it left unchecked say only "registry
// unreachable"), and that --offline exists.
func (g *globals) reportUnreachable(stderr io.Writer, plan *builder.Plan) {
	down := plan.Unreachable()
	if down == nil || g.hinted || g.offline {
		return
	}
	g.hinted = true
	fmt.Fprintf(stderr, "docker-pkg: %v\ndocker-pkg: to work from the local Docker daemon alone, without the registry, use --offline\n", down)
}

// longDigest is a sha256 digest as image IDs and build records hold them.
var longDigest = regexp.MustCompile(`\bsha256:([0-9a-f]{12})[0-9a-f]{52}\b`)

// shortDigests shortens every sha256 digest in s to its first 12 hex
// digits, as docker images shows IDs: for people. --json keeps them whole.
func shortDigests(s string) string {
	return longDigest.ReplaceAllString(s, "sha256:$1")
}

// daemon returns a client for the local Docker daemon, or why there is
// none: the one place a command connects to it.
func daemon(ctx context.Context) (*client.Client, error) {
	cli, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("no Docker client: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		host := cli.DaemonHost()
		cli.Close()
		why := strings.Join(strings.Fields(err.Error()), " ") // one line
		return nil, fmt.Errorf("no Docker daemon answers at %s (%s)", host, why)
	}
	return cli, nil
}

// needDaemon is daemon for a command that cannot work without one: exit
// status 2, saying how to start one.
func needDaemon(ctx context.Context, what string) (*client.Client, error) {
	cli, err := daemon(ctx)
	if err != nil {
		return nil, &exitError{code: 2, msg: what + " needs a Docker daemon: " + err.Error() + ": run scripts/docker-up or start dockerd"}
	}
	return cli, nil
}
