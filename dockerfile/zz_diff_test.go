package dockerfile

import (
	"os"
	"path/filepath"
	"testing"
)

// Temporary: renders $DIFF_DIR/*.template for a differential check.
func TestDiffDump(t *testing.T) {
	dir := os.Getenv("DIFF_DIR")
	if dir == "" {
		t.Skip()
	}
	r := newTestRenderer(t, "testdata/jinja/config.yaml")
	files, _ := filepath.Glob(filepath.Join(dir, "*.template"))
	for _, f := range files {
		out, err := r.RenderFile(f)
		res := "OK " + string(out)
		if err != nil {
			res = "ERROR " + err.Error()
		}
		os.WriteFile(f+".go.out", []byte(res), 0o644)
	}
}
