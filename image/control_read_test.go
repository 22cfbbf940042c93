package image

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// underUlimit re-runs the calling test in a child process limited to
// about 2 GB of address space, so that a read without bound fails there
// instead of eating the machine's memory; it reports whether the caller
// is that child and should run the test itself.
func underUlimit(t *testing.T) bool {
	t.Helper()
	const env = "DOCKER_PKG_TEST_ULIMITED"
	if os.Getenv(env) == t.Name() {
		return true
	}
	cmd := exec.Command("bash", "-c", `ulimit -v 2000000 && exec "$@"`, "bash",
		os.Args[0], "-test.run=^"+t.Name()+"$", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), env+"="+t.Name())
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("under ulimit -v 2000000: %v\n%s", err, tailOf(string(out), 4000))
	}
	return false
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// TestLoadControlNotRegular gives control files that would block (a named
// pipe) or never end (a link to /dev/zero): Load must refuse them at once,
// naming the file, under a memory limit.
func TestLoadControlNotRegular(t *testing.T) {
	if !underUlimit(t) {
		return
	}
	big := strings.Repeat("Description: padding\n", (MaxControlSize/21)+1)
	tests := []struct {
		name    string
		make    func(path string) error
		wantErr string // "" for no error
	}{
		{
			name:    "named pipe",
			make:    func(path string) error { return syscall.Mkfifo(path, 0o644) },
			wantErr: "not a regular file: it is a FIFO",
		},
		{
			name:    "link to /dev/zero",
			make:    func(path string) error { return os.Symlink("/dev/zero", path) },
			wantErr: "not a regular file: it is a character device",
		},
		{
			name:    "folder",
			make:    func(path string) error { return os.Mkdir(path, 0o755) },
			wantErr: "not a regular file: it is a folder",
		},
		{
			name:    "too large",
			make:    func(path string) error { return os.WriteFile(path, []byte(big), 0o644) },
			wantErr: "file too large: ",
		},
		{
			name: "link to a regular file",
			make: func(path string) error {
				target := filepath.Join(filepath.Dir(path), "real-control")
				if err := os.WriteFile(target, []byte("Depends: core\n"), 0o644); err != nil {
					return err
				}
				return os.Symlink(target, path)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeImage(t, map[string]string{"Dockerfile.template": "FROM scratch\n", "changelog": entry("a", "1.0")})
			path := filepath.Join(dir, ControlFile)
			if err := tt.make(path); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := Load(dir, Naming{})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				// Let the blocked read end before failing.
				if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					w.Close()
				}
				t.Fatal("Load blocked on the control file")
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("Load: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(fmt.Sprint(err), path+": ") || !strings.Contains(fmt.Sprint(err), tt.wantErr) {
				t.Errorf("Load: %v; want ErrInvalid naming %s: %s", err, path, tt.wantErr)
			}
		})
	}
}
