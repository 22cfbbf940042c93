package main

import "github.com/spf13/cobra"

func newGraphCmd(g *globals) *cobra.Command {
	_ = g
	return notImplemented("graph")
}
