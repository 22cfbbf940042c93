package builder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/image"
)

func TestScanNotAFile(t *testing.T) {
	tests := []struct {
		name    string
		tree    []map[string]string
		dirs    []string // folders to make, relative to the root
		scan    string   // what to scan, relative to the root; "" for the root
		wantErr string   // ROOT stands for the root
		wantOK  []string // else: the images found
	}{
		{
			name:    "changelog is a folder",
			tree:    []map[string]string{{"a/Dockerfile.template": "FROM scratch\n"}, img("b", "b", "1.0", "", "FROM scratch\n")},
			dirs:    []string{"a/changelog"},
			wantErr: "ROOT/a/changelog: is a folder: an image's changelog must be a file",
		},
		{
			name:    "template is a folder",
			tree:    []map[string]string{{"a/changelog": entry("a", "1.0")}},
			dirs:    []string{"a/Dockerfile.template"},
			wantErr: "ROOT/a/Dockerfile.template: is a folder: an image's Dockerfile.template must be a file",
		},
		{
			// docs/changelog/ beside no template is no image, and no
			// warning; an image inside it is still found.
			name:   "a folder named changelog elsewhere",
			tree:   []map[string]string{img("docs/changelog/c", "c", "1.0", "", "FROM scratch\n")},
			dirs:   []string{"docs/changelog"},
			wantOK: []string{"c"},
		},
		{
			name:    "DIR is a file",
			tree:    []map[string]string{img("a", "a", "1.0", "", "FROM scratch\n")},
			scan:    "a/changelog",
			wantErr: "scanning ROOT/a/changelog: not a directory: give the folder that holds the image folders",
		},
		{
			name:    "DIR does not exist",
			scan:    "nowhere",
			wantErr: "scanning ROOT/nowhere: stat ROOT/nowhere: no such file or directory",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := writeTree(t, tt.tree...)
			for _, d := range tt.dirs {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			tree, err := scanTree(t.Context(), filepath.Join(root, tt.scan), testConfig(), image.Naming{})
			if tt.wantErr != "" {
				got := strings.ReplaceAll(fmt.Sprint(err), root, "ROOT")
				if got != tt.wantErr {
					t.Errorf("error %q\nwant  %q", got, tt.wantErr)
				}
				if tt.scan != "nowhere" && !errors.Is(err, ErrNotDir) && !errors.Is(err, ErrIsDir) {
					t.Errorf("error %v matches neither ErrNotDir nor ErrIsDir", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := names(tree.Images); fmt.Sprint(got) != fmt.Sprint(tt.wantOK) || len(tree.Warnings) > 0 {
				t.Errorf("images %v, warnings %v; want %v and none", got, warnings(tree, root), tt.wantOK)
			}
		})
	}
}

// TestScanCancelledWhileBlocked makes every read of an image folder block,
// as on a hung network file system (a named pipe no longer does: each file
// is read without waiting for a writer): a cancel must end the scan all
// the same.
func TestScanCancelledWhileBlocked(t *testing.T) {
	root := writeTree(t, img("a", "a", "1.0", "", "FROM scratch\n"), img("b", "b", "1.0", "", "FROM scratch\n"))
	reading := make(chan struct{}, 2)
	release := make(chan struct{})
	defer close(release) // then the blocked reads end
	blocked := func(dir, root string, present image.Present, n image.Naming, engine string) scanned {
		reading <- struct{}{}
		<-release
		return load(dir, root, present, n, engine)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := scanWith(ctx, root, testConfig(), image.Naming{}, false, false, slog.New(slog.DiscardHandler), blocked)
		done <- err
	}()
	select {
	case <-reading:
	case err := <-done:
		t.Fatalf("the scan ended before reading: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("scan: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the scan went on blocking after the cancel")
	}
}

// TestScanWalkCancelled cancels a scan of a tree before its walk ends:
// the walk stops there rather than reading the rest of the tree.
func TestScanWalkCancelled(t *testing.T) {
	root := writeTree(t, img("a", "a", "1.0", "", "FROM scratch\n"))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := walk(ctx, root, func(string, image.Present) { t.Error("walk went on after the cancel") })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("walk: %v, want context.Canceled", err)
	}
}
