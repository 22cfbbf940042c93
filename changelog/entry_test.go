package changelog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func ExampleNewEntry_Format() {
	e := NewEntry{
		Name:         "php",
		Version:      "8.3.33-1-s1",
		Distribution: "wikimedia",
		Reason:       "Refresh for update in parent image bookworm:\nSecurity update",
		Author:       "Jane Doe",
		Email:        "jane@example.org",
		Date:         time.Date(2026, time.January, 5, 10, 0, 0, 0, time.FixedZone("CET", 3600)),
	}
	fmt.Printf("%q\n", e.Format())
	fmt.Print(string(e.Format()))
	// Output:
	// "php (8.3.33-1-s1) wikimedia; urgency=high\n\n   Refresh for update in parent image bookworm:\n   Security update\n\n -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100\n\n"
	// php (8.3.33-1-s1) wikimedia; urgency=high
	//
	//    Refresh for update in parent image bookworm:
	//    Security update
	//
	//  -- Jane Doe <jane@example.org>  Mon, 05 Jan 2026 10:00:00 +0100
}

func TestFormatRoundTrip(t *testing.T) {
	e := NewEntry{
		Name: "foo", Version: "1.0-s1", Distribution: "wikimedia", Reason: "Security update\n",
		Author: "A", Email: "a@b", Date: time.Date(2026, time.August, 16, 23, 59, 1, 0, time.UTC),
	}
	want := "foo (1.0-s1) wikimedia; urgency=high\n\n   Security update\n\n -- A <a@b>  Sun, 16 Aug 2026 23:59:01 +0000\n\n"
	if got := string(e.Format()); got != want {
		t.Fatalf("Format() = %q, want %q", got, want)
	}
	path := filepath.Join(t.TempDir(), "changelog")
	if err := os.WriteFile(path, e.Format(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(path)
	date, derr := Date(path)
	if err != nil || derr != nil || got.Name != "foo" || got.Version != "1.0-s1" || !date.Equal(e.Date) {
		t.Fatalf("Parse(Format()) = %+v, %v", got, err)
	}
}

func TestMaintainer(t *testing.T) {
	tests := []struct {
		name                string
		env                 map[string]string
		gitConfig           string // contents of the global git config
		wantName, wantEmail string
	}{
		{
			name:      "nothing known: fallbacks",
			wantName:  "Author",
			wantEmail: "email@domain",
		},
		{
			name:      "environment wins over git",
			env:       map[string]string{"DEBFULLNAME": "Deb Name", "DEBEMAIL": "deb@example.org"},
			gitConfig: "[user]\n\tname = Git Name\n\temail = git@example.org\n",
			wantName:  "Deb Name",
			wantEmail: "deb@example.org",
		},
		{
			name:      "git when the environment is empty",
			gitConfig: "[user]\n\tname = Git Name\n\temail = git@example.org\n",
			wantName:  "Git Name",
			wantEmail: "git@example.org",
		},
		{
			name:      "each looked up on its own",
			env:       map[string]string{"DEBFULLNAME": "Deb Name"},
			gitConfig: "[user]\n\tname = Git Name\n",
			wantName:  "Deb Name",
			wantEmail: "email@domain",
		},
		{
			name:      "only the email known",
			gitConfig: "[user]\n\temail = git@example.org\n",
			wantName:  "Author",
			wantEmail: "git@example.org",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hermeticGit(t, tc.gitConfig)
			t.Setenv("DEBFULLNAME", tc.env["DEBFULLNAME"])
			t.Setenv("DEBEMAIL", tc.env["DEBEMAIL"])
			name, email := Maintainer(t.Context(), "Author", "email@domain")
			if name != tc.wantName || email != tc.wantEmail {
				t.Errorf("Maintainer() = %q, %q; want %q, %q", name, email, tc.wantName, tc.wantEmail)
			}
		})
	}
}

// hermeticGit points git at a global config holding only config, no system
// config, and a working directory outside any repository.
func hermeticGit(t *testing.T, config string) {
	t.Helper()
	dir := t.TempDir()
	global := filepath.Join(dir, "gitconfig")
	if err := os.WriteFile(global, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GIT_CONFIG_GLOBAL", global)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("HOME", dir)
	t.Setenv("XDG_CONFIG_HOME", dir)
	t.Setenv("GIT_CEILING_DIRECTORIES", dir)
	t.Chdir(dir)
}

// A git that hangs is stopped with ctx: the fallback applies. Were ctx
// ignored, git would answer after its sleep and its name would win.
func TestMaintainerContext(t *testing.T) {
	hermeticGit(t, "")
	bin := t.TempDir()
	git := "#!/bin/sh\n/bin/sleep 20\necho 'Late Git'\n"
	if err := os.WriteFile(filepath.Join(bin, "git"), []byte(git), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
	t.Setenv("DEBFULLNAME", "")
	t.Setenv("DEBEMAIL", "")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	name, email := Maintainer(ctx, "Author", "email@domain")
	if name != "Author" || email != "email@domain" {
		t.Errorf("Maintainer() = %q, %q; want the fallbacks", name, email)
	}
}

func TestCheckReason(t *testing.T) {
	tests := []struct {
		name, reason, wantErr string
	}{
		{name: "one line", reason: "Security update"},
		{name: "several lines", reason: "CVE-2026-1\nCVE-2026-2\n"},
		{name: "tab", reason: "CVE-2026-1\tlibfoo"},
		{name: "pasted with CRLF", reason: "CVE-2026-1\r\nCVE-2026-2\r\n"},
		{name: "UTF-8", reason: "Mise à jour de sécurité \uFFFD"},
		{name: "empty", reason: "", wantErr: "invalid reason: it is empty"},
		{name: "white space only", reason: " \n\t ", wantErr: "invalid reason: it is empty"},
		{name: "escape sequence", reason: "fixed\n\x1b[2J", wantErr: "invalid reason: line 2 holds the control character U+001B; only newline and tab are allowed"},
		{name: "NUL", reason: "a\x00b", wantErr: "line 1 holds the control character U+0000"},
		{name: "lone carriage return", reason: "a\rb", wantErr: "line 1 holds the control character U+000D"},
		{name: "DEL", reason: "a\x7f", wantErr: "U+007F"},
		{name: "C1 control", reason: "a\u009bb", wantErr: "U+009B"},
		{name: "bidi override", reason: "a\u202eb", wantErr: "U+202E"},
		{name: "bidi isolate", reason: "a\u2066b", wantErr: "U+2066"},
		{name: "not UTF-8", reason: "caf\xe9", wantErr: "invalid reason: line 1 is not valid UTF-8 (byte 0xe9)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckReason(tc.reason)
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("CheckReason(%q) = %v", tc.reason, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, ErrInvalidReason) {
				t.Errorf("CheckReason(%q) = %v, want %q", tc.reason, err, tc.wantErr)
			}
		})
	}
}
