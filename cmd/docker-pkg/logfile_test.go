package main

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestStampWriter(t *testing.T) {
	at := time.Date(2026, 1, 5, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	var buf bytes.Buffer
	w := &stampWriter{w: &buf, now: func() time.Time { at = at.Add(time.Second); return at }}
	for _, s := range []string{"[core] one\n[core] two\n", "[app] par", "tial\n", "", "[app] last\n"} {
		if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	want := "2026-01-05T10:00:01+01:00 [core] one\n" +
		"2026-01-05T10:00:02+01:00 [core] two\n" +
		"2026-01-05T10:00:03+01:00 [app] partial\n" +
		"2026-01-05T10:00:04+01:00 [app] last\n"
	if buf.String() != want {
		t.Errorf("log\n%s\nwant\n%s", buf.String(), want)
	}
}

// TestBuildLogFile opens the log as build does: created with the umask's
// mode, every line stamped, slog's lines without a second time.
func TestBuildLogFile(t *testing.T) {
	t.Chdir(t.TempDir())
	old := syscall.Umask(0o027)
	defer syscall.Umask(old)
	g := &globals{}
	w, logger, closeLog, err := g.buildLog(&bytes.Buffer{}, false)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("[core] Step 1/2 : FROM x\n"))
	logger.Info("loaded image", "name", "core")
	if err := closeLog(); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o640 {
		t.Errorf("log file mode %v, want 0640 (0666 less the umask 027)", got)
	}
	data, err := os.ReadFile(filepath.Join(".", logFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("log has %d lines, want 2:\n%s", len(lines), data)
	}
	for _, line := range lines {
		stamp, rest, _ := bytes.Cut(line, []byte(" "))
		if _, err := time.Parse(time.RFC3339, string(stamp)); err != nil {
			t.Errorf("line %q does not start with an RFC 3339 time", line)
		}
		if bytes.Contains(rest, []byte("time=")) {
			t.Errorf("line %q has its time twice", line)
		}
	}
}
