// Command docker-pkg builds, tests, publishes, prunes and version-bumps a
// repository of interdependent container images.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	ctx := interruptible(os.Stderr)
	err := newRootCmd().ExecuteContext(ctx)
	if err == nil {
		return
	}
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintln(os.Stderr, "docker-pkg:", ee.msg)
		}
		os.Exit(ee.code)
	case ctx.Err() != nil: // interrupted
		fmt.Fprintln(os.Stderr, "docker-pkg:", err)
		os.Exit(130)
	}
	fmt.Fprintln(os.Stderr, "docker-pkg:", err)
	os.Exit(1)
}
