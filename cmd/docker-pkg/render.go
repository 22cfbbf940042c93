package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/docker-pkg/docker-pkg/dockerfile"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/spf13/cobra"
)

type renderOptions struct {
	selector string
	outDir   string
}

func newRenderCmd(g *globals) *cobra.Command {
	o := &renderOptions{}
	cmd := &cobra.Command{
		Use:   "render [--select GLOB] [-o OUTDIR] DIR",
		Short: "Render each image's Dockerfile without building it",
		Long: `render renders the Dockerfile.template (and Dockerfile.build.template) of
every image under DIR whose full label matches --select, exactly as build
would, with force_numeric_user checked when the configuration asks for it.
It needs no Docker daemon.

Without -o, each rendered Dockerfile is printed under a "# <full label>"
header. With -o, it is written to OUTDIR/<image folder relative to DIR>/Dockerfile
(and Dockerfile.build); an image that fails gets an ERROR file there instead,
holding the message. Every image is rendered even when one fails; the exit
status is then 1.`,
		Example: `  docker-pkg -c fixtures/config.yaml render fixtures/images
  docker-pkg render --select '*/app*' -o /tmp/rendered images`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRender(cmd.Context(), g, o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.selector, "select", "*", "shell glob on the full label of the images to render")
	cmd.Flags().StringVarP(&o.outDir, "output", "o", "", "write the Dockerfiles under this folder instead of printing them")
	return cmd
}

func runRender(ctx context.Context, g *globals, o *renderOptions, dir string, stdout, stderr io.Writer) error {
	match, err := builder.Glob(o.selector)
	if err != nil {
		return err
	}
	tree, cfg, err := scanTree(ctx, g, dir, stderr)
	if err != nil {
		return err
	}
	render, err := tree.NewRender(cfg)
	if err != nil {
		return err
	}
	failed := 0
	for _, img := range tree.Images {
		if !match(img.Label()) {
			continue
		}
		df, bdf, err := render(ctx, img)
		if err == nil && cfg.ForceNumericUser {
			if uerr := dockerfile.CheckNumericUser(df); uerr != nil {
				err = fmt.Errorf("%s: %w", filepath.Join(img.Dir, image.TemplateFile), uerr)
			}
		}
		if err != nil {
			failed++
			fmt.Fprintf(stderr, "%s: %v\n", img.Label(), err)
		}
		if o.outDir == "" {
			if err == nil {
				fmt.Fprintf(stdout, "# %s\n%s\n", img.Label(), df)
			}
			continue
		}
		rel, relErr := filepath.Rel(tree.Dir, img.Dir)
		if relErr != nil {
			return relErr
		}
		if werr := writeRendered(filepath.Join(o.outDir, rel), df, bdf, err); werr != nil {
			return werr
		}
	}
	if failed > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("%d %s failed to render", failed, plural(failed, "image"))}
	}
	return nil
}

// writeRendered leaves in dir either the rendered files or, when renderErr
// is set, an ERROR file, and nothing from an earlier run that says
// otherwise.
func writeRendered(dir string, df, bdf []byte, renderErr error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files := map[string][]byte{"Dockerfile": df, "Dockerfile.build": bdf, "ERROR": nil}
	if renderErr != nil {
		files = map[string][]byte{"Dockerfile": nil, "Dockerfile.build": nil, "ERROR": []byte(renderErr.Error() + "\n")}
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if data == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			continue
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}
