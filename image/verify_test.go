package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
)

// verifyImage is an image whose folder holds test.sh with script as its
// body, or no test.sh when script is "".
func verifyImage(t *testing.T, dirName, repo, script string) *Image {
	t.Helper()
	dir := filepath.Join(t.TempDir(), dirName)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if script != "" {
		if err := os.WriteFile(filepath.Join(dir, "test.sh"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return &Image{Name: "foo", Dir: dir, Repo: repo, Tag: "1.0"}
}

// The reference's default: verify_command /bin/bash,
// verify_args ["-c", "{path}/test.sh {image}"].
var defaultVerifyArgs = []string{"-c", "{path}/test.sh {image}"}

func TestVerify(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash, which the default verify_command is")
	}
	tests := []struct {
		name        string
		script      string // "" for no test.sh
		command     string
		args        []string
		wantSkipped bool
		wantLog     string
		wantErr     string
	}{
		{
			name:    "default command passes",
			script:  "#!/bin/sh\necho testing \"$1\"\n",
			command: "/bin/bash",
			args:    defaultVerifyArgs,
			wantLog: "testing reg/foo:1.0\n",
		},
		{
			name:        "no test.sh skips",
			command:     "/bin/bash",
			args:        defaultVerifyArgs,
			wantSkipped: true,
		},
		{
			name:        "a missing path skips before the command is looked for",
			command:     "/nonexistent/command",
			args:        []string{"--file={path}/missing", "{image}"},
			wantSkipped: true,
		},
		{
			name:    "a word without {path} is not checked",
			script:  "#!/bin/sh\necho ok\n",
			command: "/bin/bash",
			args:    []string{"-c", "{path}/test.sh /does/not/exist"},
			wantLog: "ok\n",
		},
		{
			name:    "non-zero exit fails",
			script:  "#!/bin/sh\necho about to fail\nexit 3\n",
			command: "/bin/bash",
			args:    defaultVerifyArgs,
			wantLog: "about to fail\n",
			wantErr: "reg/foo:1.0: verify failed: exit status 3",
		},
		{
			name:    "stderr is logged",
			script:  "#!/bin/sh\necho oops >&2\nexit 1\n",
			command: "/bin/bash",
			args:    defaultVerifyArgs,
			wantLog: "oops\n",
			wantErr: "reg/foo:1.0: verify failed: exit status 1",
		},
		{
			name:    "missing command fails",
			script:  "#!/bin/sh\n",
			command: "/nonexistent/command",
			args:    defaultVerifyArgs,
			wantErr: "reg/foo:1.0: verify failed: fork/exec /nonexistent/command: no such file or directory",
		},
		{
			name:    "command on PATH",
			script:  "#!/bin/sh\n",
			command: "cat",
			args:    []string{"{path}/test.sh"},
			wantLog: "#!/bin/sh\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := verifyImage(t, "foo", "reg/foo", tt.script)
			var log bytes.Buffer
			skipped, err := Verify(t.Context(), img, VerifyOptions{Command: tt.command, Args: tt.args, Log: &log})
			if got := fmt.Sprint(err); (err != nil || tt.wantErr != "") && got != tt.wantErr {
				t.Errorf("error %q, want %q", got, tt.wantErr)
			}
			var be *BuildError
			if err != nil && (!errors.As(err, &be) || be.Stage != StageVerify || be.Image != "reg/foo:1.0") {
				t.Errorf("error %#v, want a *BuildError for reg/foo:1.0 at verify", err)
			}
			if skipped != tt.wantSkipped {
				t.Errorf("skipped %v, want %v", skipped, tt.wantSkipped)
			}
			if log.String() != tt.wantLog {
				t.Errorf("log %q, want %q", log.String(), tt.wantLog)
			}
		})
	}
}

func TestVerifyErrorCarriesTail(t *testing.T) {
	img := verifyImage(t, "foo", "foo", "#!/bin/sh\nfor i in $(seq 1 50); do echo line $i; done\nexit 1\n")
	_, err := Verify(t.Context(), img, VerifyOptions{Command: "/bin/sh", Args: []string{"{path}/test.sh"}})
	var be *BuildError
	if !errors.As(err, &be) {
		t.Fatalf("error %v, want a *BuildError", err)
	}
	var want []string
	for i := 21; i <= 50; i++ {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	if !slices.Equal(be.Tail, want) {
		t.Errorf("tail\n%q\nwant\n%q", be.Tail, want)
	}
}

func TestVerifyEnvironment(t *testing.T) {
	t.Setenv("SECRET_TOKEN", "must-not-leak")
	t.Setenv("PATH", "/usr/bin:/bin")
	img := verifyImage(t, "foo", "foo", "#!/bin/sh\n")
	tests := []struct {
		name  string
		proxy string
		want  []string
	}{
		{name: "no proxy", want: []string{"PATH=/usr/bin:/bin"}},
		{
			name:  "proxy",
			proxy: "http://proxy:3128",
			want: []string{
				"HTTPS_PROXY=http://proxy:3128", "HTTP_PROXY=http://proxy:3128", "PATH=/usr/bin:/bin",
				"http_proxy=http://proxy:3128", "https_proxy=http://proxy:3128",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			// env, run directly, prints exactly the environment it got.
			if _, err := Verify(t.Context(), img, VerifyOptions{Command: "env", Args: []string{}, Proxy: tt.proxy, Log: &log}); err != nil {
				t.Fatal(err)
			}
			got := strings.Split(strings.TrimSpace(log.String()), "\n")
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("environment\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestVerifyNoInjection gives a folder and a label full of shell syntax:
// they must reach the command as plain arguments.
func TestVerifyNoInjection(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work) // where a relative "touch" would land
	img := verifyImage(t, "odd $(touch pwned-dir) `touch pwned-tick`; touch pwned-semi", "x; touch pwned-label", "#!/bin/sh\nprintf '%s\\n' \"$1\"\n")
	var log bytes.Buffer
	skipped, err := Verify(t.Context(), img, VerifyOptions{Command: "/bin/sh", Args: []string{"{path}/test.sh", "{image}"}, Log: &log})
	if err != nil || skipped {
		t.Fatalf("Verify: skipped %v, %v\n%s", skipped, err, log.String())
	}
	if got, want := log.String(), "x; touch pwned-label:1.0\n"; got != want {
		t.Errorf("test.sh got %q, want the label as one argument %q", got, want)
	}
	if left := listTree(t, work); len(left) != 0 {
		t.Errorf("the names ran commands: %q", left)
	}
}

func TestVerifyCancelled(t *testing.T) {
	img := verifyImage(t, "foo", "foo", "#!/bin/sh\nexec sleep 30\n")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Verify(ctx, img, VerifyOptions{Command: "/bin/sh", Args: []string{"{path}/test.sh"}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

// TestVerifyDaemon runs a test.sh as real repositories write them: docker
// run on the image just built.
func TestVerifyDaemon(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker command for test.sh to use")
	}
	tests := []struct {
		name    string
		check   string
		wantErr bool
	}{
		{name: "pass", check: "test -f /etc/passwd"},
		{name: "fail", check: "test -f /nonexistent", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := verifyImage(t, "foo", base[:strings.LastIndex(base, ":")], "#!/bin/sh\nset -e\necho verifying \"$1\"\ndocker run --rm \"$1\" "+tt.check+"\n")
			img.Tag = base[strings.LastIndex(base, ":")+1:]
			var log bytes.Buffer
			_, err := Verify(t.Context(), img, VerifyOptions{Command: "/bin/sh", Args: []string{"-c", "{path}/test.sh {image}"}, Containers: cli, Log: &log})
			if (err != nil) != tt.wantErr {
				t.Errorf("Verify: %v, want error %v\n%s", err, tt.wantErr, log.String())
			}
			if !strings.Contains(log.String(), "verifying "+base+"\n") {
				t.Errorf("log %q lacks the script's output", log.String())
			}
		})
	}
}

func TestCanRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "qemu-aarch64"), []byte("enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "qemu-s390x"), []byte("disabled\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		platform, own string
		ok            bool
	}{
		{"", "linux/amd64", true},
		{"linux/amd64", "linux/amd64", true},
		{"linux/arm64", "linux/amd64", true},
		{"linux/s390x", "linux/amd64", false},
		{"linux/ppc64le", "linux/amd64", false},
		{"linux/arm64", "linux/arm64", true},
	}
	for _, tt := range tests {
		err := canRun(tt.platform, tt.own, dir)
		if (err == nil) != tt.ok {
			t.Errorf("canRun(%q, %q) = %v, want ok %v", tt.platform, tt.own, err, tt.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "install qemu-user-static and binfmt-support") {
			t.Errorf("canRun(%q): %v does not say what to install", tt.platform, err)
		}
	}
}
