package main

import "github.com/spf13/cobra"

func newPlanCmd(g *globals) *cobra.Command {
	_ = g
	return notImplemented("plan")
}
