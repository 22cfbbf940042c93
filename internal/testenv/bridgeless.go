package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// BridgelessDocker starts a second Docker daemon, started with
// --bridge=none as some CI machines run theirs, and returns a client for
// it; the test's cleanup stops it and removes its state. It runs in a
// network namespace of its own (unshare --net): a second dockerd in the
// machine's own namespace has been seen to take the docker0 bridge from
// the first. Its containers reach no network but loopback.
func BridgelessDocker(t testing.TB) *client.Client {
	t.Helper()
	for _, bin := range []string{"dockerd", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			Require(t, false, "no "+bin+" to start a second Docker daemon")
		}
	}
	// Not t.TempDir: a unix socket path must stay under 108 bytes.
	dir, err := os.MkdirTemp("", "dockerd-")
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "docker.sock")
	log, err := os.Create(filepath.Join(dir, "dockerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("unshare", "--net", "--fork", "--kill-child", "sh", "-c",
		`ip link set lo up && exec dockerd --bridge=none --iptables=false --ip-masq=false --data-root "$1/root" --exec-root "$1/exec" --pidfile "$1/docker.pid" -H "unix://$1/docker.sock"`,
		"sh", dir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		Require(t, false, "cannot start a second dockerd: "+err.Error())
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM lets it stop its containerd and unmount; then SIGKILL.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		unmountUnder(dir)
		os.RemoveAll(dir)
	})
	cli, err := client.New(client.WithHost("unix://"+sock), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		_, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
		cancel()
		if err == nil {
			return cli
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(log.Name())
			Require(t, false, fmt.Sprintf("the second dockerd exited: %s", lastLines(out, 20)))
		default:
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile(log.Name())
			Require(t, false, fmt.Sprintf("the second dockerd did not answer within 60s: %s", lastLines(out, 20)))
		}
		time.Sleep(200 * time.Millisecond)
	}
}
