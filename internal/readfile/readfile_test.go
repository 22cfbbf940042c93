package readfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	small := write("small", "hello\n")
	big := write("big", strings.Repeat("x", 100))
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(small, link); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path string
		want       string
		err        error
		says       string
	}{
		{"regular", small, "hello\n", nil, ""},
		{"a link to a regular file", link, "hello\n", nil, ""},
		{"too large", big, "", ErrTooLarge, "big: file too large: 100 bytes, at most 10 may be read"},
		{"a FIFO does not block", fifo, "", ErrNotRegular, "fifo: not a regular file: it is a FIFO"},
		{"a device is not read", zero, "", ErrNotRegular, "zero: not a regular file: it is a character device"},
		{"a folder", dir, "", ErrNotRegular, ": not a regular file: it is a folder"},
		{"missing", filepath.Join(dir, "nope"), "", os.ErrNotExist, "nope: no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan struct{})
			go func() {
				defer close(done)
				got, _, err := Read(tt.path, 10)
				if string(got) != tt.want || !errors.Is(err, tt.err) || tt.err == nil && err != nil ||
					err != nil && !strings.Contains(err.Error(), tt.says) {
					t.Errorf("Read(%s) = %q, %v; want %q, %v saying %q", tt.name, got, err, tt.want, tt.err, tt.says)
				}
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Read(%s) blocked", tt.name)
			}
		})
	}
}
