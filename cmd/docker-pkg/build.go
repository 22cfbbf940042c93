package main

import "github.com/spf13/cobra"

func newBuildCmd(g *globals) *cobra.Command {
	_ = g
	return notImplemented("build")
}
