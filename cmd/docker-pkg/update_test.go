package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestUpdateDryRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "images")
	if err := os.CopyFS(dir, os.DirFS("../../fixtures/images")); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(dir, "app", "changelog"))
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DEBFULLNAME", "Jane Doe")
	t.Setenv("DEBEMAIL", "jane@example.org")
	stdout, _, err := run(t, "update", "--dry-run", "--reason", "CVE-2026-1", "app", dir)
	if err != nil {
		t.Fatal(err)
	}
	// The date is now: check its shape, then the rest exactly.
	date := regexp.MustCompile(`>  [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [-+]\d{4}\n`)
	if n := len(date.FindAllString(stdout, -1)); n != 2 {
		t.Errorf("%d RFC 2822 dates in the output, want 2:\n%s", n, stdout)
	}
	got := date.ReplaceAllString(stdout, ">  DATE\n")
	want := `* app 1.0-3 -> 1.0-3-s1
* app-plugin 0.1.0-1 -> 0.1.0-1-s1

--- ` + filepath.Join(dir, "app", "changelog") + `
app (1.0-3-s1) wikimedia; urgency=high

   CVE-2026-1

 -- Jane Doe <jane@example.org>  DATE

--- ` + filepath.Join(dir, "app", "plugins", "app-plugin", "changelog") + `
app-plugin (0.1.0-1-s1) wikimedia; urgency=high

   Refresh for update in parent image app:
   CVE-2026-1

 -- Jane Doe <jane@example.org>  DATE

Dry run: nothing written.
`
	if got != want {
		t.Errorf("update --dry-run printed\n%s\nwant\n%s", got, want)
	}
	after, err := os.ReadFile(filepath.Join(dir, "app", "changelog"))
	if err != nil || string(after) != string(before) {
		t.Errorf("the dry run changed app/changelog: %v", err)
	}
}

func TestUpdateArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "no name", args: []string{"update", "dir"}, wantErr: "give NAME and DIR, or --select GLOB and DIR (got 1 arguments)"},
		{name: "name and select", args: []string{"update", "--select", "*", "core", "dir"}, wantErr: "with --select, give only DIR (got 2 arguments)"},
		{name: "version and select", args: []string{"update", "--select", "*", "--version", "2", "dir"}, wantErr: "--version applies to NAME; it cannot be used with --select"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(t, tc.args...)
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("error = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
