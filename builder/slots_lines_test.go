package builder

import (
	"bytes"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/image"
)

// TestPrefixWriterLongLine writes a 10 MB line in pieces: the log gets it
// cut to image.MaxLine bytes with the marker, and the writer never holds
// more than that.
func TestPrefixWriterLongLine(t *testing.T) {
	var out bytes.Buffer
	w := (&lineLog{w: &out}).writer("x")
	piece := bytes.Repeat([]byte("z"), 32<<10)
	const pieces = 320
	w.Write([]byte("before\n"))
	for range pieces {
		w.Write(piece)
	}
	w.Write([]byte("\nafter\nunfinished"))
	w.Close()
	want := "[x] before\n" +
		"[x] " + strings.Repeat("z", image.MaxLine) + image.CutMarker(pieces*len(piece)-image.MaxLine) + "\n" +
		"[x] after\n[x] unfinished\n"
	if got := out.String(); got != want {
		t.Errorf("log: %d bytes, want %d: %.60q...", len(got), len(want), got)
	}
}
