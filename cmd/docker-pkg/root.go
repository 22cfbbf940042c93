package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/spf13/cobra"
)

// globals are the reference's global flags.
type globals struct {
	configFile string
	debug      bool
	info       bool
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
	}
	root.PersistentFlags().StringVarP(&g.configFile, "configfile", "c", "config.yaml", "configuration file")
	root.PersistentFlags().BoolVar(&g.debug, "debug", false, "log debug messages to the terminal instead of the log file")
	root.PersistentFlags().BoolVar(&g.info, "info", false, "log informational messages to the terminal instead of the log file")
	root.AddCommand(
		newBuildCmd(g),
		newPruneCmd(g),
		newUpdateCmd(g),
		newPlanCmd(g),
		newRenderCmd(g),
		newGraphCmd(g),
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

// logger returns the logger for a command: to stderr at info or debug level
// with --info/--debug, otherwise to ./docker-pkg-build.log (when toFile) or
// nowhere but warnings on stderr. The closer must be called when done.
func (g *globals) logger(toFile bool) (*slog.Logger, io.Closer, error) {
	switch {
	case g.debug:
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})), io.NopCloser(nil), nil
	case g.info:
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})), io.NopCloser(nil), nil
	case toFile:
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, nil, fmt.Errorf("opening log file: %w", err)
		}
		return slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelInfo})), f, nil
	default:
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), io.NopCloser(nil), nil
	}
}

func notImplemented(name string) *cobra.Command {
	return &cobra.Command{
		Use:   name,
		Short: "not implemented yet",
		RunE: func(*cobra.Command, []string) error {
			return &exitError{code: 2, msg: name + ": not implemented yet"}
		},
	}
}
