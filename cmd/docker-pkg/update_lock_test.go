package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/docker-pkg/docker-pkg/changelog"
)

// The images each update of these tests writes, relative to the tree.
var (
	runtimeCascade = []string{"app/changelog", "app/plugins/app-plugin/changelog", "ci-runner/changelog", "runtime/changelog"}
	appCascade     = []string{"app/changelog", "app/plugins/app-plugin/changelog"}
)

// binary is docker-pkg built for a test, run as a user would run it.
type binary struct{ path, config string }

func buildBinary(t *testing.T) binary {
	t.Helper()
	path := filepath.Join(t.TempDir(), "docker-pkg")
	if out, err := exec.CommandContext(t.Context(), "go", "build", "-o", path, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	config, err := filepath.Abs("../../fixtures/config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return binary{path: path, config: config}
}

// command returns docker-pkg -c fixtures/config.yaml args, with a fixed
// maintainer, no daemon and the extra environment env.
func (b binary) command(t *testing.T, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(t.Context(), b.path, append([]string{"-c", b.config}, args...)...)
	cmd.Env = append(os.Environ(), "DEBFULLNAME=Jane Doe", "DEBEMAIL=jane@example.org",
		"XDG_CONFIG_HOME="+t.TempDir(), "DOCKER_HOST=unix:///nonexistent/docker.sock")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// run runs docker-pkg to the end and returns its output and error.
func (b binary) run(t *testing.T, env []string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	cmd := b.command(t, env, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

func fixtureTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "images")
	if err := os.CopyFS(dir, os.DirFS("../../fixtures/images")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// readTree maps each changelog under dir to its content, and fails the
// test for any file the changelog package leaves behind (temporary, journal,
// lock).
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	return readTreeLocked(t, dir, false)
}

// readTreeLocked is readTree while the test holds the lock: the lock file
// is expected then.
func readTreeLocked(t *testing.T, dir string, locked bool) map[string]string {
	t.Helper()
	logs := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if changelog.IsInternal(d.Name()) && !(locked && d.Name() == changelog.LockFile) {
			t.Errorf("left in the tree: %s", p)
		}
		if d.Name() == "changelog" {
			b, err := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			logs[filepath.ToSlash(rel)] = string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return logs
}

var headerLine = regexp.MustCompile(`(?m)^\S+ \(([^)]+)\) `)

// checkVersions fails for a changelog whose entries' versions do not
// strictly decrease from the top: two runs that read the same version and
// both wrote show up as a repeated version.
func checkVersions(t *testing.T, logs map[string]string) {
	t.Helper()
	for name, content := range logs {
		var prev string
		for _, m := range headerLine.FindAllStringSubmatch(content, -1) {
			if prev != "" {
				if c, err := changelog.Compare(prev, m[1]); err != nil || c <= 0 {
					t.Errorf("%s: %s above %s: %v", name, prev, m[1], err)
				}
			}
			prev = m[1]
		}
	}
}

// holding lists the changelogs that have an entry with the reason line
// marker.
func holding(logs map[string]string, marker string) []string {
	var out []string
	for name, content := range logs {
		if strings.Contains(content, "\n   "+marker+"\n") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Two updates at once, round after round, through the real binary: both
// succeed, no entry is lost, and every cascade is whole (each reason is in
// exactly the changelogs of its cascade).
func TestUpdateConcurrent(t *testing.T) {
	bin := buildBinary(t)
	dir := fixtureTree(t)
	const rounds = 8
	var waited atomic.Int32
	for i := range rounds {
		var wg sync.WaitGroup
		for _, u := range []struct{ marker, name string }{{"A" + strconv.Itoa(i), "runtime"}, {"B" + strconv.Itoa(i), "app"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, stderr, err := bin.run(t, nil, "update", "--reason", u.marker, u.name, dir)
				if err != nil {
					t.Errorf("update %s (%s): %v\n%s", u.name, u.marker, err, stderr)
				}
				if strings.Contains(stderr, "docker-pkg: waiting for another docker-pkg run (pid ") {
					waited.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	logs := readTree(t, dir)
	for i := range rounds {
		if got := holding(logs, "A"+strconv.Itoa(i)); !slices.Equal(got, runtimeCascade) {
			t.Errorf("round %d: runtime's reason is in %v, want %v", i, got, runtimeCascade)
		}
		if got := holding(logs, "B"+strconv.Itoa(i)); !slices.Equal(got, appCascade) {
			t.Errorf("round %d: app's reason is in %v, want %v", i, got, appCascade)
		}
	}
	fixtures := readTree(t, "../../fixtures/images")
	for name, want := range map[string]int{"runtime/changelog": rounds, "app/changelog": 2 * rounds, "app/plugins/app-plugin/changelog": 2 * rounds} {
		added := len(headerLine.FindAllString(logs[name], -1)) - len(headerLine.FindAllString(fixtures[name], -1))
		if added != want || !strings.HasSuffix(logs[name], fixtures[name]) {
			t.Errorf("%s: %d entries added on top of the old text, want %d", name, added, want)
		}
	}
	checkVersions(t, logs)
	t.Logf("%d of %d runs waited for the other", waited.Load(), 2*rounds)
}

// While another process holds the lock, update waits saying so once, and
// goes on when it is free; with --no-wait it fails at once naming the
// holder. update --stale takes the same lock.
func TestUpdateLocked(t *testing.T) {
	bin := buildBinary(t)
	dir := fixtureTree(t)
	before := readTree(t, dir)
	l, err := changelog.Acquire(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	held := fmt.Sprintf("%s is locked by another docker-pkg run (pid %d), which is writing changelogs there", dir, os.Getpid())
	for _, args := range [][]string{
		{"update", "--no-wait", "--reason", "x", "runtime", dir},
		{"update", "--no-wait", "--stale", dir},
	} {
		_, stderr, err := bin.run(t, nil, args...)
		if err == nil || !strings.Contains(stderr, held) {
			t.Errorf("%v: %v, stderr:\n%s\nwant it to say %q", args, err, stderr, held)
		}
	}
	if after := readTreeLocked(t, dir, true); !maps.Equal(after, before) {
		t.Error("a refused update wrote")
	}

	cmd := bin.command(t, nil, "update", "--reason", "waited", "runtime", dir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stderr)
	line, err := r.ReadString('\n')
	want := fmt.Sprintf("docker-pkg: waiting for another docker-pkg run (pid %d) to finish writing changelogs under %s (--no-wait to fail instead)\n", os.Getpid(), dir)
	if line != want {
		t.Errorf("update said %q, %v\nwant %q", line, err, want)
	}
	if after := readTreeLocked(t, dir, true); !maps.Equal(after, before) {
		t.Error("update wrote while the lock was held")
	}
	l.Release()
	rest, _ := r.ReadString(0)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("update after the wait: %v\n%s", err, rest)
	}
	if strings.Contains(rest, "waiting") {
		t.Errorf("update said it waits more than once: %q", rest)
	}
	if got := holding(readTree(t, dir), "waited"); !slices.Equal(got, runtimeCascade) {
		t.Errorf("after the wait the reason is in %v, want %v", got, runtimeCascade)
	}
}

// kill -9 at each step of writing a cascade; the next update finishes or
// rolls it back, says so, removes every temporary file and adds its own
// entry: the killed cascade is in all of its changelogs or in none.
func TestUpdateKilled(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		at     string
		landed bool
		says   string
	}{
		{at: "staged:1", says: "docker-pkg: removed 1 temporary files of an interrupted update\n"},
		{at: "staged:4", says: "docker-pkg: removed 4 temporary files of an interrupted update\n"},
		{at: "prepared", says: "docker-pkg: removed 4 temporary files of an interrupted update\n"},
		{at: "journaled", landed: true, says: "docker-pkg: finished an update interrupted while writing changelogs (journal DIR/.docker-pkg.journal): wrote the last 4\n"},
		{at: "renamed:1", landed: true, says: "docker-pkg: finished an update interrupted while writing changelogs (journal DIR/.docker-pkg.journal): wrote the last 3\n"},
		{at: "renamed:4", landed: true, says: "docker-pkg: an update interrupted after writing its changelogs left its journal DIR/.docker-pkg.journal: removed it\n"},
	}
	for _, tc := range tests {
		t.Run(tc.at, func(t *testing.T) {
			dir := fixtureTree(t)
			before := readTree(t, dir)
			_, stderr, err := bin.run(t, []string{"DOCKER_PKG_TEST_KILL_AT=" + tc.at}, "update", "--reason", "killed", "runtime", dir)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("update with %s: %v, want killed\n%s", tc.at, err, stderr)
			}
			_, stderr, err = bin.run(t, nil, "update", "--reason", "next", "runtime", dir)
			if err != nil {
				t.Fatalf("update after the kill: %v\n%s", err, stderr)
			}
			if want := strings.ReplaceAll(tc.says, "DIR", dir); !strings.Contains(stderr, want) {
				t.Errorf("update after the kill said %q, want it to say %q", stderr, want)
			}
			logs := readTree(t, dir)
			var want []string
			if tc.landed {
				want = runtimeCascade
			}
			if got := holding(logs, "killed"); !slices.Equal(got, want) {
				t.Errorf("the killed update's reason is in %v, want %v", got, want)
			}
			if got := holding(logs, "next"); !slices.Equal(got, runtimeCascade) {
				t.Errorf("the next update's reason is in %v, want %v", got, runtimeCascade)
			}
			for name, old := range before {
				if !strings.HasSuffix(logs[name], old) {
					t.Errorf("%s lost its old text", name)
				}
			}
			checkVersions(t, logs)
		})
	}
}

// A command that only reads the tree, run after an update killed in the
// middle of its renames, first finishes the cascade: it never plans (or
// builds, or lints) half of one.
func TestReadAfterKilledUpdate(t *testing.T) {
	bin := buildBinary(t)
	for _, cmd := range []string{"plan", "lint", "render"} {
		t.Run(cmd, func(t *testing.T) {
			dir := fixtureTree(t)
			_, stderr, err := bin.run(t, []string{"DOCKER_PKG_TEST_KILL_AT=renamed:2"}, "update", "--reason", "killed", "runtime", dir)
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("update: %v, want killed\n%s", err, stderr)
			}
			if got := holding(readChangelogs(t, dir), "killed"); len(got) == 0 || len(got) == len(runtimeCascade) {
				t.Fatalf("after the kill the reason is in %v: want part of the cascade", got)
			}
			_, stderr, _ = bin.run(t, nil, cmd, dir)
			want := "docker-pkg: finished an update interrupted while writing changelogs (journal " + filepath.Join(dir, ".docker-pkg.journal") + "): wrote the last 2"
			if !strings.Contains(stderr, want) {
				t.Errorf("%s said %q, want %q", cmd, stderr, want)
			}
			if got := holding(readTree(t, dir), "killed"); !slices.Equal(got, runtimeCascade) {
				t.Errorf("after %s the reason is in %v, want %v", cmd, got, runtimeCascade)
			}
		})
	}
}

// What update refuses, naming the file or the flag, with nothing written;
// and a CRLF changelog keeps CRLF.
func TestUpdateRefuses(t *testing.T) {
	bin := buildBinary(t)
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		args    []string // before DIR
		wantErr string   // with DIR for the tree
	}{
		{name: "empty reason", args: []string{"--reason", "", "runtime"}, wantErr: "docker-pkg: --reason: invalid reason: it is empty\n"},
		{name: "escape in the reason", args: []string{"--reason", "ok\x1b[2J", "runtime"}, wantErr: "docker-pkg: --reason: invalid reason: line 1 holds the control character U+001B; only newline and tab are allowed\n"},
		{name: "read-only changelog", prepare: func(t *testing.T, dir string) {
			if err := os.Chmod(filepath.Join(dir, "ci-runner", "changelog"), 0o444); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"runtime"}, wantErr: "docker-pkg: updating changelogs, nothing written: DIR/ci-runner/changelog: changelog is read-only (mode 0444): make it writable (chmod u+w) to update it\n"},
		{name: "control character in the maintainer", prepare: func(t *testing.T, dir string) {}, args: []string{"app"}, wantErr: "nothing written: DIR/app/changelog: invalid changelog entry: line 5 holds the control character U+0007"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := fixtureTree(t)
			if tc.prepare != nil {
				tc.prepare(t, dir)
			}
			before := readTree(t, dir)
			var env []string
			if tc.name == "control character in the maintainer" {
				env = []string{"DEBFULLNAME=Jane\aDoe"}
			}
			_, stderr, err := bin.run(t, env, append(append([]string{"update"}, tc.args...), dir)...)
			if want := strings.ReplaceAll(tc.wantErr, "DIR", dir); err == nil || !strings.Contains(stderr, want) {
				t.Errorf("update: %v, said %q\nwant it to say %q", err, stderr, want)
			}
			if !maps.Equal(readTree(t, dir), before) {
				t.Error("a refused update wrote")
			}
		})
	}

	t.Run("CRLF changelog", func(t *testing.T) {
		dir := fixtureTree(t)
		path := filepath.Join(dir, "app", "plugins", "app-plugin", "changelog")
		old, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		crlf := bytes.ReplaceAll(old, []byte("\n"), []byte("\r\n"))
		if err := os.WriteFile(path, crlf, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, stderr, err := bin.run(t, nil, "update", "--reason", "CVE-1\nCVE-2", "app", dir); err != nil {
			t.Fatalf("update: %v\n%s", err, stderr)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		entry, rest, _ := bytes.Cut(got, []byte("\r\n\r\n -- Jane Doe"))
		wantEntry := "app-plugin (0.1.0-1-s1) wikimedia; urgency=high\r\n\r\n   Refresh for update in parent image app:\r\n   CVE-1\r\n   CVE-2"
		if string(entry) != wantEntry || !bytes.HasSuffix(rest, append([]byte("\r\n\r\n"), crlf...)) {
			t.Errorf("app-plugin's changelog = %q, want the entry %q in CRLF on top of the old bytes", got, wantEntry)
		}
		if bytes.Contains(bytes.ReplaceAll(got, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("a bare LF in a CRLF changelog: %q", got)
		}
	})
}

// readChangelogs maps each changelog under dir to its content, whatever
// else is there.
func readChangelogs(t *testing.T, dir string) map[string]string {
	t.Helper()
	logs := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "changelog" {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		logs[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return logs
}
