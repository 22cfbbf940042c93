package main

import "github.com/spf13/cobra"

func newPruneCmd(g *globals) *cobra.Command {
	_ = g
	return notImplemented("prune")
}
