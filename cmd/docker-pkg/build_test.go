package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/docker-pkg/docker-pkg/registry"
	"github.com/moby/moby/client"
	"gopkg.in/yaml.v3"
)

// runBuildCmd runs docker-pkg in-process with args, in dir (where the log
// file goes), with no user config file.
func runBuildCmd(t testing.TB, dir string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the label cache: never the user's
	t.Chdir(dir)
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if err != nil {
		return -1
	}
	return 0
}

// testRepo is a namespace of the test's own under registry (may be
// empty), holding busybox:static, the test's base image.
func testRepo(t testing.TB, cli *client.Client, registry string) string {
	t.Helper()
	return testenv.Namespace(t, cli, registry)
}

// writeYAML writes doc as YAML to path.
func writeYAML(t testing.TB, path string, doc map[string]any) {
	t.Helper()
	out, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeImage writes one image folder under root.
func writeImage(t testing.TB, root, name, template, test string) {
	t.Helper()
	dir := filepath.Join(root, name)
	files := map[string]string{
		"changelog": name + " (1.0-1) wikimedia; urgency=medium\n\n  * Change.\n\n" +
			" -- Author <a@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n",
		"Dockerfile.template": template,
	}
	if test != "" {
		files["test.sh"] = "#!/bin/sh\nset -e\n" + test + "\n"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// fixturesCopy copies fixtures/ into a folder of the test's own, its
// config set to namespace ns and to the base image testRepo tagged there
// (image_tag finds a base image only in the tree's namespace).
func fixturesCopy(t testing.TB, ns string) string {
	t.Helper()
	work := t.TempDir()
	if err := os.CopyFS(work, os.DirFS("../../fixtures")); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	raw, err := os.ReadFile(filepath.Join(work, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	doc["namespace"], doc["base_images"] = ns, []string{ns + "/busybox:static"}
	writeYAML(t, filepath.Join(work, "config.yaml"), doc)
	return work
}

// summaryRow matches the row of label in the summary table, with result.
func summaryRow(label, result string) *regexp.Regexp {
	return regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(label) + ` +` + regexp.QuoteMeta(result) + `(  |$)`)
}

// mustHaveRows checks the summary table in stdout gives each label its
// result.
func mustHaveRows(t *testing.T, stdout string, results map[string]string) {
	t.Helper()
	for _, label := range slices.Sorted(maps.Keys(results)) {
		if !summaryRow(label, results[label]).MatchString(stdout) {
			t.Errorf("the summary lacks %s %s:\n%s", label, results[label], stdout)
		}
	}
}

// TestBuildFixtures builds fixtures/ whole: fixtures/images, and
// fixtures/failing built on it, where legacy-app fails its test on purpose
// and legacy-plugin, built on it, is skipped. (buildFixtures builds
// fixtures/images alone, which ends green.)
func TestBuildFixtures(t *testing.T) {
	cli := testenv.Docker(t)
	ns := testRepo(t, cli, "")
	work := fixturesCopy(t, ns)

	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "build", "--jobs", "2", ".")
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit status %d (%v), want 1: legacy-app fails its test\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	l := func(name, tag string) string { return ns + "/" + name + ":" + tag }
	// The reference's steps, then one table: no line per image between.
	want := strings.Join([]string{
		"== Step 0: scanning . ==",
		"Will build the following images:",
		"* " + l("core", "1.2.0-1"),
		"* " + l("build-tools", "0.9.0-1"),
		"* " + l("runtime", "2.3.1-2-s1"),
		"* " + l("tools", "4.2.0-1"),
		"* " + l("app", "1.0-3"),
		"* " + l("ci-runner", "3.1.4-1"),
		"* " + l("legacy-app", "0.5-1"),
		"* " + l("app-plugin", "0.1.0-1"),
		"* " + l("legacy-plugin", "0.1-1"),
		"== Step 1: building images ==",
		"== Step 2: publishing ==",
		"NOT publishing images as we have no auth setup",
		"== Build done! ==",
		"IMAGE ",
	}, "\n")
	if !strings.HasPrefix(stdout, want) {
		t.Errorf("stdout\n%s\nwant it to start with\n%s", stdout, want)
	}
	var rows []string
	for _, line := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(line, ns+"/") {
			rows = append(rows, strings.Fields(line)[0])
		}
	}
	wantRows := []string{
		l("core", "1.2.0-1"), l("build-tools", "0.9.0-1"), l("runtime", "2.3.1-2-s1"), l("tools", "4.2.0-1"),
		l("app", "1.0-3"), l("ci-runner", "3.1.4-1"), l("legacy-app", "0.5-1"), l("app-plugin", "0.1.0-1"), l("legacy-plugin", "0.1-1"),
	}
	if !reflect.DeepEqual(rows, wantRows) {
		t.Errorf("the summary's rows are\n%s\nwant one for each image, in plan order:\n%s", strings.Join(rows, "\n"), strings.Join(wantRows, "\n"))
	}
	for _, row := range []string{
		`(?m)^IMAGE +RESULT +DURATION +SIZE$`,
		`(?m)^` + regexp.QuoteMeta(l("core", "1.2.0-1")) + ` +verified +[0-9.ms]+ +[0-9.]+MB$`,
		`(?m)^` + regexp.QuoteMeta(l("legacy-app", "0.5-1")) + ` +failed \(verify\) +[0-9.ms]+ +[0-9.]+MB$`,
		`(?m)^` + regexp.QuoteMeta(l("legacy-plugin", "0.1-1")) + ` +skipped: parent legacy-app failed +- +-$`,
		// Under the table, the failure and its log tail, once.
		`\n\nlegacy-app: verify failed: exit status 1; its log ends with:\n` +
			`    legacy-app: /etc/legacy.conf is missing \(this fixture fails on purpose\)\n\n` +
			`You can see the logs at ./docker-pkg-build.log\n$`,
	} {
		if !regexp.MustCompile(row).MatchString(stdout) {
			t.Errorf("stdout lacks %s:\n%s", row, stdout)
		}
	}
	for _, not := range []string{"Built image", "ERROR", "\x1b["} {
		if strings.Contains(stdout, not) {
			t.Errorf("stdout says %q:\n%s", not, stdout)
		}
	}

	for _, said := range []string{
		"[legacy-app] failed: " + l("legacy-app", "0.5-1") + ": verify failed: exit status 1\n",
		"[legacy-plugin] skipped: parent legacy-app failed\n",
		"warning: 1 problem; see docker-pkg lint .\n",
		"[core] building\n",
		"[app-plugin] verified ",
	} {
		if n := strings.Count(stderr, said); n != 1 {
			t.Errorf("stderr says %q %d times, want once:\n%s", said, n, stderr)
		}
	}
	// The tail is printed once, under the table.
	for _, not := range []string{"\r", "\x1b[", "/etc/legacy.conf is missing"} {
		if strings.Contains(stderr, not) {
			t.Errorf("stderr, not a terminal, says %q:\n%s", not, stderr)
		}
	}
	log, err := os.ReadFile(filepath.Join(work, logFile))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(string(log), "\n"), "\n") {
		stamp, rest, _ := strings.Cut(line, " ")
		if _, err := time.Parse(time.RFC3339, stamp); err != nil {
			t.Errorf("log line without an RFC 3339 time: %q", line)
		}
		if i > 0 && !strings.HasPrefix(rest, "[") {
			t.Errorf("log line without its image's name: %q", line)
		}
	}
	for _, said := range []string{"[core] Successfully tagged " + l("core", "1.2.0-1"), "[legacy-app] legacy-app: /etc/legacy.conf is missing"} {
		if !strings.Contains(string(log), said) {
			t.Errorf("log lacks %q", said)
		}
	}
}

// TestBuildKeepsPasswordSecret builds with a password in the configuration
// and looks for it in every output and in the images.
func TestBuildKeepsPasswordSecret(t *testing.T) {
	cli := testenv.Docker(t)
	// Nothing listens there: publishing is tried, with the credentials,
	// and fails.
	const registry = "127.0.0.1:1"
	ns := testRepo(t, cli, registry)
	password := "pw-" + rand.Text()
	work := t.TempDir()
	writeYAML(t, filepath.Join(work, "config.yaml"), map[string]any{
		"registry": registry, "namespace": ns, "username": "someone", "password": password,
		"base_images": []string{registry + "/" + ns + "/busybox:static"},
	})
	writeImage(t, filepath.Join(work, "images"), "secretive",
		"FROM {{ \"busybox\" | image_tag }}\nRUN env > /build-env.txt && echo {{ namespace }} {{ registry }}\n",
		`env; echo "$@"; docker run --rm "$1" cat /build-env.txt`)

	outputs := map[string]string{}
	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "build", "--no-pull", "images")
	if code := exitCode(err); code != 1 {
		t.Fatalf("exit status %d (%v), want 1: publishing to %s fails\nstdout:\n%s\nstderr:\n%s", code, err, registry, stdout, stderr)
	}
	if !summaryRow(registry+"/"+ns+"/secretive:1.0-1", "failed (publish)").MatchString(stdout) {
		t.Fatalf("the summary lacks secretive failed (publish):\n%s", stdout)
	}
	outputs["stdout"], outputs["stderr"] = stdout, stderr
	// Again, with debug messages on stderr: the image is built, and asking
	// the registry whether it is published fails.
	stdout, stderr, err = runBuildCmd(t, work, "-c", "config.yaml", "--debug", "build", "--no-pull", "images")
	if code := exitCode(err); code != 1 {
		t.Fatalf("--debug: exit status %d (%v), want 1: the registry cannot be asked\nstdout:\n%s\nstderr:\n%s", code, err, stdout, stderr)
	}
	outputs["--debug stdout"], outputs["--debug stderr"] = stdout, stderr
	log, err := os.ReadFile(filepath.Join(work, logFile))
	if err != nil {
		t.Fatal(err)
	}
	outputs["log file"] = string(log)
	// The test's output (its environment, the build's) reached the log.
	if !strings.Contains(outputs["log file"], "[secretive] PATH=") {
		t.Fatalf("the log lacks the test's output, so this test proves nothing:\n%s", log)
	}

	ref := registry + "/" + ns + "/secretive:1.0-1"
	saved, err := cli.ImageSave(t.Context(), []string{ref})
	if err != nil {
		t.Fatal(err)
	}
	layers, err := io.ReadAll(saved)
	saved.Close()
	if err != nil {
		t.Fatal(err)
	}
	outputs["image layers"] = string(layers)
	history, err := cli.ImageHistory(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	inspect, err := cli.ImageInspect(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := json.Marshal([]any{history.Items, inspect.InspectResponse})
	outputs["image history and config"] = string(meta)
	if !strings.Contains(outputs["image history and config"], "/build-env.txt") {
		t.Fatalf("history lacks the RUN step, so this test proves nothing: %s", meta)
	}
	for where, text := range outputs {
		if strings.Contains(text, password) {
			t.Errorf("the password is in the %s", where)
		}
	}
}

func TestBuildPullsAndPublishes(t *testing.T) {
	cli := testenv.Docker(t)
	host, _ := testenv.Registry(t, testenv.RegistryOptions{Auth: true})
	ns := testRepo(t, cli, host)
	base := host + "/" + ns + "/busybox:static"
	work := t.TempDir()
	cfgPath := filepath.Join(work, "config.yaml")
	writeYAML(t, cfgPath, map[string]any{
		"registry": host, "namespace": ns, "base_images": []string{base},
		"username": testenv.RegistryUser, "password": testenv.RegistryPassword,
	})
	cfg, err := config.LoadFiles("", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The base image is in the registry only: build must pull it.
	if err := reg.Publish(t.Context(), cli, host+"/"+ns+"/busybox"+":static", io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{base, host + "/" + ns + "/busybox:latest"} {
		if _, err := cli.ImageRemove(t.Context(), ref, client.ImageRemoveOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	writeImage(t, filepath.Join(work, "images"), "app", "FROM {{ \"busybox\" | image_tag }}\nRUN echo built > /built.txt\n",
		`docker run --rm "$1" cat /built.txt | grep -qx built`)

	stdout, stderr, err := runBuildCmd(t, work, "-c", "config.yaml", "build", "images")
	if err != nil {
		t.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	label := host + "/" + ns + "/app:1.0-1"
	mustHaveRows(t, stdout, map[string]string{label: "published"})
	mustContain(t, "stderr", stderr, "[app] verified ", "[app] published ")
	for _, ref := range []string{label, host + "/" + ns + "/app:latest"} {
		if _, ok, err := reg.Published(t.Context(), ref); err != nil || !ok {
			t.Errorf("%s published: %v, %v; want true", ref, ok, err)
		}
	}
}

func TestBuildNoDaemon(t *testing.T) {
	sock := "unix://" + t.TempDir() + "/no-daemon.sock"
	t.Setenv("DOCKER_HOST", sock)
	stdout, _, err := runBuildCmd(t, t.TempDir(), "-c", mustAbs(t, "../../fixtures/config.yaml"), "build", mustAbs(t, "../../fixtures/images"))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 {
		t.Fatalf("err = %v, want exit status 2", err)
	}
	for _, said := range []string{sock, "run scripts/docker-up or start dockerd"} {
		if !strings.Contains(ee.msg, said) {
			t.Errorf("message %q does not say %q", ee.msg, said)
		}
	}
	if strings.Contains(ee.msg, "\n") {
		t.Errorf("message %q is more than one line", ee.msg)
	}
	if stdout != "" {
		t.Errorf("work started before the daemon was found:\n%s", stdout)
	}
}

func mustAbs(t *testing.T, path string) string {
	t.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func TestBuildFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		says string
	}{
		{"nightly and snapshot", []string{"--nightly", "--snapshot"}, "[nightly snapshot]"},
		{"no jobs", []string{"--jobs", "0"}, "jobs: want at least 1"},
		{"negative jobs", []string{"--jobs", "-3"}, "jobs: want at least 1"},
		{"unknown builder", []string{"--builder", "kaniko"}, `--builder: want classic or buildkit, got "kaniko"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No daemon: an error about it would mean work started.
			t.Setenv("DOCKER_HOST", "unix://"+t.TempDir()+"/no-daemon.sock")
			cfgFile := mustAbs(t, "../../fixtures/config.yaml")
			args := append(append([]string{"-c", cfgFile, "build"}, tt.args...), mustAbs(t, "../../fixtures/images"))
			stdout, _, err := runBuildCmd(t, t.TempDir(), args...)
			if err == nil || !strings.Contains(err.Error(), tt.says) || exitCode(err) == 2 {
				t.Errorf("err = %v, want one saying %q", err, tt.says)
			}
			if stdout != "" {
				t.Errorf("stdout:\n%s", stdout)
			}
		})
	}
}

func TestTagSuffix(t *testing.T) {
	now := time.Date(2026, 3, 7, 9, 5, 4, 0, time.Local)
	tests := []struct {
		name  string
		flags buildFlags
		want  string
	}{
		{"release", buildFlags{}, ""},
		{"nightly", buildFlags{nightly: true}, "-20260307"},
		{"snapshot", buildFlags{snapshot: true}, "-20260307-090504"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tagSuffix(&tt.flags, now); got != tt.want {
				t.Errorf("tagSuffix = %q, want %q", got, tt.want)
			}
		})
	}
}
