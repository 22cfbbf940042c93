package changelog

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const trailer = "\n  * Update.\n\n -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n"

func TestParse(t *testing.T) {
	const badHeader = `%s:%d: malformed changelog: header line must look like "name (version) distribution; urgency=..."`
	tests := []struct {
		name    string
		content string
		want    Entry
		wantErr string // with the file's path for %s
		errLine int
	}{
		{
			name:    "normal",
			content: "foo (0.1.2-1) wikimedia; urgency=high\n" + trailer,
			want:    Entry{Name: "foo", Version: "0.1.2-1"},
		},
		{
			name:    "epoch",
			content: "foo (1:2.3-1) wikimedia; urgency=high\n" + trailer,
			want:    Entry{Name: "foo", Version: "1:2.3-1"},
		},
		{
			name:    "tilde",
			content: "foo (1.0~rc1-1) wikimedia; urgency=high\n" + trailer,
			want:    Entry{Name: "foo", Version: "1.0~rc1-1"},
		},
		{
			name: "multiple entries, the top one wins",
			content: "foo (0.1.2-s2) wikimedia; urgency=high\n" + trailer + "\n" +
				"foo (0.1.2-s1) wikimedia; urgency=high\n" + trailer + "\n" +
				"bar (0.1.1) wikimedia; urgency=medium\n" + trailer,
			want: Entry{Name: "foo", Version: "0.1.2-s2"},
		},
		{
			// dpkg-parsechangelog warns and goes on.
			name:    "leading blank lines",
			content: "\n  \n\t\nfoo-bar (0.1.2) wikimedia; urgency=high\n" + trailer,
			want:    Entry{Name: "foo-bar", Version: "0.1.2"},
		},
		{
			// As the reference wrote them: pault.ag/go/debian/changelog
			// rejects this date.
			name:    "space-padded day in the trailer",
			content: "foo (0.1.2-s1) wikimedia; urgency=high\n\n   Security update\n\n -- A <a@b>  Mon,  5 Jan 2026 10:00:00 +0100\n\n",
			want:    Entry{Name: "foo", Version: "0.1.2-s1"},
		},
		{
			name:    "CRLF line endings",
			content: "foo (1.0) wikimedia; urgency=high\r\n\r\n  * x\r\n",
			want:    Entry{Name: "foo", Version: "1.0"},
		},
		{
			name:    "header alone without a newline",
			content: "foo (1.0) unstable experimental; urgency=low",
			want:    Entry{Name: "foo", Version: "1.0"},
		},
		{
			// python-debian, used by the reference, accepts it; dpkg warns.
			name:    "version starting with a letter",
			content: "foo (v1.0) wikimedia; urgency=high\n" + trailer,
			want:    Entry{Name: "foo", Version: "v1.0"},
		},
		{
			name:    "empty",
			content: "",
			wantErr: "%s: malformed changelog: empty changelog",
		},
		{
			name:    "blank lines only",
			content: "\n \n\t\n\n",
			wantErr: "%s: malformed changelog: empty changelog",
		},
		{
			name:    "garbage first line",
			content: "this is not a changelog\nfoo (1.0) wikimedia; urgency=high\n" + trailer,
			wantErr: badHeader,
			errLine: 1,
		},
		{
			name:    "missing version parentheses",
			content: "foo 1.0 wikimedia; urgency=high\n" + trailer,
			wantErr: badHeader,
			errLine: 1,
		},
		{
			name:    "missing distribution",
			content: "foo (1.0); urgency=high\n" + trailer,
			wantErr: badHeader,
			errLine: 1,
		},
		{
			name:    "missing semicolon",
			content: "foo (1.0) wikimedia urgency=high\n" + trailer,
			wantErr: badHeader,
			errLine: 1,
		},
		{
			name:    "garbage after leading blank lines names its line",
			content: "\n\n * entry without a header\n",
			wantErr: badHeader,
			errLine: 3,
		},
		{
			name:    "invalid version",
			content: "foo (1.0_1) wikimedia; urgency=high\n" + trailer,
			wantErr: `%s:%d: malformed changelog: invalid version "1.0_1"`,
			errLine: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "changelog")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Parse(path)
			if tc.wantErr != "" {
				want := fmt.Sprintf(tc.wantErr, path, tc.errLine)
				if tc.errLine == 0 {
					want = fmt.Sprintf(tc.wantErr, path)
				}
				if err == nil || err.Error() != want {
					t.Fatalf("Parse() = %+v, %v; want error %q", got, err, want)
				}
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("error %v does not match ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(): %v", err)
			}
			if got.Name != tc.want.Name || got.Version != tc.want.Version {
				t.Errorf("Parse() = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDate(t *testing.T) {
	tests := []struct {
		name, content string
		want          string // RFC 3339; "" for none
	}{
		{"date -R", "foo (1.0) wikimedia; urgency=high\n" + trailer, "2026-01-05T10:00:00+01:00"},
		{"space-padded day, as the reference wrote", "foo (1.0) wikimedia; urgency=high\n\n  * x\n\n -- A <a@b>  Mon,  5 Jan 2026 10:00:00 +0100\n", "2026-01-05T10:00:00+01:00"},
		{"CRLF", "foo (1.0) w; urgency=high\r\n\r\n  * x\r\n\r\n -- A <a@b>  Mon, 05 Jan 2026 10:00:00 +0000\r\n", "2026-01-05T10:00:00Z"},
		{"no trailer, next entry", "foo (1.1) w; urgency=high\n\n  * x\n\nfoo (1.0) w; urgency=high\n" + trailer, ""},
		{"bad date", "foo (1.0) w; urgency=high\n\n -- A <a@b>  yesterday\n", ""},
		{"header alone", "foo (1.0) w; urgency=high", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "changelog")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Date(path)
			if err != nil {
				t.Fatal(err)
			}
			s := ""
			if !got.IsZero() {
				s = got.Format(time.RFC3339)
			}
			if s != tc.want {
				t.Errorf("Date = %q, want %q", s, tc.want)
			}
		})
	}
}

func TestParseMissingFile(t *testing.T) {
	_, err := Parse(filepath.Join(t.TempDir(), "changelog"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrMalformed) {
		t.Fatalf("Parse() error = %v, want a not-exist error that is not ErrMalformed", err)
	}
}

// Parse reads only a regular file of at most MaxSize bytes, and says what
// is wrong with anything else without blocking on it or reading it.
func TestParseNotRegular(t *testing.T) {
	tests := []struct {
		name string
		make func(t *testing.T, path string)
		want error
		msg  string
	}{
		{name: "a folder", make: func(t *testing.T, p string) { os.Mkdir(p, 0o755) }, want: ErrNotRegular, msg: "it is a folder"},
		{name: "a FIFO", make: func(t *testing.T, p string) {
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: ErrNotRegular, msg: "it is a FIFO"},
		{name: "a link to /dev/zero", make: func(t *testing.T, p string) {
			if err := os.Symlink("/dev/zero", p); err != nil {
				t.Fatal(err)
			}
		}, want: ErrNotRegular, msg: "changelog: not a regular file: it is a character device"},
		{name: "over MaxSize", make: func(t *testing.T, p string) {
			writeFile(t, p, "foo (1.0) wikimedia; urgency=high\n", 0o644)
			if err := os.Truncate(p, MaxSize+1); err != nil {
				t.Fatal(err)
			}
		}, want: ErrTooLarge, msg: "1048577 bytes, at most 1048576"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "changelog")
			tc.make(t, path)
			_, err := Parse(path)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) || errors.Is(err, ErrMalformed) {
				t.Fatalf("Parse() error = %v, want %v saying %q", err, tc.want, tc.msg)
			}
		})
	}
	// At MaxSize exactly it is read.
	path := writeFile(t, filepath.Join(t.TempDir(), "changelog"), "foo (1.0) wikimedia; urgency=high\n", 0o644)
	if err := os.Truncate(path, MaxSize); err != nil {
		t.Fatal(err)
	}
	if e, err := Parse(path); err != nil || e.Version != "1.0" {
		t.Errorf("Parse() of MaxSize bytes = %+v, %v", e, err)
	}
}

