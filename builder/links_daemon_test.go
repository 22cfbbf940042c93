package builder

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
)

// TestBuildDaemonLinks builds a tree whose image uses a file of the
// repository through a symbolic link (run.sh -> ../shared/run.sh), then
// shows that a link out of the repository, or to nothing, stops the whole
// build before any image is built, naming the link and its target.
func TestBuildDaemonLinks(t *testing.T) {
	cli := testenv.Docker(t)
	log := &syncBuffer{}
	ns := daemonNamespace(t, cli, log)
	cfg := writeConfig(t, t.TempDir(), ns, nil)
	tree := daemonTree(t, cfg,
		execImage{name: "first", body: "RUN echo first > /first.txt"},
		execImage{name: "linked", body: "COPY run.sh /run.sh\nRUN test \"$(sh /run.sh)\" = shared"},
	)
	shared := filepath.Join(tree.Dir, "shared")
	if err := os.MkdirAll(shared, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(shared, "run.sh"), []byte("echo shared\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	linked := tree.Image("linked")
	if err := os.Symlink("../shared/run.sh", filepath.Join(linked.Dir, "run.sh")); err != nil {
		t.Fatal(err)
	}
	b := builderFor(t, tree, cfg, WithEngine(cli), WithJobs(2), WithLog(log))
	plan, err := b.Plan(t.Context(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Build(t.Context(), plan, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := outcomes(res); got["linked"] != "verified" || got["first"] != "verified" {
		t.Fatalf("outcomes %v\nlog:\n%s", got, log.String())
	}

	for _, target := range []string{"/etc/shadow", "../../..", "../shared/gone.sh"} {
		t.Run(target, func(t *testing.T) {
			bad := filepath.Join(linked.Dir, "bad")
			os.Remove(bad)
			if err := os.Symlink(target, bad); err != nil {
				t.Fatal(err)
			}
			defer os.Remove(bad)
			for _, img := range tree.Images {
				cli.ImageRemove(t.Context(), img.Label(), client.ImageRemoveOptions{Force: true})
			}
			plan, err := b.Plan(t.Context(), PlanOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(plan.Chain()); n != 2 {
				t.Fatalf("plan builds %d images, want 2", n)
			}
			res, err := b.Build(t.Context(), plan, BuildOptions{})
			if res != nil || !errors.Is(err, image.ErrLink) {
				t.Fatalf("Build() = %v, %v; want no result and ErrLink", res, err)
			}
			for _, s := range []string{bad, target} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %q", err, s)
				}
			}
			for _, img := range tree.Images {
				if _, err := cli.ImageInspect(t.Context(), img.Label()); err == nil {
					t.Errorf("%s was built", img.Label())
				}
			}
		})
	}
}
