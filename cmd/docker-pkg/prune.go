package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/spf13/cobra"
)

type pruneOptions struct {
	selector string
	nightly  string
	dryRun   bool
}

func newPruneCmd(g *globals) *cobra.Command {
	o := &pruneOptions{}
	cmd := &cobra.Command{
		Use:   "prune [--select GLOB] [--nightly ID] [--dry-run] DIR",
		Short: "Remove old versions of the images from the local Docker daemon",
		Long: `prune removes from the local Docker daemon the old versions of every image
under DIR whose full label matches --select: each image of the same repository
whose tags do not include the current full label (the version at the top of the
changelog). With --nightly ID the current tag is VERSION-ID instead, as
"build --nightly" made it.

Images are pruned children first. It removes tags, not image IDs: an old
version that also carries a tag of another repository keeps that tag. An old
version a container still uses (running or not) is left, and the container
named; a failure does not stop the run, but the exit status is 1.

It prints "* Pruning old versions of LABEL" for each image and, when something
could not be removed, "* Errors pruning old images for LABEL" followed by the
reasons on stderr. --info lists each tag removed; --dry-run lists what would be
removed and removes nothing.

prune needs the Docker daemon: without one it stops with exit status 2.`,
		Example: `  docker-pkg prune images
  docker-pkg prune --select '*/php*' --nightly 20260816 images`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPrune(cmd.Context(), g, o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.selector, "select", "*", "shell glob on the full labels of the images to prune")
	cmd.Flags().StringVar(&o.nightly, "nightly", "", "keep the tag VERSION-ID, as build --nightly made it")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "list the tags that would be removed, remove nothing")
	return cmd
}

func runPrune(ctx context.Context, g *globals, o *pruneOptions, dir string, stdout, stderr io.Writer) error {
	if _, err := builder.Glob(o.selector); err != nil {
		return err
	}
	docker, err := needDaemon(ctx, "prune")
	if err != nil {
		return err
	}
	defer docker.Close()
	b, err := g.open(ctx, dir, docker, stderr)
	if err != nil {
		return err
	}
	logger := g.logger(stderr)

	failed := 0
	reports, err := b.Prune(ctx, builder.PruneOptions{
		Select:  o.selector,
		Nightly: o.nightly,
		DryRun:  o.dryRun,
		Progress: func(r builder.PruneReport) {
			fmt.Fprintf(stdout, "* Pruning old versions of %s\n", r.Label)
			for _, ref := range r.Removed {
				if o.dryRun {
					fmt.Fprintf(stdout, "  would remove %s\n", ref)
				} else {
					logger.Info("removed", "image", ref)
				}
			}
			if r.Failed() {
				failed++
				fmt.Fprintf(stdout, "* Errors pruning old images for %s\n", r.Label)
				for _, e := range r.Errors {
					fmt.Fprintf(stderr, "  %s\n", oneLine(e.Error()))
				}
			}
		},
	})
	if err != nil {
		return err
	}
	if failed > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("errors pruning %d of %d images", failed, len(reports))}
	}
	return nil
}

// oneLine keeps a daemon's message on one line of the terminal.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
