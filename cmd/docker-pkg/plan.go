package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/spf13/cobra"
)

type planOptions struct {
	selector string
	json     bool
	noPull   bool
	why      string
}

func newPlanCmd(g *globals) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan [--select GLOB] [--json] [--no-pull] [--why NAME] DIR",
		Short: "Show what build would do: each image's state and the build chain",
		Long: `plan scans DIR and prints, without building anything, what "docker-pkg build"
would do with the same flags.

It lists every image whose full label matches --select, plus the images the
build chain adds because a selected image needs them, parents first (the order
build uses). Each line gives the image's position in the build chain ("-" when
it will not be built), its state, full label and why it is in that state:

  to_build   not built, or no Docker daemon to ask; also an image built
             whose test failed (kept as TAG-failed) or never ended
             (interrupted or killed): only an image that passed its test
             counts as built
  built      present in the local daemon
  published  present in the registry
  error      the daemon or registry could not be asked

Every image docker-pkg builds carries a build record in its labels: the parent
image it was built on and a digest of everything it was built from (rendered
Dockerfiles, the files of its folder, its parents). plan reads it and says more
about a built or published image, whose tag exists so build will not rebuild it:

  stale: parent X is now D1, built on D2
      the parent was rebuilt since (or is stale itself): "update --stale DIR"
      gives the stale images and their children a new version; D1 and D2 are
      image IDs, shortened to 12 digits as docker images shows them (--json
      gives them whole)
  changed since TAG was built: run update or add a changelog entry
      its template or files changed but its version did not
  parent X will be rebuilt
      a parent is in the build chain; once built this image is stale

The build chain is every to_build image whose full label matches --select,
preceded by its to_build dependencies, recursively. --select is a shell glob
matched against the whole full label as the reference's fnmatch does: "*" also
matches "/", so '*node*' selects registry/namespace/node20:1.0-1.

The exit status is 1 when the state of an image shown is error, as build
would then fail it, and 130 when interrupted.

--why NAME prints, instead of the plan, NAME and every image it depends on,
parents first, each with its state and reason: why NAME is built or not.

Without a Docker daemon plan still works: every image is to_build, and it says
so once on stderr. Warnings from the scan (half-defined folders, dependencies
the templates use but control does not list) go to stderr.

--json prints one object, {"images": [...]}, each image with name, tag,
label, dir (relative to DIR), depends (the names its control file's Depends
and Build-Depends list, as written and in their order, images outside DIR and
base images included), implied (the images under DIR its templates use that
depends does not list, sorted), state, reason, code (the reason for
programs: not_built, no_daemon, built_locally, published, check_failed,
unverified, test_failed, stale, changed, parent_rebuilt), selected (matches
--select) and build (in the build chain).`,
		Example: `  docker-pkg -c fixtures/config.yaml plan fixtures/images
  docker-pkg plan --select '*/app*' images
  docker-pkg plan --why app images
  docker-pkg plan --json images | jq -r '.images[] | select(.build) | .label'`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd.Context(), g, o, args[0], cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.selector, "select", "*", "shell glob on the full label of the images to build")
	cmd.Flags().BoolVar(&o.json, "json", false, "print the plan as JSON")
	cmd.Flags().BoolVar(&o.noPull, "no-pull", false, "plan as build --no-pull: an image absent locally is to_build even if published")
	cmd.Flags().StringVar(&o.why, "why", "", "show why the image NAME (short name) is built or not, parents first")
	return cmd
}

func runPlan(ctx context.Context, g *globals, o *planOptions, dir string, stdout, stderr io.Writer) error {
	if _, err := builder.Glob(o.selector); err != nil {
		return err
	}
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	docker, err := daemon(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "docker-pkg: %v: every image not published is shown as to_build\n", err)
	} else {
		defer docker.Close()
	}
	b, err := g.openWith(ctx, cfg, dir, docker, stderr)
	if err != nil {
		return err
	}
	plan, err := b.Plan(ctx, builder.PlanOptions{Select: o.selector, Pull: !o.noPull})
	if err != nil {
		return err
	}
	g.reportUnreachable(stderr, plan)
	entries := plan.Entries
	if o.why != "" {
		if entries, err = plan.Why(o.why); err != nil {
			return err
		}
	}
	if o.json {
		err = printPlanJSON(stdout, b.Tree(), entries)
	} else {
		err = printPlan(stdout, plan, entries, o.why == "")
	}
	if err != nil {
		return err
	}
	// As build would fail them: an image whose state is unknown is
	// neither built nor published by it.
	unknown := 0
	for _, e := range entries {
		if e.State == builder.Error {
			unknown++
		}
	}
	if unknown > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("the state of %d %s could not be checked (state error)", unknown, plural(unknown, "image"))}
	}
	return nil
}

// printPlan prints entries (the plan's, or those --why chose) as a table,
// each with its step in the plan's build chain; summary adds the count.
func printPlan(w io.Writer, plan *builder.Plan, entries []builder.Entry, summary bool) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintln(w, "No image matches the selection.")
		return err
	}
	chain := plan.Chain()
	step := make(map[string]int, len(chain))
	for i, img := range chain {
		step[img.Name] = i + 1
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BUILD\tSTATE\tLABEL\tREASON")
	for _, e := range entries {
		pos := "-"
		if e.Build {
			pos = fmt.Sprint(step[e.Image.Name])
		}
		reason := shortDigests(e.Reason)
		if e.Build && !e.Selected {
			reason += "; needed by the selection"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", pos, e.State, e.Image.Label(), reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !summary {
		return nil
	}
	_, err := fmt.Fprintf(w, "%d of %d images to build.\n", len(chain), len(entries))
	return err
}

type planJSON struct {
	Images []planImageJSON `json:"images"`
}

type planImageJSON struct {
	Name     string        `json:"name"`
	Tag      string        `json:"tag"`
	Label    string        `json:"label"`
	Dir      string        `json:"dir"`
	Depends  []string      `json:"depends"`
	Implied  []string      `json:"implied"`
	State    builder.State `json:"state"`
	Reason   string        `json:"reason"`
	Code     builder.Code  `json:"code"`
	Selected bool          `json:"selected"`
	Build    bool          `json:"build"`
}

func printPlanJSON(w io.Writer, tree *builder.Tree, entries []builder.Entry) error {
	implied := map[string][]string{}
	for _, e := range tree.Edges() { // by parent name for each child
		if e.Implied {
			implied[e.Child] = append(implied[e.Child], e.Parent)
		}
	}
	out := planJSON{Images: []planImageJSON{}}
	for _, e := range entries {
		dir, err := filepath.Rel(tree.Dir, e.Image.Dir)
		if err != nil {
			return err
		}
		depends := []string{}
		for _, d := range e.Image.Depends {
			depends = append(depends, d.Name)
		}
		out.Images = append(out.Images, planImageJSON{
			Name: e.Image.Name, Tag: e.Image.Tag, Label: e.Image.Label(), Dir: filepath.ToSlash(dir),
			Depends: depends, Implied: append([]string{}, implied[e.Image.Name]...),
			State: e.State, Reason: e.Reason, Code: e.Code, Selected: e.Selected, Build: e.Build,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
