package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of docker-pkg and the commit it was built from",
		Long: `version prints what "docker-pkg --version" prints: the module version, the
version control revision the binary was built from, its time, and
"modified" when the working tree had uncommitted changes, then the Go
version. All of it comes from the build information Go writes into the
binary: "go install" of a tagged version gives that version, "go build" in a
git clone gives a pseudo-version and the commit, "go run" and a build
without git give "(devel)" and no revision.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "docker-pkg %s\n", version())
			return err
		},
	}
}

// version describes the running binary from its build information.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown: no build information)"
	}
	return describe(info)
}

// describe is "VERSION (revision REV, TIME, modified) GOVERSION", leaving
// out what info lacks.
func describe(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		v += " (revision " + rev
		if at != "" {
			v += ", " + at
		}
		if modified {
			v += ", modified"
		}
		v += ")"
	}
	return v + " " + info.GoVersion
}
