package image

import (
	"bytes"
	"path/filepath"
	"slices"
	"testing"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
)

// TestBuildDaemonLinksInsideRepository builds an image folder whose files
// are symbolic links into the repository (run.sh -> ../common/run.sh,
// lib -> /abs/repo/common/lib) and one holding plain copies, with both
// builders: each gives the same files, modes and contents either way.
func TestBuildDaemonLinksInsideRepository(t *testing.T) {
	cli := testenv.Docker(t)
	base := testenv.Busybox(t, cli)
	root, linked, plain := linkRepo(t)
	df := []byte("FROM " + base + "\nCOPY run.sh /opt/x/run.sh\nCOPY lib /opt/x/lib/\nCOPY own.txt /opt/x/\nRUN /opt/x/run.sh > /opt/x/ran\n")
	for _, builder := range []string{"classic", "buildkit"} {
		t.Run(builder, func(t *testing.T) {
			var got [2][]string
			var gotFiles [2]map[string]string
			for i, dir := range []string{linked, plain} {
				var log bytes.Buffer
				img := daemonImage(t, cli, dir, &log)
				img.Repo += "-" + filepath.Base(dir)
				img.Root = root
				req := BuildRequest{Dockerfile: df, NoCache: true, Log: &log}
				var err error
				if builder == "classic" {
					_, err = build(t.Context(), cli, img, req)
				} else {
					_, err = buildKit(t.Context(), cli, img, req, nil)
				}
				if err != nil {
					t.Fatalf("building %s: %v\n%s", dir, err, log.String())
				}
				got[i] = filesIn(t, cli, img.Label(), "/opt/x")
				_, files := savedImage(t, cli, img.Label())
				gotFiles[i] = map[string]string{}
				for name, content := range files {
					if filepath.Dir(name) == "opt/x" || filepath.Dir(filepath.Dir(name)) == "opt/x" {
						gotFiles[i][name] = content
					}
				}
			}
			if !slices.Equal(got[0], got[1]) {
				t.Errorf("with links the image holds\n%q\nwith plain files\n%q", got[0], got[1])
			}
			want := []string{"x/ -rwxr-xr-x", "x/lib/ -rwxr-xr-x", "x/lib/a.txt -rw-r--r--", "x/lib/sub/ -rwxr-xr-x", "x/lib/sub/b.txt -rw-r--r--", "x/own.txt -rw-r--r--", "x/ran -rw-r--r--", "x/run.sh -rwxr-xr-x"}
			if !slices.Equal(got[0], want) {
				t.Errorf("image holds\n%q\nwant\n%q", got[0], want)
			}
			if len(gotFiles[0]) == 0 || !mapsEqual(gotFiles[0], gotFiles[1]) {
				t.Errorf("contents with links %q, with plain files %q", gotFiles[0], gotFiles[1])
			}
			if gotFiles[0]["opt/x/ran"] != "run\n" {
				t.Errorf("run.sh ran and said %q, want %q", gotFiles[0]["opt/x/ran"], "run\n")
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
