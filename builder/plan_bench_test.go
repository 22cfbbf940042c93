package builder

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
	imagetypes "github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"
)

// BenchmarkPlan measures what `docker-pkg plan` does without a daemon:
// scan, graph, assess (a fake local status) and plan, on synthetic trees.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{200, 2000, 10000} {
		b.Run(fmt.Sprintf("images=%d", n), func(b *testing.B) {
			root := syntheticTree(b, n, 6)
			cfg := &config.Config{ScanWorkers: 8, BaseImages: []string{"docker-registry.example.org/bookworm:20260105"}}
			naming := image.Naming{Registry: "docker-registry.example.org", Namespace: "releng"}
			// About a third of the images are built already.
			local := placeFunc(func(_ context.Context, label string) (found, error) {
				h := fnv.New32a()
				h.Write([]byte(label))
				return found{ok: h.Sum32()%3 == 0}, nil
			})
			ctx := context.Background()
			for b.Loop() {
				tree, err := scanTree(ctx, root, cfg, naming)
				if err != nil {
					b.Fatal(err)
				}
				states, err := assessWith(ctx, builderFor(b, tree, cfg), sources{local: local})
				if err != nil {
					b.Fatal(err)
				}
				plan, err := tree.plan(states, "*")
				if err != nil {
					b.Fatal(err)
				}
				if len(tree.Images) != n || len(plan.Chain()) == 0 {
					b.Fatalf("scanned %d images, chain of %d", len(tree.Images), len(plan.Chain()))
				}
			}
		})
	}
}

// BenchmarkPlanEngine is BenchmarkPlan with the local engine's place
// itself (one ImageList, then lookups in it) over an engine that answers
// from memory: the cost of the locator, not of the daemon.
func BenchmarkPlanEngine(b *testing.B) {
	for _, n := range []int{200, 2000, 10000} {
		b.Run(fmt.Sprintf("images=%d", n), func(b *testing.B) {
			root := syntheticTree(b, n, 6)
			cfg := &config.Config{ScanWorkers: 8, BaseImages: []string{"docker-registry.example.org/bookworm:20260105"}}
			naming := image.Naming{Registry: "docker-registry.example.org", Namespace: "releng"}
			ctx := context.Background()
			tree, err := scanTree(ctx, root, cfg, naming)
			if err != nil {
				b.Fatal(err)
			}
			// A third of the images are built, without records.
			eng := &listEngine{}
			for i, img := range tree.Images {
				if i%3 == 0 {
					eng.items = append(eng.items, imagetypes.Summary{ID: fmt.Sprintf("sha256:%064d", i), RepoTags: []string{img.Label()}})
				}
			}
			for b.Loop() {
				tree, err := scanTree(ctx, root, cfg, naming)
				if err != nil {
					b.Fatal(err)
				}
				bl := builderFor(b, tree, cfg, WithEngine(eng))
				plan, err := bl.Plan(ctx, PlanOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if len(plan.Chain()) == 0 {
					b.Fatal("nothing to build")
				}
			}
		})
	}
}

// listEngine answers Info and ImageList from memory; any other call
// panics.
type listEngine struct {
	Engine
	items []imagetypes.Summary
}

func (e *listEngine) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	var r client.SystemInfoResult
	r.Info.Images = len(e.items)
	return r, nil
}

func (e *listEngine) ImageList(context.Context, client.ImageListOptions) (client.ImageListResult, error) {
	return client.ImageListResult{Items: e.items}, nil
}

// syntheticTree writes n images in depth levels, grouped in folders of 50
// as real repositories group them; each image below the first level
// depends on two images of the level above.
func syntheticTree(b *testing.B, n, depth int) string {
	b.Helper()
	root := b.TempDir()
	name := func(i int) string { return fmt.Sprintf("image-%05d", i) }
	perLevel := (n + depth - 1) / depth
	for i := range n {
		level := i / perLevel
		dir := filepath.Join(root, fmt.Sprintf("group-%03d", i/50), name(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		var parents []string
		from := `"bookworm" | image_tag`
		if level > 0 {
			start := (level - 1) * perLevel
			parents = []string{name(start + i*7%perLevel), name(start + i*13%perLevel)}
			from = fmt.Sprintf("%q | image_tag", parents[0])
		}
		var log strings.Builder
		for e := 5; e >= 1; e-- {
			fmt.Fprintf(&log, "%s (1.%d.%d-%d) wikimedia; urgency=medium\n\n  * Change %d.\n  * Another change.\n\n"+
				" -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n\n", name(i), e, i%10, e, e)
		}
		control := fmt.Sprintf("Source: %s\nMaintainer: Jane Doe <jane@example.org>\n\nPackage: %s\nDepends:\n %s\nDescription: synthetic\n long description\n",
			name(i), name(i), strings.Join(parents, ",\n "))
		tmpl := fmt.Sprintf(`FROM {{ %s }}
{%% set packages = "curl ca-certificates git make" %%}
USER root
RUN {{ packages | apt_install }}
{%% if http_proxy is defined %%}
ENV http_proxy={{ http_proxy }}
{%% endif %%}
RUN {{ "www-data" | add_user }}
COPY run.sh /usr/local/bin/run.sh
ENV IMAGE=%s LEVEL=%d
WORKDIR /srv
USER {{ "www-data" | uid }}
ENTRYPOINT ["/usr/local/bin/run.sh"]
`, from, name(i), level)
		files := map[string]string{"changelog": log.String(), "control": control, "Dockerfile.template": tmpl, "run.sh": "#!/bin/sh\nexec \"$@\"\n"}
		for f, content := range files {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	// Write the tree out now, so the timed scans do not compete with the
	// kernel flushing it.
	syscall.Sync()
	return root
}
