package changelog

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// helperEnv makes the test binary a helper process (see TestMain) that
// does one thing with the lock and the files named in its arguments, so
// that tests see a second process hold the lock or die by SIGKILL.
const helperEnv = "CHANGELOG_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		if err := helper(mode, os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func helper(mode string, args []string) error {
	ctx := context.Background()
	switch mode {
	case "hold": // hold DIR's lock until stdin closes
		l, err := Acquire(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		return l.Release()
	case "crash": // STEP N DIR FILE...: write a cascade, SIGKILL at STEP N
		step, err := ParseStep(args[0])
		if err != nil {
			return err
		}
		n, err := strconv.Atoi(args[1])
		if err != nil {
			return err
		}
		kill := WithFault(func(_ context.Context, s Step, i int) error {
			if s == step && (i == n || n == 0) {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
			return nil
		})
		l, err := Acquire(ctx, args[2], kill)
		if err != nil {
			return err
		}
		b := l.Batch()
		for _, p := range args[3:] {
			if err := b.Stage(ctx, p, newEntry); err != nil {
				return err
			}
		}
		return b.Commit(ctx)
	case "read": // read and stage each file; print each error
		l, err := Acquire(ctx, args[0])
		if err != nil {
			return err
		}
		defer l.Release()
		for _, p := range args[1:] {
			_, err := Parse(p)
			fmt.Printf("parse %s: %v\n", filepath.Base(p), err)
			b := l.Batch()
			err = b.Stage(ctx, p, newEntry)
			b.Abort()
			fmt.Printf("stage %s: %v\n", filepath.Base(p), err)
		}
		return nil
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// helperCmd returns the test binary run as a helper in mode, under a shell
// that applies limit (`ulimit -v` in KiB) first when it is not 0.
func helperCmd(t *testing.T, mode string, limit int, args ...string) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	if limit > 0 {
		cmd = exec.CommandContext(t.Context(), "sh", append([]string{"-c", "ulimit -v " + strconv.Itoa(limit) + ` && exec "$@"`, "sh", self}, args...)...)
	} else {
		cmd = exec.CommandContext(t.Context(), self, args...)
	}
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	return cmd
}

// holdLock starts a helper process that holds dir's lock, and returns its
// pid and a function that makes it release the lock and waits for it.
func holdLock(t *testing.T, dir string) (pid int, release func()) {
	t.Helper()
	cmd := helperCmd(t, "hold", 0, dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "locked" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper said %q, %v; want locked", line, err)
	}
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("lock holder: %v", err)
		}
	}
	t.Cleanup(release)
	return cmd.Process.Pid, release
}
