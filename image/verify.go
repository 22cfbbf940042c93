package image

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"
)

// defaultPath is the PATH given to the verify command when docker-pkg has
// none itself.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// VerifyLabel is the key of the label a test is asked to put on the
// containers it starts, through the environment variable VerifyLabelEnv
// ("docker run --label "$DOCKER_PKG_VERIFY_LABEL" ..."), so that Verify
// can remove them when the test ends, is killed or times out.
const (
	VerifyLabel    = "org.docker-pkg.verify"
	VerifyLabelEnv = "DOCKER_PKG_VERIFY_LABEL"
)

// DefaultGrace is how long a test has, after SIGTERM, before its whole
// process group gets SIGKILL.
const DefaultGrace = 10 * time.Second

// outputDelay bounds the wait for the test's output once its process
// group is gone: only a process that left the group (setsid) can still
// hold it open.
const outputDelay = 2 * time.Second

// ErrTimeout is matched (errors.Is) by the error of a test that ran longer
// than VerifyOptions.Timeout.
var ErrTimeout = errors.New("verify timed out")

// Containers is the part of the Engine API with which Verify removes the
// containers a test started. A *client.Client is one.
type Containers interface {
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerRemove(ctx context.Context, containerID string, options client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerWait(ctx context.Context, containerID string, options client.ContainerWaitOptions) client.ContainerWaitResult
}

var _ Containers = (*client.Client)(nil)

// VerifyOptions says how Verify runs an image's test.
type VerifyOptions struct {
	Command string   // verify_command
	Args    []string // verify_args, with {path} and {image} not yet replaced
	// Proxy, when set, is given to the test as http_proxy, https_proxy,
	// HTTP_PROXY and HTTPS_PROXY.
	Proxy string
	// Timeout (verify_timeout) ends a test that runs longer: the image
	// fails with ErrTimeout. Default (0): no limit.
	Timeout time.Duration
	// Grace is how long the test has to end after SIGTERM (on cancel or
	// timeout) before its process group gets SIGKILL. Default (0):
	// DefaultGrace.
	Grace time.Duration
	// Containers, when set, is the daemon the test starts containers on:
	// the test gets VerifyLabelEnv=VerifyLabel=<random> in its
	// environment, and every container carrying that label is removed when
	// the test ends, whatever happened. Default (nil): no label, nothing
	// removed.
	Containers Containers
	// Log gets the test's output, stdout and stderr. Default (nil):
	// discarded.
	Log io.Writer
	// Platform, when set, is the platform of the image under test: the
	// test gets it as DOCKER_DEFAULT_PLATFORM, so its own docker run
	// picks that platform's image. Default: unset.
	Platform string
}

// Verify runs the verify command for img (verify_command, verify_args).
// In every argument {path} becomes img.Dir and {image} img.Label(). When a
// word of an argument holds {path} and names a file that does not exist,
// nothing runs and skipped is true. The command is run directly, never
// through a shell of ours, with only PATH, the proxy variables when a
// proxy is set and VerifyLabelEnv when o.Containers is, in its
// environment; its output goes to o.Log, each line cut to MaxLine bytes in
// the error's Tail.
//
// The test runs in a process group of its own. When ctx is cancelled or
// o.Timeout passes, the group gets SIGTERM, then SIGKILL after o.Grace;
// whatever is left of the group when the test ends gets SIGKILL too, and
// the containers carrying the test's label are removed. A command that
// cannot start, exits non-zero or times out is a *BuildError of
// StageVerify.
func Verify(ctx context.Context, img *Image, o VerifyOptions) (skipped bool, err error) {
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	formatted := make([]string, len(o.Args))
	for i, arg := range o.Args {
		for _, word := range strings.Fields(arg) {
			if !strings.Contains(word, "{path}") {
				continue
			}
			if _, err := os.Stat(formatVerify(word, img)); errors.Is(err, os.ErrNotExist) {
				return true, nil
			}
		}
		formatted[i] = formatVerify(arg, img)
	}

	out := &tail{w: log}
	fail := func(err error) (bool, error) {
		return false, &BuildError{Image: img.Label(), Stage: StageVerify, Tail: out.Lines(), Err: err}
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	cmd := exec.Command(o.Command, formatted...)
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	cmd.Env = []string{"PATH=" + path}
	if o.Proxy != "" {
		for _, name := range []string{"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"} {
			cmd.Env = append(cmd.Env, name+"="+o.Proxy)
		}
	}
	label := ""
	if o.Containers != nil {
		label = VerifyLabel + "=" + strings.ToLower(rand.Text()[:16])
		cmd.Env = append(cmd.Env, VerifyLabelEnv+"="+label)
	}
	if o.Platform != "" {
		cmd.Env = append(cmd.Env, "DOCKER_DEFAULT_PLATFORM="+o.Platform)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// The output goes through a pipe of ours rather than exec's: Wait then
	// returns as soon as the test ends, even if a child it left behind
	// holds the pipe, and that child can be killed with the group.
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer pr.Close()
	cmd.Stdout, cmd.Stderr = pw, pw
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return fail(err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(out, pr)
	}()

	err = run(ctx, cmd, o)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what the test left running
	select {
	case <-copied:
	case <-time.After(outputDelay):
		pr.Close()
		<-copied
	}
	if label != "" {
		if rmErr := removeLabelled(ctx, o.Containers, label); rmErr != nil {
			fmt.Fprintf(log, "WARNING: %v\n", rmErr)
		}
	}
	if err != nil {
		return fail(err)
	}
	return false, nil
}

// run waits for the started test to end. On ctx's end or the timeout, it
// sends SIGTERM to the test's process group, then SIGKILL after the grace
// period, and waits for the test to be gone.
func run(ctx context.Context, cmd *exec.Cmd, o VerifyOptions) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timeout <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var why error
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		why = ctx.Err()
	case <-timeout:
		why = fmt.Errorf("%w after %d s (verify_timeout)", ErrTimeout, int(o.Timeout.Round(time.Second)/time.Second))
	}
	grace := o.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	var err error
	select {
	case err = <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		err = <-done
	}
	if err == nil {
		return why
	}
	return fmt.Errorf("%w (%v)", why, err)
}

// removeLabelled removes every container carrying label, even when ctx is
// cancelled.
func removeLabelled(ctx context.Context, c Containers, label string) error {
	cctx, cancel := cleanupContext(ctx)
	defer cancel()
	list, err := c.ContainerList(cctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", label)})
	if err != nil {
		return fmt.Errorf("listing the containers the test started (label %s): %w", label, err)
	}
	var errs []error
	for _, ctr := range list.Items {
		errs = append(errs, removeContainer(ctx, c, ctr.ID))
	}
	return errors.Join(errs...)
}

func formatVerify(s string, img *Image) string {
	return strings.NewReplacer("{path}", img.Dir, "{image}", img.Label()).Replace(s)
}

// qemuNames are the names binfmt-support registers qemu-user-static's
// emulators under, by GOARCH.
var qemuNames = map[string]string{
	"amd64": "x86_64", "arm64": "aarch64", "arm": "arm", "386": "i386",
	"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
}

// CanRun says why this machine cannot run a container of platform
// (linux/arm64): not its own, and no emulator registered for it in
// binfmt_misc. nil when it can, or cannot tell.
func CanRun(platform, own string) error { return canRun(platform, own, "/proc/sys/fs/binfmt_misc") }

func canRun(platform, own, binfmt string) error {
	if platform == "" || platform == own {
		return nil
	}
	_, arch, _ := strings.Cut(platform, "/")
	arch, _, _ = strings.Cut(arch, "/")
	if _, ownArch, _ := strings.Cut(own, "/"); strings.HasPrefix(ownArch, arch) {
		return nil
	}
	name, ok := qemuNames[arch]
	if !ok {
		return nil
	}
	entry := binfmt + "/qemu-" + name
	data, err := os.ReadFile(entry)
	if err == nil && strings.HasPrefix(string(data), "enabled") {
		return nil
	}
	return fmt.Errorf("this machine (%s) cannot run %s images to test them: no emulator in %s; install qemu-user-static and binfmt-support and mount binfmt_misc (scripts/docker-up does), or verify on a %s machine", own, platform, entry, platform)
}
