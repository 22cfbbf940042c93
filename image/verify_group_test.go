package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
)

// TestVerifyLeavesNothingRunning runs tests as a hung one would: it starts
// a container through docker run, with the label Verify gives it, then
// hangs. Whether the test is cancelled, times out or even passes, no
// process of it and no container it started may outlive Verify.
func TestVerifyLeavesNothingRunning(t *testing.T) {
	cli := testenv.Docker(t)
	busybox := testenv.Busybox(t, cli)
	if _, err := exec.LookPath("docker"); err != nil {
		testenv.Require(t, false, "no docker command for test.sh to use")
	}
	tests := []struct {
		name    string
		script  string // after the state folder is known as $state
		cancel  bool   // cancel once the container runs
		timeout time.Duration
		wantErr func(error) bool
		wantMsg string
	}{
		{
			// The test and its children ignore SIGTERM: only the SIGKILL
			// after the grace period ends them.
			name: "cancelled, SIGTERM ignored",
			script: `trap '' TERM
docker run --label "$DOCKER_PKG_VERIFY_LABEL" ` + busybox + ` sleep 1000 &
echo $! >"$state/client"
sleep 1000 &
echo $! >"$state/sleep"
wait
`,
			cancel:  true,
			wantErr: func(err error) bool { return errors.Is(err, context.Canceled) },
		},
		{
			name: "timed out",
			script: `docker run --label "$DOCKER_PKG_VERIFY_LABEL" ` + busybox + ` sleep 1000 &
echo $! >"$state/client"
sleep 1000 &
echo $! >"$state/sleep"
wait
`,
			timeout: 3 * time.Second,
			wantErr: func(err error) bool { return errors.Is(err, ErrTimeout) },
			wantMsg: "verify timed out after 3 s (verify_timeout)",
		},
		{
			name: "passed, leaving a container and a process",
			script: `docker run -d --label "$DOCKER_PKG_VERIFY_LABEL" ` + busybox + ` sleep 1000
sleep 1000 &
echo $! >"$state/sleep"
echo started
`,
			wantErr: func(err error) bool { return err == nil },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			state := t.TempDir()
			script := "#!/bin/sh\nstate=" + state + "\necho $$ >\"$state/shell\"\necho \"$DOCKER_PKG_VERIFY_LABEL\" >\"$state/label\"\n" + tt.script
			img := verifyImage(t, "foo", "reg/foo", script)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var log syncLog
			done := make(chan error, 1)
			go func() {
				_, err := Verify(ctx, img, VerifyOptions{
					Command: "/bin/sh", Args: []string{"{path}/test.sh"},
					Timeout: tt.timeout, Grace: time.Second, Containers: cli, Log: &log,
				})
				done <- err
			}()
			label := ""
			if tt.cancel {
				label = waitRunning(t, cli, state)
				cancel()
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(2 * time.Minute):
				t.Fatal("Verify did not return")
			}
			if !tt.wantErr(err) || (tt.wantMsg != "" && !strings.Contains(fmt.Sprint(err), tt.wantMsg)) {
				t.Errorf("Verify: %v\n%s", err, log.String())
			}
			if label == "" {
				label = readState(t, state, "label")
			}
			if !strings.HasPrefix(label, VerifyLabel+"=") {
				t.Fatalf("the test got %s=%q, want %s=...", VerifyLabelEnv, label, VerifyLabel)
			}
			for _, name := range []string{"shell", "client", "sleep"} {
				if _, err := os.Stat(filepath.Join(state, name)); err != nil {
					continue
				}
				if pid := atoi(t, readState(t, state, name)); running(pid) {
					t.Errorf("the test's %s (pid %d) still runs", name, pid)
					_ = exec.Command("kill", "-9", strconv.Itoa(pid)).Run()
				}
			}
			list, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", label)})
			if err != nil {
				t.Fatal(err)
			}
			for _, ctr := range list.Items {
				t.Errorf("container %.12s (%s) of the test is left", ctr.ID, ctr.State)
				cli.ContainerRemove(context.Background(), ctr.ID, client.ContainerRemoveOptions{Force: true})
			}
		})
	}
}

// waitRunning waits until the test's container runs and returns the
// label the test got.
func waitRunning(t *testing.T, cli *client.Client, state string) string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if label, err := os.ReadFile(filepath.Join(state, "label")); err == nil && len(label) > 0 {
			list, err := cli.ContainerList(t.Context(), client.ContainerListOptions{
				Filters: make(client.Filters).Add("label", strings.TrimSpace(string(label))).Add("status", "running"),
			})
			if err == nil && len(list.Items) > 0 {
				return strings.TrimSpace(string(label))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("the test's container never ran")
	return ""
}

func readState(t *testing.T, state, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// running says whether process pid exists and is not a zombie (an
// orphan whose end nobody has collected yet has ended all the same).
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses.
	rest := stat[bytes.LastIndexByte(stat, ')')+1:]
	fields := strings.Fields(string(rest))
	return len(fields) > 0 && fields[0] != "Z"
}

// syncLog is a log a test reads while Verify writes it.
type syncLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
