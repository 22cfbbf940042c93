package main

import "github.com/spf13/cobra"

func newRenderCmd(g *globals) *cobra.Command {
	_ = g
	return notImplemented("render")
}
