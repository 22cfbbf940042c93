package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
)

// BenchmarkFleet times builds of a 16-image tree in 4 levels (each image
// FROM the one above it and depending on its neighbour there too), each
// step a sleep, on real buildkitd processes (bench/fleet.sh runs it). It
// reports, as medians of RUNS runs (default 3):
//
//	2v1        two builders of 2 jobs against one (target <= 0.6)
//	cache      a fresh builder with the registry cache against a cold
//	           build (target <= 0.2)
//	critical   wall time with enough slots (two builders of 4 jobs)
//	           against the tree's critical path, the longest chain of
//	           images by their durations in the run (target <= 1.2)
//
// SLEEP is the seconds each image's step takes (default 4).
func BenchmarkFleet(b *testing.B) {
	runs := envInt(b, "RUNS", 3)
	sleep := envInt(b, "SLEEP", 4)
	e := newE2E(b)
	const levels, width = 4, 4
	root := filepath.Join(e.work, "tree")
	var names []string
	for l := 1; l <= levels; l++ {
		for i := 1; i <= width; i++ {
			n := fmt.Sprintf("l%di%d", l, i)
			names = append(names, n)
			parent := "busybox"
			if l > 1 {
				parent = fmt.Sprintf("l%di%d", l-1, i)
			}
			writeImage(b, root, n, fmt.Sprintf("FROM {{ %q | image_tag }}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"sleep %d && echo %s > /%s\"]\n", parent, sleep, n, n), "")
			if l > 1 {
				control := fmt.Sprintf("Source: %s\nDepends: %s, l%di%d\n", n, parent, l-1, i%width+1)
				if err := os.WriteFile(filepath.Join(root, n, "control"), []byte(control), 0o644); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	removeLocal := func() {
		for _, n := range names {
			ref := e.host + "/" + e.doc["namespace"].(string) + "/" + n
			for _, tag := range []string{"1.0-1", "latest"} {
				e.cli.ImageRemove(b.Context(), ref+":"+tag, client.ImageRemoveOptions{Force: true})
			}
		}
	}
	// build times one build of the whole tree, none of it built locally
	// (--no-pull: what is in the registry is not taken for built).
	build := func(args ...string) (time.Duration, string) {
		removeLocal()
		report := filepath.Join(b.TempDir(), "run.json")
		start := time.Now()
		stdout, stderr, err := e.buildDir(b, "tree", append([]string{"--no-pull", "--report", report}, args...)...)
		d := time.Since(start)
		if err != nil {
			b.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
		}
		return d, report
	}
	var one, two, cold, warm, wall, critical []time.Duration
	for r := range runs {
		bk1 := testenv.BuildKit(b, testenv.BuildKitOptions{})
		bk2 := testenv.BuildKit(b, testenv.BuildKitOptions{})
		delete(e.doc, "build_cache")
		e.withBuilders(b, fleetBuilder("bk1", bk1, 2))
		d, _ := build()
		one = append(one, d)
		e.withBuilders(b, fleetBuilder("bk1", bk1, 2), fleetBuilder("bk2", bk2, 2))
		d, _ = build()
		two = append(two, d)
		e.withBuilders(b, fleetBuilder("bk1", bk1, 4), fleetBuilder("bk2", bk2, 4))
		d, report := build()
		wall = append(wall, d)
		critical = append(critical, criticalPath(b, report))

		// The cache: a namespace of its own per run, so the first build
		// finds none; then a builder that has never built anything.
		e.doc["build_cache"] = "registry"
		e.doc["namespace"] = fmt.Sprintf("%s-cache%d", e.ns, r)
		cold1 := testenv.BuildKit(b, testenv.BuildKitOptions{})
		e.withBuilders(b, fleetBuilder("cold", cold1, 4))
		base := e.host + "/" + e.doc["namespace"].(string) + "/busybox:static"
		e.doc["base_images"] = []string{base}
		testenv.PushBusybox(b, cold1, base, testenv.PlatformAmd64)
		e.withBuilders(b, fleetBuilder("cold", cold1, 4))
		removeLocal()
		d, _ = buildNS(b, e, "--use-cache")
		cold = append(cold, d)
		fresh := testenv.BuildKit(b, testenv.BuildKitOptions{})
		e.withBuilders(b, fleetBuilder("fresh", fresh, 4))
		removeLocal()
		d, _ = buildNS(b, e, "--use-cache")
		warm = append(warm, d)
		if f := os.Getenv("FLEET_LOG"); f != "" {
			os.WriteFile(f, []byte(e.log(b)), 0o644)
		}
		e.doc["namespace"] = e.ns
		e.doc["base_images"] = []string{e.base}
		b.Logf("run %d: one %s, two %s, wall %s (critical path %s), cold %s, warm %s", r+1,
			one[r].Round(time.Millisecond), two[r].Round(time.Millisecond), wall[r].Round(time.Millisecond),
			critical[r].Round(time.Millisecond), cold[r].Round(time.Millisecond), warm[r].Round(time.Millisecond))
	}
	m := func(ds []time.Duration) float64 { return median(ds).Seconds() }
	b.ReportMetric(m(one), "s/one-builder")
	b.ReportMetric(m(two), "s/two-builders")
	b.ReportMetric(m(two)/m(one), "2v1")
	b.ReportMetric(m(cold), "s/cold")
	b.ReportMetric(m(warm), "s/fresh-with-cache")
	b.ReportMetric(m(warm)/m(cold), "cache")
	b.ReportMetric(m(wall)/m(critical), "critical")
	b.ReportMetric(0, "ns/op")
}

// buildNS builds the tree of e in the namespace e.doc names, with none of
// it in the local engine.
func buildNS(b *testing.B, e *e2e, args ...string) (time.Duration, string) {
	b.Helper()
	e.config(b, testenv.RegistryPassword)
	start := time.Now()
	stdout, stderr, err := e.buildDir(b, "tree", append([]string{"--no-pull"}, args...)...)
	if err != nil {
		b.Fatalf("build: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	return time.Since(start), stdout
}

// criticalPath reads a --report JSON: the longest chain of images, by
// their durations, as the report finds it.
func criticalPath(b *testing.B, path string) time.Duration {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var run struct {
		Critical float64 `json:"critical_path_seconds"`
	}
	if err := json.Unmarshal(data, &run); err != nil || run.Critical == 0 {
		b.Fatalf("no critical path in %s: %v", path, err)
	}
	return time.Duration(run.Critical * float64(time.Second))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a whole number above 0", name, v)
	}
	return n
}
