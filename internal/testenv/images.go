package testenv

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/moby/client"
)

// Base images the tests build on, made on this machine since nothing can be
// pulled. They are kept between runs: tests never remove them.
const (
	BusyboxImage = "docker-pkg-test/busybox:static"
	DebianImage  = "docker-pkg-test/debian:bookworm"
)

// lockFile serialises the making of base images across test binaries, which
// go test runs in parallel.
const lockFile = "/tmp/docker-pkg-testenv.lock"

// Busybox returns BusyboxImage, importing it first when the daemon lacks
// it: a FROM-scratch image holding /bin/busybox (busybox-static) and a
// symbolic link for every applet, /bin/sh included.
func Busybox(t testing.TB, cli *client.Client) string {
	t.Helper()
	ensure(t, cli, BusyboxImage, importBusybox)
	return BusyboxImage
}

// Debian returns DebianImage, making it first when the daemon lacks it:
// debootstrap --variant=minbase bookworm from this machine's Debian mirror,
// imported as an image. That takes minutes and needs root and the mirror.
func Debian(t testing.TB, cli *client.Client) string {
	t.Helper()
	if _, err := exec.LookPath("debootstrap"); err != nil {
		if present(t.Context(), cli, DebianImage) {
			return DebianImage
		}
		Require(t, false, "no debootstrap to make "+DebianImage)
	}
	ensure(t, cli, DebianImage, importDebian)
	return DebianImage
}

func present(ctx context.Context, cli *client.Client, ref string) bool {
	_, err := cli.ImageInspect(ctx, ref)
	return err == nil
}

func ensure(t testing.TB, cli *client.Client, ref string, build func(context.Context, *client.Client, string) error) {
	t.Helper()
	ctx := t.Context()
	if present(ctx, cli, ref) {
		return
	}
	f, err := os.OpenFile(lockFile, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("opening %s: %v", lockFile, err)
	}
	defer f.Close() // releases the lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("locking %s: %v", lockFile, err)
	}
	if present(ctx, cli, ref) { // made by another test binary meanwhile
		return
	}
	if err := build(ctx, cli, ref); err != nil {
		t.Fatalf("making test base image %s: %v", ref, err)
	}
}

func importBusybox(ctx context.Context, cli *client.Client, ref string) error {
	const bin = "/bin/busybox"
	list, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("listing busybox applets: %w", err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var errs []error
	add := func(h *tar.Header, body []byte) {
		h.Size = int64(len(body))
		errs = append(errs, tw.WriteHeader(h))
		_, err := tw.Write(body)
		errs = append(errs, err)
	}
	for _, dir := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "root", "tmp", "var"} {
		mode := int64(0o755)
		if dir == "tmp" {
			mode = 0o1777
		}
		add(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: mode}, nil)
	}
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/passwd", Mode: 0o644},
		[]byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "etc/group", Mode: 0o644}, []byte("root:x:0:\nnogroup:x:65534:\n"))
	add(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755}, data)
	for _, applet := range strings.Fields(string(list)) {
		if applet != "bin/busybox" {
			add(&tar.Header{Typeflag: tar.TypeSymlink, Name: applet, Linkname: "/bin/busybox", Mode: 0o777}, nil)
		}
	}
	errs = append(errs, tw.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("making the busybox tar: %w", err)
	}
	return importTar(ctx, cli, &buf, ref, `CMD ["/bin/sh"]`)
}

func importDebian(ctx context.Context, cli *client.Client, ref string) error {
	root, err := os.MkdirTemp("", "docker-pkg-debootstrap-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	mirror := debianMirror()
	out, err := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "bookworm", root, mirror).CombinedOutput()
	if err != nil {
		return fmt.Errorf("debootstrap from %s: %w\n%s", mirror, err, lastLines(out, 30))
	}
	tarCmd := exec.CommandContext(ctx, "tar", "--numeric-owner", "-C", root, "-c", ".")
	stdout, err := tarCmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr bytes.Buffer
	tarCmd.Stderr = &stderr
	if err := tarCmd.Start(); err != nil {
		return err
	}
	importErr := importTar(ctx, cli, stdout, ref, `CMD ["/bin/bash"]`)
	io.Copy(io.Discard, stdout) // let tar finish if the import stopped early
	if err := tarCmd.Wait(); err != nil {
		return errors.Join(importErr, fmt.Errorf("tar of %s: %w: %s", root, err, stderr.String()))
	}
	return importErr
}

// importTar imports a root file system as ref, with a PATH set: an
// imported image has no environment at all.
func importTar(ctx context.Context, cli *client.Client, r io.Reader, ref, cmd string) error {
	res, err := cli.ImageImport(ctx, client.ImageImportSource{Source: r, SourceName: "-"}, ref, client.ImageImportOptions{
		Changes: []string{"ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", cmd},
	})
	if err != nil {
		return fmt.Errorf("importing %s: %w", ref, err)
	}
	defer res.Close()
	dec := json.NewDecoder(res)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("importing %s: %w", ref, err)
		}
		if m.Error != "" {
			return fmt.Errorf("importing %s: %s", ref, m.Error)
		}
	}
}

// debianMirror is the bookworm mirror this machine's apt uses, which is
// reachable from here (deb.debian.org otherwise).
func debianMirror() string {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	for _, name := range files {
		data, _ := os.ReadFile(name)
		for _, para := range strings.Split(string(data), "\n\n") {
			fields := map[string]string{}
			for _, line := range strings.Split(para, "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
					fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			if hasWord(fields["Suites"], "bookworm") && hasWord(fields["Types"], "deb") {
				if uris := strings.Fields(fields["URIs"]); len(uris) > 0 {
					return uris[0]
				}
			}
		}
	}
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, name := range append([]string{"/etc/apt/sources.list"}, lists...) {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			words := strings.Fields(sc.Text())
			if len(words) > 0 && words[0] == "deb" {
				words = words[1:]
				if len(words) > 0 && strings.HasPrefix(words[0], "[") {
					for len(words) > 0 && !strings.HasSuffix(words[0], "]") {
						words = words[1:]
					}
					words = words[1:]
				}
				if len(words) >= 2 && words[1] == "bookworm" {
					f.Close()
					return words[0]
				}
			}
		}
		f.Close()
	}
	return "http://deb.debian.org/debian"
}

func hasWord(s, word string) bool {
	for _, w := range strings.Fields(s) {
		if w == word {
			return true
		}
	}
	return false
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
