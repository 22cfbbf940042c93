package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/spf13/cobra"
)

type lintOptions struct {
	fix bool
}

func newLintCmd(g *globals) *cobra.Command {
	o := &lintOptions{}
	cmd := &cobra.Command{
		Use:   "lint [--fix] DIR",
		Short: "List the problems of the image definitions in DIR",
		Long: `lint scans DIR and lists, one per line as "path: problem", everything a build
goes on despite but a maintainer should fix:

  half-defined        a folder with Dockerfile.template or changelog, not both
  missing-depends     a template uses an image through image_tag that control
                      does not list in Depends (the build order still follows
                      it, the reference's does not)
  unknown-dependency  control names an image that is neither under DIR nor in
                      base_images
  constraint          a versioned dependency, core (>= 2.0), that the other
                      image's changelog version does not meet
  render              a template that does not render
  numeric-user        force_numeric_user is set and the last USER is a name
  link                a symbolic link out of DIR, or to nothing, which a build
                      refuses to send
  temp-file           a changelog temporary file (.changelog.docker-pkg-*.tmp)
                      left by an update that died

Other commands print only how many problems the scan found.

--fix adds the missing Depends to the control files (creating control where
there is none), keeping the rest of each file as it is and replacing it
atomically, then lists what remains.

The exit status is 1 when problems remain, 0 when there are none. lint needs
neither the Docker daemon nor the registry.`,
		Example: `  docker-pkg -c fixtures/config.yaml lint fixtures/images
  docker-pkg lint --fix images`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLint(cmd.Context(), g, o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&o.fix, "fix", false, "add the missing Depends to control files")
	return cmd
}

func runLint(ctx context.Context, g *globals, o *lintOptions, dir string, stdout, stderr io.Writer) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	if err := finishUpdate(ctx, dir, stderr); err != nil {
		return err
	}
	open := func() (*builder.Builder, error) {
		return builder.New(ctx, dir, cfg, builder.WithLenient(), builder.WithLogger(g.logger(stderr)))
	}
	b, err := open()
	if err != nil {
		return err
	}
	if o.fix {
		fixes := b.MissingDepends()
		if err := builder.Fix(fixes); err != nil {
			return err
		}
		for _, f := range fixes {
			fmt.Fprintf(stdout, "fixed: %s: added %s to Depends\n", userPath(b.Tree().Dir, dir, f.Path), strings.Join(f.Depends, ", "))
		}
		if len(fixes) > 0 {
			if b, err = open(); err != nil { // what remains, read afresh
				return err
			}
		}
	}
	problems, err := b.Lint(ctx)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintf(stdout, "%s: %s [%s]\n", userPath(b.Tree().Dir, dir, p.Path), p.Message, p.Kind)
	}
	if n := len(problems); n > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d %s", n, plural(n, "problem"))}
	}
	_, err = fmt.Fprintln(stdout, "No problem found.")
	return err
}

// userPath writes path, under the scanned folder abs, as under dir the
// way the user wrote it.
func userPath(abs, dir, path string) string {
	if rel, err := filepath.Rel(abs, path); err == nil && !strings.HasPrefix(rel, "..") {
		return filepath.Join(dir, rel)
	}
	return path
}
