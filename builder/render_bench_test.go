package builder

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/image"
)

// BenchmarkRenderTree renders every template of a scanned tree, as render
// and build do, so its cost can be set against BenchmarkPlan's: the
// fixtures and a synthetic tree of 2,000 images.
func BenchmarkRenderTree(b *testing.B) {
	trees := []struct {
		name   string
		dir    string
		config string
	}{
		{"fixtures", "../fixtures/images", "../fixtures/config.yaml"},
		{"images=2000", syntheticTree(b, 2000, 6), ""},
	}
	for _, tt := range trees {
		b.Run(tt.name, func(b *testing.B) {
			path := tt.config
			if path == "" {
				path = filepath.Join(b.TempDir(), "config.yaml")
				body := "registry: docker-registry.example.org\nnamespace: releng\nbase_images: [docker-registry.example.org/releng/bookworm:20260105]\n"
				if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
					b.Fatal(err)
				}
			}
			cfg, err := config.LoadFiles("", path)
			if err != nil {
				b.Fatal(err)
			}
			tree, err := Scan(context.Background(), tt.dir, cfg, image.Naming{Registry: cfg.Registry, Namespace: cfg.Namespace})
			if err != nil {
				b.Fatal(err)
			}
			render, err := tree.NewRender(cfg)
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				for _, img := range tree.Images {
					if _, _, err := render(b.Context(), img); err != nil {
						b.Fatal(fmt.Errorf("%s: %w", img.Name, err))
					}
				}
			}
			b.ReportMetric(float64(len(tree.Images)*b.N)/b.Elapsed().Seconds(), "templates/s")
		})
	}
}
