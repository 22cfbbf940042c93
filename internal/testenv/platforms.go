package testenv

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/cli/cli/config/types"
	bkclient "github.com/moby/buildkit/client"
	"github.com/moby/buildkit/session"
	"github.com/moby/buildkit/session/auth/authprovider"
	"github.com/tonistiigi/fsutil"
)

// The platforms of the base BusyboxIndex pushes.
const (
	PlatformAmd64 = "linux/amd64"
	PlatformArm64 = "linux/arm64"
)

// busyboxDockerfile makes the busybox base from a root file system per
// architecture laid out beside it: the binary for the platform being built
// is the only difference.
const busyboxDockerfile = `FROM scratch
ARG TARGETARCH
COPY rootfs-${TARGETARCH}/ /
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CMD ["/bin/sh"]
`

// Arm64 skips the test, or fails it under CI=true, unless this machine
// runs linux/arm64 binaries: natively, or through qemu-aarch64 registered
// in binfmt_misc (scripts/docker-up sets that up). A buildkitd started
// after that lists linux/arm64 among its platforms.
func Arm64(t testing.TB) {
	t.Helper()
	if runtime.GOARCH == "arm64" {
		return
	}
	const entry = "/proc/sys/fs/binfmt_misc/qemu-aarch64"
	data, err := os.ReadFile(entry)
	switch {
	case err != nil:
		Require(t, false, "this machine cannot run linux/arm64 binaries: no "+entry+" (install qemu-user-static and binfmt-support, mount binfmt_misc)")
	case !strings.HasPrefix(string(data), "enabled"):
		Require(t, false, "this machine cannot run linux/arm64 binaries: "+entry+" is disabled (update-binfmts --enable qemu-aarch64)")
	}
}

// BusyboxIndex builds the busybox base for linux/amd64 and linux/arm64 in
// one solve on bk and pushes it to host/ns/busybox:static as an index of
// both, and returns that reference. Each platform's image holds that
// architecture's static busybox (Debian's busybox-static), with a symbolic
// link per applet, /bin/sh included. Building needs no emulation; running
// the arm64 image does (see Arm64).
func BusyboxIndex(t testing.TB, bk *Buildkitd, host, ns string) string {
	t.Helper()
	ref := fmt.Sprintf("%s/%s/busybox:static", host, ns)
	PushBusybox(t, bk, ref, PlatformAmd64, PlatformArm64)
	return ref
}

// BusyboxAmd64 pushes the same base to host/ns/busybox:static for
// linux/amd64 alone, as a single image manifest (no index): a parent that
// lacks arm64.
func BusyboxAmd64(t testing.TB, bk *Buildkitd, host, ns string) string {
	t.Helper()
	ref := fmt.Sprintf("%s/%s/busybox:static", host, ns)
	PushBusybox(t, bk, ref, PlatformAmd64)
	return ref
}

