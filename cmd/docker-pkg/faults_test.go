package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
)

// testBinary is docker-pkg built for the test (buildBinary): signals and
// SIGKILL need a process of its own. DOCKER_PKG_TEST_BINARY names another
// build to test instead (an older one, to see these tests fail).
func testBinary(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("DOCKER_PKG_TEST_BINARY"); bin != "" {
		return bin
	}
	return buildBinary(t).path
}

// proc is docker-pkg running in work, its output collected.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
}

// start runs bin with args in work, with TMPDIR tmp and no user config.
// The process is killed when the test ends, if it still runs.
func start(t *testing.T, bin, work, tmp string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Dir = work
	p.cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "XDG_CONFIG_HOME="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir())
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits up to d for the process to end and returns its exit status,
// or -1 if it still runs.
func (p *proc) wait(d time.Duration) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		return -1
	}
}

func (p *proc) String() string {
	return fmt.Sprintf("stdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
}

// waitFor polls ok every 50 ms for up to a minute.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// contexts lists the build contexts in tmp.
func contexts(t *testing.T, tmp string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(tmp, image.ContextPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range matches {
		matches[i] = filepath.Base(m)
	}
	return matches
}

// busyboxTree writes a config for namespace ns and one image, name, built
// FROM its busybox with the given steps and test.
func busyboxTree(t *testing.T, ns, name, steps, test string) string {
	t.Helper()
	work := t.TempDir()
	writeYAML(t, filepath.Join(work, "config.yaml"), map[string]any{
		"namespace": ns, "base_images": []string{ns + "/busybox:static"},
	})
	writeImage(t, filepath.Join(work, "images"), name, "FROM {{ \"busybox\" | image_tag }}\n"+steps+"\n", test)
	return work
}

// TestBuildKilledLeavesNoContext kills a build with SIGKILL while the
// daemon runs a step: its context folder, named after its PID, is left,
// and the next build removes it, but not a live run's.
func TestBuildKilledLeavesNoContext(t *testing.T) {
	cli := testenv.Docker(t)
	bin := testBinary(t)
	ns := testRepo(t, cli, "")
	marker := "dpkg-kill-" + strings.ToLower(rand.Text()[:8])
	work := busyboxTree(t, ns, "slow", "RUN echo "+marker+" && sleep 120", "")
	tmp := t.TempDir()
	live := filepath.Join(tmp, fmt.Sprintf("%s%d-live", image.ContextPrefix, os.Getpid()))
	if err := os.Mkdir(live, 0o700); err != nil {
		t.Fatal(err)
	}

	p := start(t, bin, work, tmp, "-c", "config.yaml", "build", "images")
	waitFor(t, "the build step to run", func() bool {
		log, _ := os.ReadFile(filepath.Join(work, logFile))
		return bytes.Contains(log, []byte(marker+"\n"))
	})
	prefix := fmt.Sprintf("%s%d-", image.ContextPrefix, p.cmd.Process.Pid)
	var left string
	for _, c := range contexts(t, tmp) {
		if strings.HasPrefix(c, prefix) {
			left = c
		}
	}
	if left == "" {
		t.Fatalf("no context named %s* in TMPDIR: %q", prefix, contexts(t, tmp))
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(time.Minute)
	if _, err := os.Stat(filepath.Join(tmp, left)); err != nil {
		t.Fatalf("the killed build's context is already gone (%v): this test proves nothing", err)
	}

	// The next build, quick this time, starts by removing it.
	writeImage(t, filepath.Join(work, "images"), "slow", "FROM {{ \"busybox\" | image_tag }}\nRUN true\n", "")
	next := start(t, bin, work, tmp, "-c", "config.yaml", "build", "images")
	if code := next.wait(5 * time.Minute); code != 0 {
		t.Fatalf("the next build: exit status %d\n%s", code, next)
	}
	if got := contexts(t, tmp); len(got) != 1 || got[0] != filepath.Base(live) {
		t.Errorf("contexts left: %q, want only the live run's %s", got, filepath.Base(live))
	}
	// The daemon stops the killed build's step when its client goes.
	waitFor(t, "the killed build's container to go", func() bool {
		list, err := cli.ContainerList(t.Context(), client.ContainerListOptions{All: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list.Items {
			if strings.Contains(c.Command, marker) {
				return false
			}
		}
		return true
	})
}

// TestSecondInterruptQuits interrupts a build whose test ignores SIGTERM:
// the first SIGINT starts the cleanup, which waits out the test's grace
// period; the second ends docker-pkg at once, with status 130, and the
// test with it.
func TestSecondInterruptQuits(t *testing.T) {
	cli := testenv.Docker(t)
	bin := testBinary(t)
	ns := testRepo(t, cli, "")
	state := t.TempDir()
	work := busyboxTree(t, ns, "stubborn", "RUN true",
		"trap '' TERM\necho $$ >"+state+"/pid\nsleep 1000")
	p := start(t, bin, work, t.TempDir(), "-c", "config.yaml", "build", "images")
	pidFile := filepath.Join(state, "pid")
	waitFor(t, "the test to start", func() bool {
		b, err := os.ReadFile(pidFile)
		return err == nil && bytes.HasSuffix(b, []byte("\n"))
	})
	b, _ := os.ReadFile(pidFile)
	testPID, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-testPID, syscall.SIGKILL) })

	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(2 * time.Second); code != -1 {
		t.Fatalf("exit status %d right after the first interrupt: the test's grace period was not waited for\n%s", code, p)
	}
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(5 * time.Second); code != 130 {
		t.Fatalf("after the second interrupt: exit status %d (-1: still running), want 130\n%s", code, p)
	}
	if !strings.Contains(p.stderr.String(), "docker-pkg: interrupted, cleaning up (interrupt again to quit at once)\n") {
		t.Errorf("stderr does not say what the first interrupt does:\n%s", p.stderr.String())
	}
	waitFor(t, "the test to be killed", func() bool { return !running(testPID) })
}

// running says whether process pid exists and is not a zombie.
func running(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// TestBuildBoundedOutput builds an image whose test prints one 100 MB
// line and fails, under ulimit -v: docker-pkg must stay small, and every
// line it prints or logs is cut to image.MaxLine bytes.
func TestBuildBoundedOutput(t *testing.T) {
	cli := testenv.Docker(t)
	bin := testBinary(t)
	ns := testRepo(t, cli, "")
	work := busyboxTree(t, ns, "chatty", "RUN true",
		"head -c 100000000 /dev/zero | tr '\\0' x\necho\nexit 1")
	cmd := exec.Command("bash", "-c", `ulimit -v 2000000 && exec "$@"`, "bash", bin, "-c", "config.yaml", "build", "images")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 1 {
		t.Fatalf("exit status %d (%v), want 1: the test fails\nstdout:\n%.2000s\nstderr:\n%.2000s", code, err, stdout.String(), stderr.String())
	}
	rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB
	t.Logf("peak RSS of docker-pkg (and its test): %d MiB", rss>>10)
	if rss > 200<<10 {
		t.Errorf("peak RSS %d MiB, want under 200 MiB for a 100 MB line", rss>>10)
	}
	log, err := os.ReadFile(filepath.Join(work, logFile))
	if err != nil {
		t.Fatal(err)
	}
	const most = image.MaxLine + 64 // the line, its prefix and the marker
	cut := map[string]bool{}
	for where, text := range map[string][]byte{"stdout": stdout.Bytes(), "stderr": stderr.Bytes(), "log file": log} {
		sc := bufio.NewScanner(bytes.NewReader(text))
		sc.Buffer(nil, 200<<20)
		for sc.Scan() {
			if n := len(sc.Bytes()); n > most {
				t.Errorf("the %s has a line of %d bytes, want at most %d", where, n, most)
			}
			cut[where] = cut[where] || bytes.Contains(sc.Bytes(), []byte("bytes cut)"))
		}
	}
	// The failure's log tail is on the screen (under the summary) and in
	// the log.
	if !cut["stdout"] && !cut["stderr"] || !cut["log file"] {
		t.Errorf("the long line, cut, is not on the screen and in the log: %v", cut)
	}
	if !strings.Contains(string(log), "xxxx... (99991808 bytes cut)\n") {
		t.Errorf("the log does not say how much of the line it cut")
	}
}

// TestBuildFailedTestIsBuiltAgain builds an image whose test fails, twice:
// the failed image does not count as built, the second run tries again,
// and plan says why.
func TestBuildFailedTestIsBuiltAgain(t *testing.T) {
	cli := testenv.Docker(t)
	ns := testRepo(t, cli, "")
	work := busyboxTree(t, ns, "flaky", "RUN true", "echo not today; exit 1")
	label := ns + "/flaky:1.0-1"
	for run := 1; run <= 2; run++ {
		stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "build", "images")
		if code := exitCode(err); code != 1 {
			t.Fatalf("run %d: exit status %d (%v), want 1\nstdout:\n%s\nstderr:\n%s", run, code, err, stdout, stderr)
		}
		for _, said := range []string{"Will build the following images:\n* " + label + "\n", label + "  failed (verify)"} {
			if !strings.Contains(stdout, said) {
				t.Errorf("run %d: stdout lacks %q:\n%s", run, said, stdout)
			}
		}
		if _, err := cli.ImageInspect(t.Context(), label); err == nil {
			t.Errorf("run %d: %s is tagged: it would count as built", run, label)
		}
		if _, err := cli.ImageInspect(t.Context(), label+"-failed"); err != nil {
			t.Errorf("run %d: the failed image is not kept as %s-failed: %v", run, label, err)
		}
		stdout, stderr, err = runBuildCmd(t, work, "-c", "config.yaml", "plan", "images")
		if err != nil {
			t.Fatalf("plan: %v\n%s", err, stderr)
		}
		if want := "1      to_build  " + label + "  its last build failed its test (kept as " + label + "-failed)\n"; !strings.Contains(stdout, want) {
			t.Errorf("run %d: plan does not say why:\n%s\nwant %q", run, stdout, want)
		}
	}
}

// TestPlanStateErrorFails plans with a registry nobody answers: every
// image's state is error, and plan fails as build would.
func TestPlanStateErrorFails(t *testing.T) {
	work := t.TempDir()
	writeYAML(t, filepath.Join(work, "config.yaml"), map[string]any{"registry": "127.0.0.1:1", "namespace": "ns"})
	writeImage(t, filepath.Join(work, "images"), "a", "FROM scratch\n", "")
	t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no-daemon.sock")
	for _, args := range [][]string{{"plan", "images"}, {"plan", "--json", "images"}, {"plan", "--why", "a", "images"}} {
		stdout, stderr, err := runBuildCmd(t, work, append([]string{"-c", "config.yaml"}, args...)...)
		if code := exitCode(err); code != 1 || err.Error() != "the state of 1 image could not be checked (state error)" {
			t.Errorf("%q: exit status %d (%v), want 1\nstdout:\n%s\nstderr:\n%s", args, code, err, stdout, stderr)
		}
		// The image is in error; why is said once, on stderr.
		if !strings.Contains(stdout, "error") || !strings.Contains(stderr, "connection refused") {
			t.Errorf("%q: the plan does not show the error:\nstdout:\n%s\nstderr:\n%s", args, stdout, stderr)
		}
	}
}
