package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/builder"
	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"gopkg.in/yaml.v3"
)

// BenchmarkBuildNothingToDo is the wall time of a whole `docker-pkg build`
// (the binary, process start included) of a tree of 150 images that are
// all published already, against the registry on loopback with htpasswd
// auth and scan_workers: 8: every image is checked in the registry and
// the daemon, its build record read and compared with what a build would
// make now, and nothing is built. Target: under 0.5 s.
//
// The registry holds empty images written directly, each with the build
// record a real build would have given it, so that the run finds every
// image published and up to date, as after a real build. It runs once
// with htpasswd auth, which costs the registry a bcrypt comparison on
// every request, and once anonymous, as registries that check a token
// instead cost.
//
//	CI=true go test -run '^$' -bench BuildNothingToDo -benchtime 10x ./cmd/docker-pkg
func BenchmarkBuildNothingToDo(b *testing.B) {
	b.Run("htpasswd", func(b *testing.B) { benchNothingToDo(b, true) })
	b.Run("anonymous", func(b *testing.B) { benchNothingToDo(b, false) })
}

func benchNothingToDo(b *testing.B, auth bool) {
	const levels, width = 10, 15
	testenv.Docker(b)
	host, _ := testenv.Registry(b, testenv.RegistryOptions{Auth: auth})
	ns := "dpkg-bench-noop-" + strings.ToLower(rand.Text()[:6])
	work := b.TempDir()
	base := host + "/" + ns + "/base:1"
	doc := map[string]any{
		"registry": host, "namespace": ns, "base_images": []string{base},
		"username": testenv.RegistryUser, "password": testenv.RegistryPassword,
		"scan_workers": 8,
	}
	out, err := yaml.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "config.yaml"), out, 0o600); err != nil {
		b.Fatal(err)
	}
	writeNoopTree(b, filepath.Join(work, "images"), levels, width)
	publishNoopTree(b, work, base)

	bin := filepath.Join(b.TempDir(), "docker-pkg")
	if out, err := exec.CommandContext(b.Context(), "go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "XDG_CONFIG_HOME="+b.TempDir(), "XDG_CACHE_HOME="+b.TempDir(), "DOCKER_CONFIG="+b.TempDir())
	docker := func(args ...string) (string, error) {
		cmd := exec.CommandContext(b.Context(), bin, append([]string{"-c", "config.yaml"}, args...)...)
		cmd.Dir, cmd.Env = work, env
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return stdout.String(), fmt.Errorf("docker-pkg %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
		}
		return stdout.String(), nil
	}

	// The setup is right: plan finds every image published, its build
	// record read and up to date (a record it could not read would only
	// add to the reason, and make the run cheaper).
	planOut, err := docker("plan", "--json", "images")
	if err != nil {
		b.Fatal(err)
	}
	var plan planJSON
	if err := json.Unmarshal([]byte(planOut), &plan); err != nil {
		b.Fatal(err)
	}
	if len(plan.Images) != levels*width {
		b.Fatalf("plan lists %d images, want %d", len(plan.Images), levels*width)
	}
	for _, img := range plan.Images {
		if img.Code != builder.CodePublished || img.Reason != "published" {
			b.Fatalf("%s is %s (%s): %s", img.Name, img.State, img.Code, img.Reason)
		}
	}

	var times []time.Duration
	for b.Loop() {
		start := time.Now()
		stdout, err := docker("build", "images")
		times = append(times, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		if !strings.Contains(stdout, nothingBuilt) || !strings.Contains(stdout, "Nothing to build.\n") {
			b.Fatalf("something to do:\n%s", stdout)
		}
	}
	slices.Sort(times)
	b.ReportMetric(times[len(times)/2].Seconds(), "median-s/op")
}

// writeNoopTree writes levels*width images: the first level built on the
// base image, each image of the others on two images of the level above.
func writeNoopTree(b *testing.B, root string, levels, width int) {
	b.Helper()
	name := func(level, i int) string { return fmt.Sprintf("img-%02d-%02d", level, i) }
	for level := range levels {
		for i := range width {
			n := name(level, i)
			from, depends := `"base" | image_tag`, ""
			if level > 0 {
				p1, p2 := name(level-1, i), name(level-1, (i+1)%width)
				from, depends = fmt.Sprintf("%q | image_tag", p1), "Depends: "+p1+", "+p2+"\n"
			}
			files := map[string]string{
				"changelog": n + " (1.0-1) wikimedia; urgency=medium\n\n  * Initial release.\n\n" +
					" -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n",
				"control":             "Source: " + n + "\n\nPackage: " + n + "\n" + depends,
				"Dockerfile.template": "FROM {{ " + from + " }}\nCOPY test.sh /usr/local/bin/\nRUN echo {{ namespace }} > /etc/" + n + "\n",
				"test.sh":             "#!/bin/sh\ndocker run --rm \"$1\" cat /etc/" + n + "\n",
			}
			dir := filepath.Join(root, n)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			for f, content := range files {
				if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o755); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}

// publishNoopTree writes the base image and every image of the tree in
// work to the registry, parents first, as empty images labelled with the
// build record a build would give them on those parents.
func publishNoopTree(b *testing.B, work, base string) {
	b.Helper()
	ctx := b.Context()
	cfg, err := config.LoadFiles("", filepath.Join(work, "config.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	bld, err := builder.New(ctx, filepath.Join(work, "images"), cfg)
	if err != nil {
		b.Fatal(err)
	}
	rendered, err := bld.Render(ctx, "*")
	if err != nil {
		b.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: cfg.Username, Password: cfg.Password})
	ids := registryIDs{}
	write := func(label string, labels map[string]string) {
		img, err := mutate.Config(empty.Image, v1.Config{Labels: labels})
		if err != nil {
			b.Fatal(err)
		}
		ref, err := name.ParseReference(label, name.Insecure)
		if err != nil {
			b.Fatal(err)
		}
		if err := remote.Write(ref, img, auth, remote.WithContext(ctx)); err != nil {
			b.Fatal(err)
		}
		id, err := img.ConfigName()
		if err != nil {
			b.Fatal(err)
		}
		ids[label] = id.String()
	}
	write(base, nil)
	for _, r := range rendered {
		if r.Err != nil {
			b.Fatal(r.Err)
		}
		img := r.Image
		rec, err := image.NewRecord(ctx, img, r.Dockerfile, r.BuildDockerfile, "", ids.id)
		if err != nil {
			b.Fatal(err)
		}
		write(img.Label(), rec.Labels())
	}
}

// registryIDs resolves the parents NewRecord names to the IDs of the
// images written to the registry.
type registryIDs map[string]string

func (r registryIDs) id(_ context.Context, ref string) (string, error) {
	id, ok := r[ref]
	if !ok {
		return "", fmt.Errorf("parent image %s was not written", ref)
	}
	return id, nil
}
