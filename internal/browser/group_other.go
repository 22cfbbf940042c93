//go:build !linux

package browser

import (
	"os/exec"
	"time"
)

// Elsewhere than Linux a run is bounded by its context only.
func inGroup(cmd *exec.Cmd)                        {}
func killGroup(pgid int, wait time.Duration) error { return nil }

// GroupAlive is only known on Linux.
func GroupAlive(pgid int) []int { return nil }

// Running is only known on Linux.
func Running() []int { return nil }
