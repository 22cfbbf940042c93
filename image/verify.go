package image

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// defaultPath is the PATH given to the verify command when docker-pkg has
// none itself.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Verify runs the verify command for img (verify_command, verify_args).
// In every argument {path} becomes img.Dir and {image} img.Label(). When a
// word of an argument holds {path} and names a file that does not exist,
// nothing runs and skipped is true. The command is run directly, never
// through a shell of ours, with only PATH and, when proxy is set, the proxy
// variables in its environment; its output goes to log. A command that
// cannot start or exits non-zero is a *BuildError of StageVerify.
func Verify(ctx context.Context, img *Image, command string, args []string, proxy string, log io.Writer) (skipped bool, err error) {
	if log == nil {
		log = io.Discard
	}
	formatted := make([]string, len(args))
	for i, arg := range args {
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
	cmd := exec.CommandContext(ctx, command, formatted...)
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	cmd.Env = []string{"PATH=" + path}
	if proxy != "" {
		for _, name := range []string{"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"} {
			cmd.Env = append(cmd.Env, name+"="+proxy)
		}
	}
	// One writer for both, so exec copies them from one goroutine.
	cmd.Stdout, cmd.Stderr = out, out
	// A test that leaves a child holding the output open must not keep
	// Verify waiting once the test itself has ended or been killed.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return false, &BuildError{Image: img.Label(), Stage: StageVerify, Tail: out.Lines(), Err: interrupted(ctx, err)}
	}
	return false, nil
}

func formatVerify(s string, img *Image) string {
	return strings.NewReplacer("{path}", img.Dir, "{image}", img.Label()).Replace(s)
}
