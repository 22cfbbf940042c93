package changelog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
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
			if got != tc.want {
				t.Errorf("Parse() = %+v, want %+v", got, tc.want)
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