// Under `ulimit -v` a read without bound would die of it: a changelog
// linked to /dev/zero, or an 8 GiB (sparse) file, must be refused by Parse
// and by Stage without reading it.
func TestReadBoundedUnderUlimit(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector cannot run under ulimit -v")
	}
	dir := t.TempDir()
	zero := filepath.Join(dir, "zero", "changelog")
	os.MkdirAll(filepath.Dir(zero), 0o755)
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	huge := writeFile(t, filepath.Join(dir, "huge", "changelog"), "foo (1.0) wikimedia; urgency=high\n", 0o644)
	if err := os.Truncate(huge, 8<<30); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd := helperCmd(t, "read", 1<<20 /* KiB: 1 GiB of address space */, dir, zero, huge)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper under ulimit -v: %v\n%s%s", err, out, stderr.String())
	}
	for _, want := range []string{
		"parse changelog: reading changelog: " + zero + ": not a regular file: it is a character device",
		"stage changelog: reading changelog " + zero + ": /dev/zero: not a regular file: it is a character device",
		"parse changelog: reading changelog: " + huge + ": file too large: 8589934592 bytes",
		"stage changelog: reading changelog: " + huge + ": file too large: 8589934592 bytes",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("helper printed\n%s\nwant a line with %q", out, want)
		}
	}
}
