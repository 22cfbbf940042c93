package dockerfile

import (
	"errors"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
)

// BenchmarkRender renders testdata/*/realistic.template: FROM with
// image_tag, a block set with a filter, apt_install, add_user, if, uid.
// "cached" renders the same template again (the parse is reused); "parse"
// renders it under a new path each time, as a build of many images does.
func BenchmarkRender(b *testing.B) {
	for _, bm := range []struct {
		name, dialect string
		parse         bool
	}{
		{"jinja/cached", "jinja", false},
		{"jinja/parse", "jinja", true},
		{"go/cached", "go", false},
		{"go/parse", "go", true},
	} {
		b.Run(bm.name, func(b *testing.B) {
			r := newTestRenderer(b, "testdata/"+bm.dialect+"/config.yaml")
			src, err := os.ReadFile("testdata/" + bm.dialect + "/realistic.template")
			if err != nil {
				b.Fatal(err)
			}
			if _, err := r.Render(b.Context(), "Dockerfile.template", src); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				path := "Dockerfile.template"
				if bm.parse {
					i++
					path = strconv.Itoa(i) + "/Dockerfile.template"
				}
				if _, err := r.Render(b.Context(), path, src); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "templates/s")
		})
	}
}

// BenchmarkRenderParallel renders the same template from every CPU.
func BenchmarkRenderParallel(b *testing.B) {
	r := newTestRenderer(b, "testdata/jinja/config.yaml")
	src, err := os.ReadFile("testdata/jinja/realistic.template")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Render(b.Context(), "Dockerfile.template", src); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "templates/s")
}

// BenchmarkParseLarge parses templates at MaxTemplateSize. minijinja's
// lexer searches the rest of the template for every kind of tag at every
// tag, so parse time is tags x size: "tags-then-text" is the worst a
// template lexScan lets through, "all-tags" one it refuses (parsing it
// would take minutes).
func BenchmarkParseLarge(b *testing.B) {
	tags := func(n int) string { return strings.Repeat("{{ x }}\n", n) }
	fill := func(s string) string { return s + strings.Repeat("a", MaxTemplateSize-len(s)) }
	for _, bm := range []struct {
		name, src string
		refused   bool
	}{
		{"text", fill(""), false},
		{"tags-then-text", fill(tags(250)), false},
		{"all-tags", tags(MaxTemplateSize / 8), true},
	} {
		b.Run(bm.name, func(b *testing.B) {
			cfg, err := config.LoadFiles("", "testdata/jinja/config.yaml")
			if err != nil {
				b.Fatal(err)
			}
			j := newJinja(newHelpers(cfg, testImages, slog.New(slog.DiscardHandler)), cfg.Vars, DefaultMaxSteps)
			for b.Loop() {
				_, err := j.parse("Dockerfile.template", []byte(bm.src))
				if refused := errors.Is(err, ErrTooLarge); refused != bm.refused || err != nil && !refused {
					b.Fatalf("parse: %v, want refused=%v", err, bm.refused)
				}
			}
			b.ReportMetric(float64(lexScan(bm.src))/(1<<30), "GiB-scanned")
		})
	}
}
