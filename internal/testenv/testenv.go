// Package testenv gives tests the real services they run against: the Docker
// daemon started by scripts/docker-up, base images made locally, a
// distribution registry on loopback, buildkitd daemons (with mutual TLS if
// asked) and a multi-platform busybox base pushed through them.
// With CI=true a missing service fails the test instead of skipping it, so a
// CI run can never pass by testing nothing.
package testenv

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Require skips the test, or fails it under CI=true, with the reason why.
func Require(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true: required; run scripts/docker-up)", why)
	}
	t.Skipf("%s; run scripts/docker-up to run this test", why)
}

// Docker returns a client for the local daemon, negotiated down to the
// daemon's API version.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.FromEnv)
	if err != nil {
		Require(t, false, "no Docker client: "+err.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		Require(t, false, "no Docker daemon at "+cli.DaemonHost()+": "+err.Error())
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
