package main

import "github.com/spf13/cobra"

func newUpdateCmd(g *globals) *cobra.Command {
	_ = g
	return notImplemented("update")
}
