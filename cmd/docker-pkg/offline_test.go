package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/docker-pkg/docker-pkg/registry"
)

func TestUnreachable(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"no such host", fmt.Errorf("checking x: %w", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "registry.example", IsNotFound: true}}), true},
		{"connection refused", fmt.Errorf("checking x: %w", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), true},
		{"joined", errors.Join(errors.New("other"), fmt.Errorf("y: %w", syscall.EHOSTUNREACH)), true},
		{"refused credentials", errors.New("the registry refused the credentials (401 Unauthorized)"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := registry.Unreachable(tt.err); got != tt.want {
				t.Errorf("Unreachable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestOffline works with a registry nothing answers (a laptop off the
// VPN): without --offline, plan and build say once that --offline exists;
// with it, nothing asks the registry, the image is built from the local
// daemon alone and nothing is published.
func TestOffline(t *testing.T) {
	cli := testenv.Docker(t)
	const registry = "127.0.0.1:1" // connection refused
	ns := testRepo(t, cli, registry)
	work := t.TempDir()
	writeYAML(t, filepath.Join(work, "config.yaml"), map[string]any{
		"registry": registry, "namespace": ns, "username": "someone", "password": "secret",
		"base_images": []string{registry + "/" + ns + "/busybox:static"},
	})
	writeImage(t, filepath.Join(work, "images"), "solo", "FROM {{ \"busybox\" | image_tag }}\nRUN echo solo > /solo\n", "")
	writeImage(t, filepath.Join(work, "images"), "duo", "FROM {{ \"solo\" | image_tag }}\n", "")
	label := registry + "/" + ns + "/solo:1.0-1"
	const hint = "use --offline"
	const said = "docker-pkg: offline: not contacting the registry " + registry

	// The image's state is error: plan fails, as build would.
	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "plan", "images")
	if exitCode(err) != 1 {
		t.Fatalf("plan: %v, want exit status 1\n%s", err, stderr)
	}
	if n := strings.Count(stderr, hint); n != 1 || !strings.Contains(stdout, "error") {
		t.Errorf("plan without --offline: stderr says %q %d times, want once, and the image in error:\n%s\n%s", hint, n, stdout, stderr)
	}
	// One registry failure, said once: each image only refers to it.
	unchecked := regexp.MustCompile(`(?m)^- +error +\S+ +registry unreachable$`)
	if n := len(unchecked.FindAllString(stdout, -1)); n != 2 || strings.Count(stdout+stderr, "cannot reach") != 1 ||
		!strings.Contains(stderr, "docker-pkg: cannot reach the registry "+registry+": ") {
		t.Errorf("plan without --offline: want both images unchecked for one cause, said once on stderr:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}

	for _, args := range [][]string{{"--offline", "plan"}, {"plan", "--offline"}} {
		stdout, stderr, err = runBuildCmd(t, work, append(append([]string{"-c", "config.yaml"}, args...), "images")...)
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr)
		}
		if strings.Count(stderr, said) != 1 || strings.Contains(stderr, hint) || strings.Contains(stdout, "error") ||
			!regexp.MustCompile(`(?m)^1 +to_build +`+regexp.QuoteMeta(label)+` +not built$`).MatchString(stdout) {
			t.Errorf("%v:\nstdout:\n%s\nstderr:\n%s", args, stdout, stderr)
		}
	}

	stdout, stderr, err = runBuildCmd(t, work, "-c", "config.yaml", "build", "--offline", "images")
	if err != nil {
		t.Fatalf("build --offline: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(label)+` +verified`).MatchString(stdout) || !strings.Contains(stdout, "NOT publishing images as --offline is set\n") {
		t.Errorf("build --offline: stdout lacks a verified %s and the reason nothing is published:\n%s", label, stdout)
	}
	if n := strings.Count(stderr, said); n != 1 {
		t.Errorf("build --offline says it is offline %d times, want once:\n%s", n, stderr)
	}
	log, err := os.ReadFile(filepath.Join(work, logFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(log), "[pull ") {
		t.Errorf("build --offline pulled:\n%s", log)
	}

	// Built locally now: offline, the plan says so from the daemon.
	stdout, _, err = runBuildCmd(t, work, "-c", "config.yaml", "--offline", "plan", "images")
	if err != nil || !regexp.MustCompile(`(?m)^- +built +`+regexp.QuoteMeta(label)+` +built locally$`).MatchString(stdout) {
		t.Errorf("plan --offline after the build: %v\n%s", err, stdout)
	}
}