// PushBusybox builds the busybox base on bk for platforms (linux/amd64
// and linux/arm64 only) in one solve and pushes it to ref: an index with
// several platforms, a plain image manifest with one. The test fails if
// that cannot be done.
func PushBusybox(t testing.TB, bk *Buildkitd, ref string, platforms ...string) {
	t.Helper()
	if len(platforms) == 0 {
		t.Fatal("PushBusybox: no platforms")
	}
	dir := t.TempDir()
	for _, p := range platforms {
		var bin string
		var machine elf.Machine
		switch p {
		case PlatformAmd64:
			bin, machine = "/bin/busybox", elf.EM_X86_64
		case PlatformArm64:
			machine = elf.EM_AARCH64
			var err error
			if bin, err = arm64Busybox(); err != nil {
				Require(t, false, "no arm64 busybox: "+err.Error())
			}
		default:
			t.Fatalf("PushBusybox: no busybox for platform %s", p)
		}
		if err := staticBinary(bin, machine); err != nil {
			Require(t, false, "no usable busybox for "+p+": "+err.Error())
		}
		arch := strings.TrimPrefix(p, "linux/")
		if err := busyboxRootfs(filepath.Join(dir, "rootfs-"+arch), bin); err != nil {
			t.Fatalf("laying out the %s busybox: %v", p, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(busyboxDockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	err := Solve(ctx, bk.Client(t), dir, strings.Join(platforms, ","), bkclient.ExportEntry{
		Type:  bkclient.ExporterImage,
		Attrs: map[string]string{"name": ref, "push": "true"},
	})
	if err != nil {
		t.Fatalf("building and pushing %s for %s: %v", ref, strings.Join(platforms, ","), err)
	}
}

// Solve builds the Dockerfile in dir, with dir as its context, through
// the dockerfile.v0 frontend built into buildkitd (no frontend image is
// pulled), for platforms (comma separated; "" for the builder's own), and
// exports it as export says. A failure carries the tail of the build's
// log.
func Solve(ctx context.Context, c *bkclient.Client, dir, platforms string, export bkclient.ExportEntry) error {
	fs, err := fsutil.NewFS(dir)
	if err != nil {
		return err
	}
	attrs := map[string]string{"filename": "Dockerfile"}
	if platforms != "" {
		attrs["platform"] = platforms
	}
	ch := make(chan *bkclient.SolveStatus)
	var logs strings.Builder
	done := make(chan struct{})
	go func() {
		defer close(done)
		for s := range ch {
			for _, l := range s.Logs {
				logs.Write(l.Data)
			}
			for _, v := range s.Vertexes {
				if v.Error != "" {
					fmt.Fprintf(&logs, "%s: %s\n", v.Name, v.Error)
				}
			}
		}
	}()
	_, err = c.Solve(ctx, nil, bkclient.SolveOpt{
		Frontend:      "dockerfile.v0",
		FrontendAttrs: attrs,
		LocalMounts:   map[string]fsutil.FS{"context": fs, "dockerfile": fs},
		Exports:       []bkclient.ExportEntry{export},
		Session:       []session.Attachable{registryAuth()},
	}, ch)
	<-done // Solve closes ch
	if err != nil {
		return fmt.Errorf("%w\n%s", err, lastLines([]byte(logs.String()), 30))
	}
	return nil
}

// registryAuth gives buildkitd the test user of Registry for every
// registry: a registry started without Auth takes it all the same.
func registryAuth() session.Attachable {
	return authprovider.NewDockerAuthProvider(authprovider.DockerAuthProviderConfig{
		AuthConfigProvider: func(_ context.Context, host string, _ []string, _ authprovider.ExpireCachedAuthCheck) (types.AuthConfig, error) {
			return types.AuthConfig{Username: RegistryUser, Password: RegistryPassword, ServerAddress: host}, nil
		},
	})
}

// busyboxRootfs lays out a root file system holding the static busybox
// bin, a symbolic link per applet and the users busybox's tools expect.
// The applets are the ones this machine's busybox lists: both come from
// the same Debian release.
func busyboxRootfs(root, bin string) error {
	list, err := exec.Command("/bin/busybox", "--list-full").Output()
	if err != nil {
		return fmt.Errorf("listing busybox applets: %w", err)
	}
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "var"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	errs := []error{
		os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky),
		os.WriteFile(filepath.Join(root, "bin", "busybox"), data, 0o755),
		os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"), 0o644),
		os.WriteFile(filepath.Join(root, "etc", "group"), []byte("root:x:0:\nnogroup:x:65534:\n"), 0o644),
	}
	for _, applet := range strings.Fields(string(list)) {
		if applet != "bin/busybox" {
			errs = append(errs, os.Symlink("/bin/busybox", filepath.Join(root, applet)))
		}
	}
	return errors.Join(errs...)
}

// arm64Bin is Debian's busybox-static for arm64, fetched once per machine
// with an apt state of its own (its own package lists, for arm64 only, and
// no installed packages), so the machine's apt configuration and dpkg
// architectures stay as they are.
var arm64Bin = &artefact{
	key: "busybox-static-arm64", name: "busybox", timeout: 10 * time.Minute,
	make: func(ctx context.Context, tmp string) (string, error) {
		for _, d := range []string{"lists/partial", "cache/archives/partial"} {
			if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
				return "", err
			}
		}
		apt := func(args ...string) error {
			cmd := exec.CommandContext(ctx, "apt-get", append([]string{
				"-q",
				"-o", "APT::Architecture=arm64",
				"-o", "Dir::State::Lists=" + filepath.Join(tmp, "lists"),
				"-o", "Dir::State::status=/dev/null",
				"-o", "Dir::Cache=" + filepath.Join(tmp, "cache"),
			}, args...)...)
			cmd.Dir = tmp
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, lastLines(out, 20))
			}
			return nil
		}
		if err := apt("update"); err != nil {
			return "", err
		}
		if err := apt("download", "busybox-static:arm64"); err != nil {
			return "", err
		}
		debs, _ := filepath.Glob(filepath.Join(tmp, "busybox-static_*_arm64.deb"))
		if len(debs) != 1 {
			return "", fmt.Errorf("apt-get download busybox-static:arm64 left %d packages in %s", len(debs), tmp)
		}
		root := filepath.Join(tmp, "root")
		if out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", debs[0], root).CombinedOutput(); err != nil {
			return "", fmt.Errorf("dpkg-deb -x %s: %w\n%s", debs[0], err, out)
		}
		extracted := filepath.Join(root, "bin", "busybox")
		if err := staticBinary(extracted, elf.EM_AARCH64); err != nil {
			return "", err
		}
		return extracted, nil
	},
}

// arm64Busybox returns the path of the arm64 busybox binary.
func arm64Busybox() (string, error) { return arm64Bin.get() }

// staticBinary checks that path is a statically linked executable for
// machine: it runs in a FROM-scratch image, on that architecture.
func staticBinary(path string, machine elf.Machine) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != machine {
		return fmt.Errorf("%s is for %s, not %s", path, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked (install busybox-static)", path)
		}
	}
	return nil
}
