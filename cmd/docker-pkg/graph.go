package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/spf13/cobra"
)

func newGraphCmd(g *globals) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "graph [--format dot|mermaid] DIR",
		Short: "Print the dependency graph of the images in DIR",
		Long: `graph scans DIR and prints the dependency graph of its images, for Graphviz
(--format dot, the default) or Mermaid (--format mermaid).

Arrows go from an image to the images built on it, so the graph reads in build
order. Each image shows its short name and tag. Base images (base_images in the
configuration) the tree uses are drawn dashed. A dashed arrow is a dependency
found only in a template ("x" | image_tag) that the image's control file does
not list; scan also warns about it on stderr.`,
		Example: `  docker-pkg -c fixtures/config.yaml graph fixtures/images | dot -Tsvg > graph.svg
  docker-pkg graph --format mermaid images > graph.mmd`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "dot" && format != "mermaid" {
				return fmt.Errorf("--format must be dot or mermaid, not %q", format)
			}
			b, err := g.open(cmd.Context(), args[0], nil, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			tree := b.Tree()
			if format == "mermaid" {
				return writeMermaid(cmd.OutOrStdout(), tree)
			}
			return writeDot(cmd.OutOrStdout(), tree)
		},
	}
	cmd.Flags().StringVar(&format, "format", "dot", "output format: dot or mermaid")
	return cmd
}

// baseImages lists the base image labels the tree uses, in first-use order.
func baseImages(tree *builder.Tree) []string {
	var out []string
	seen := map[string]bool{}
	for _, img := range tree.Images {
		for _, b := range tree.Bases(img.Name) {
			if !seen[b] {
				seen[b] = true
				out = append(out, b)
			}
		}
	}
	return out
}

func writeDot(w io.Writer, tree *builder.Tree) error {
	var b strings.Builder
	b.WriteString("digraph images {\n\tnode [shape=box];\n")
	for _, base := range baseImages(tree) {
		fmt.Fprintf(&b, "\t%q [style=dashed];\n", base)
	}
	for _, img := range tree.Images {
		fmt.Fprintf(&b, "\t%q [label=%q];\n", img.Name, img.Name+"\n"+img.Tag)
	}
	for _, img := range tree.Images {
		for _, base := range tree.Bases(img.Name) {
			fmt.Fprintf(&b, "\t%q -> %q;\n", base, img.Name)
		}
	}
	for _, e := range tree.Edges() {
		attrs := ""
		if e.Implied {
			attrs = ` [style=dashed, label="not in control"]`
		}
		fmt.Fprintf(&b, "\t%q -> %q%s;\n", e.Parent, e.Child, attrs)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// writeMermaid names nodes i0, i1 ... (images) and b0, b1 ... (base
// images): Mermaid ids cannot hold every character a label can.
func writeMermaid(w io.Writer, tree *builder.Tree) error {
	var b strings.Builder
	b.WriteString("graph TD\n")
	ids := map[string]string{}
	for i, base := range baseImages(tree) {
		ids[base] = fmt.Sprintf("b%d", i)
		fmt.Fprintf(&b, "    %s([\"%s\"])\n", ids[base], base)
	}
	for i, img := range tree.Images {
		ids[img.Name] = fmt.Sprintf("i%d", i)
		fmt.Fprintf(&b, "    %s[\"%s:%s\"]\n", ids[img.Name], img.Name, img.Tag)
	}
	for _, img := range tree.Images {
		for _, base := range tree.Bases(img.Name) {
			fmt.Fprintf(&b, "    %s -.-> %s\n", ids[base], ids[img.Name])
		}
	}
	for _, e := range tree.Edges() {
		arrow := "-->"
		if e.Implied {
			arrow = "-. not in control .->"
		}
		fmt.Fprintf(&b, "    %s %s %s\n", ids[e.Parent], arrow, ids[e.Child])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
