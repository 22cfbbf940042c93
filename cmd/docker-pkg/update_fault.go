package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker-pkg/docker-pkg/changelog"
)

// Test-only environment of update, read here and nowhere else, so that
// tests and bench/soak.sh can crash the real binary while it writes
// changelogs. Unset, as in any normal use, they do nothing.
const (
	// killAtEnv is STEP or STEP:N (STEP a changelog.Step name: staged,
	// prepared, journaled, renamed, recovered): update kills itself with
	// SIGKILL at the Nth (default first) such step.
	killAtEnv = "DOCKER_PKG_TEST_KILL_AT"
	// delayEnv is a duration update sleeps at every step, to widen the
	// window for a kill from outside.
	delayEnv = "DOCKER_PKG_TEST_STEP_DELAY"
)

// testFault returns the changelog.Fault the test-only environment asks
// for, or nil.
func testFault() (changelog.Fault, error) {
	killAt, delayStr := os.Getenv(killAtEnv), os.Getenv(delayEnv)
	if killAt == "" && delayStr == "" {
		return nil, nil
	}
	var (
		step  changelog.Step
		n     = 1
		delay time.Duration
		err   error
	)
	if killAt != "" {
		name, count, found := strings.Cut(killAt, ":")
		if step, err = changelog.ParseStep(name); err != nil {
			return nil, fmt.Errorf("%s: %w", killAtEnv, err)
		}
		if found {
			if n, err = strconv.Atoi(count); err != nil || n < 1 {
				return nil, fmt.Errorf("%s: %q is not a count from 1", killAtEnv, count)
			}
		}
	}
	if delayStr != "" {
		if delay, err = time.ParseDuration(delayStr); err != nil {
			return nil, fmt.Errorf("%s: %w", delayEnv, err)
		}
	}
	return func(_ context.Context, s changelog.Step, i int) error {
		if s == step && (i == n || i == 0) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // dying
		}
		time.Sleep(delay)
		return nil
	}, nil
}
