package image

import (
	"fmt"
	"unicode/utf8"
)

// MaxLine is the most bytes of one line of output (a build's, a test's)
// that docker-pkg keeps, in memory, in the log and on the screen: the
// rest of a longer line is replaced by a "... (N bytes cut)" marker. A
// test that prints 100 MB without a newline costs 8 KiB, not 100 MB.
const MaxLine = 8 << 10

// markerRoom is the most bytes a cut marker takes: a line cut once is not
// cut again.
const markerRoom = 40

// CutLine returns line cut to MaxLine bytes, at a character boundary,
// followed by the cut marker; a line within MaxLine bytes plus the room
// of a marker is returned as it is.
func CutLine(line string) string {
	if len(line) <= MaxLine+markerRoom {
		return line
	}
	kept := wholeRunes(line[:MaxLine])
	return line[:kept] + CutMarker(len(line)-kept)
}

// CutMarker is what stands for n bytes cut from the end of a line.
func CutMarker(n int) string {
	return fmt.Sprintf("... (%d bytes cut)", n)
}

// wholeRunes is the length of the longest prefix of s that does not end
// in the middle of a character.
func wholeRunes(s string) int {
	for i := len(s) - 1; i >= 0 && i >= len(s)-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			if utf8.FullRuneInString(s[i:]) {
				return len(s)
			}
			return i
		}
	}
	return len(s)
}

// LineBuffer holds the unfinished last line of a stream, at most MaxLine
// bytes of it, and counts the bytes beyond. The zero value is empty.
type LineBuffer struct {
	part []byte
	cut  int
}

// Add appends p, which holds no newline, to the unfinished line.
func (b *LineBuffer) Add(p []byte) {
	room := max(MaxLine-len(b.part), 0)
	if len(p) > room {
		b.cut += len(p) - room
		p = p[:room]
	}
	b.part = append(b.part, p...)
}

// Empty says whether the unfinished line has no byte yet.
func (b *LineBuffer) Empty() bool { return len(b.part) == 0 && b.cut == 0 }

// String is the unfinished line so far, with the cut marker when bytes
// were cut.
func (b *LineBuffer) String() string {
	s := string(b.part)
	if b.cut == 0 {
		return s
	}
	kept := wholeRunes(s)
	return s[:kept] + CutMarker(b.cut+len(s)-kept)
}

// Reset empties the buffer for the next line.
func (b *LineBuffer) Reset() {
	b.part = b.part[:0]
	b.cut = 0
}
