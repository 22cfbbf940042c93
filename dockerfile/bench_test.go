package dockerfile

import (
	"os"
	"strconv"
	"testing"
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
			if _, err := r.Render("Dockerfile.template", src); err != nil {
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
				if _, err := r.Render(path, src); err != nil {
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
			if _, err := r.Render("Dockerfile.template", src); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "templates/s")
}
