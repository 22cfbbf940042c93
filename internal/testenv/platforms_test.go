package testenv_test

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	bkclient "github.com/moby/buildkit/client"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
)

// busyboxMachine reads the ELF machine of /bin/busybox in img.
func busyboxMachine(t *testing.T, img v1.Image) elf.Machine {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatal("no bin/busybox in the image")
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "/") != "bin/busybox" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, 64<<20))
		if err != nil {
			t.Fatal(err)
		}
		f, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("bin/busybox: %v", err)
		}
		return f.Machine
	}
}

func TestBusyboxIndex(t *testing.T) {
	host, _ := testenv.Registry(t, testenv.RegistryOptions{})
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	ref := testenv.BusyboxIndex(t, bk, host, "dpkg-busybox-index")
	if want := host + "/dpkg-busybox-index/busybox:static"; ref != want {
		t.Errorf("reference %q, want %q", ref, want)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(r)
	if err != nil {
		t.Fatalf("reading the index of %s: %v", ref, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	var got []string
	for _, d := range im.Manifests {
		if d.Platform == nil {
			t.Errorf("manifest %s has no platform", d.Digest)
			continue
		}
		p := d.Platform.OS + "/" + d.Platform.Architecture
		got = append(got, p)
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != p {
			t.Errorf("%s: the image's config says %s/%s", p, cf.OS, cf.Architecture)
		}
		if m := busyboxMachine(t, img); m != want[p] {
			t.Errorf("%s: bin/busybox is for %s, want %s", p, m, want[p])
		}
		if len(cf.Config.Cmd) == 0 || cf.Config.Cmd[0] != "/bin/sh" {
			t.Errorf("%s: CMD %q, want /bin/sh", p, cf.Config.Cmd)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"linux/amd64", "linux/arm64"}) {
		t.Errorf("index platforms %v, want linux/amd64 and linux/arm64", got)
	}
}

func TestBusyboxAmd64(t *testing.T) {
	host, _ := testenv.Registry(t, testenv.RegistryOptions{})
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	ref := testenv.BusyboxAmd64(t, bk, host, "dpkg-busybox-amd64")
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(r)
	if err != nil {
		t.Fatalf("reading %s: %v", ref, err)
	}
	if !desc.MediaType.IsImage() {
		t.Fatalf("%s is a %s, want a single image manifest", ref, desc.MediaType)
	}
	img, err := desc.Image()
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "amd64" {
		t.Errorf("architecture %q, want amd64", cf.Architecture)
	}
	if m := busyboxMachine(t, img); m != elf.EM_X86_64 {
		t.Errorf("bin/busybox is for %s, want x86-64", m)
	}
}

// TestBusyboxRuns runs the base on both platforms in one build: arm64
// through qemu, which must be registered (scripts/docker-up does it).
func TestBusyboxRuns(t *testing.T) {
	testenv.Arm64(t)
	host, _ := testenv.Registry(t, testenv.RegistryOptions{})
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	c := bk.Client(t)
	var names []string
	for _, p := range workers(t, c)[0].Platforms {
		names = append(names, p.OS+"/"+p.Architecture)
	}
	if !slices.Contains(names, "linux/arm64") {
		t.Errorf("qemu-aarch64 is registered but buildkitd lists only %v", names)
	}
	ref := testenv.BusyboxIndex(t, bk, host, "dpkg-busybox-runs")

	dir := t.TempDir()
	dockerfile := "FROM " + ref + "\nRUN uname -m > /arch\nFROM scratch\nCOPY --from=0 /arch /arch\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	err := testenv.Solve(ctx, c, dir, "linux/amd64,linux/arm64", bkclient.ExportEntry{Type: bkclient.ExporterLocal, OutputDir: out})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"linux_amd64": "x86_64", "linux_arm64": "aarch64"} {
		got, err := os.ReadFile(filepath.Join(out, p, "arch"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(got)) != want {
			t.Errorf("uname -m on %s printed %q, want %s", p, got, want)
		}
	}
}
