package image

import (
	"bytes"
	"strings"
	"testing"
)

func TestCutLine(t *testing.T) {
	long := strings.Repeat("x", MaxLine+100)
	tests := []struct {
		name string
		line string
		want string
	}{
		{name: "short", line: "abc", want: "abc"},
		{name: "at the limit", line: long[:MaxLine], want: long[:MaxLine]},
		{name: "too long", line: long, want: long[:MaxLine] + "... (100 bytes cut)"},
		{
			// é is two bytes: the cut does not split it.
			name: "cut between characters",
			line: long[:MaxLine-1] + "é" + long[:100],
			want: long[:MaxLine-1] + "... (102 bytes cut)",
		},
		{name: "cut once only", line: CutLine(long), want: CutLine(long)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CutLine(tt.line); got != tt.want {
				t.Errorf("CutLine: %d bytes ending %q, want %d bytes ending %q", len(got), got[max(len(got)-30, 0):], len(tt.want), tt.want[max(len(tt.want)-30, 0):])
			}
		})
	}
}

// TestTailLongLine writes a 10 MB line in 32 KiB pieces, as the test's
// output arrives: the tail keeps MaxLine bytes of it and says how much
// it cut.
func TestTailLongLine(t *testing.T) {
	tl := &tail{w: discardWriter{}}
	piece := bytes.Repeat([]byte("y"), 32<<10)
	const pieces = 320
	for range pieces {
		tl.Write(piece)
	}
	tl.Write([]byte("\nlast\n"))
	lines := tl.Lines()
	want := strings.Repeat("y", MaxLine) + CutMarker(pieces*len(piece)-MaxLine)
	if len(lines) != 2 || lines[0] != want || lines[1] != "last" {
		t.Fatalf("lines: %d of them, the first %d bytes; want the first cut to %d bytes and \"last\"", len(lines), len(lines[0]), len(want))
	}
	if c := cap(tl.part.part); c > 2*MaxLine {
		t.Errorf("the tail holds %d bytes for an unfinished line, want at most %d", c, 2*MaxLine)
	}
}

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
