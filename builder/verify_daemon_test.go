package builder

import (
	"context"
	"crypto/rand"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/image"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
)

// codes is each image's state and reason code, as a plan says them.
func codes(p *Plan) map[string]string {
	out := map[string]string{}
	for _, e := range p.Entries {
		out[e.Image.Name] = string(e.State) + " " + string(e.Code)
	}
	return out
}

// TestBuildDaemonVerifyOutcomes builds images whose test passes, fails, or
// hangs past verify_timeout after starting a container: only the first
// counts as built afterwards; the others are kept as -failed and the next
// plan builds them again, saying why. The hung test's container is gone.
func TestBuildDaemonVerifyOutcomes(t *testing.T) {
	cli := testenv.Docker(t)
	log := &syncBuffer{}
	ns := daemonNamespace(t, cli, log)
	marker := "dpkg-verify-" + strings.ToLower(rand.Text()[:8])
	cfg := writeConfig(t, t.TempDir(), ns, map[string]any{"verify_timeout": 3})
	tree := daemonTree(t, cfg,
		execImage{name: "good", test: `echo fine`},
		execImage{name: "bad", test: `echo broken; exit 1`},
		execImage{name: "hung", test: `docker run --label "$DOCKER_PKG_VERIFY_LABEL" ` + ns + `/busybox:static sh -c 'sleep 1000' ` + marker + ` &
sleep 1000`},
	)
	b := builderFor(t, tree, cfg, WithEngine(cli), WithJobs(3), WithLog(log))
	plan, err := b.Plan(t.Context(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Build(t.Context(), plan, BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"good": "verified", "bad": "failed at verify", "hung": "failed at verify"}
	if got := outcomes(res); !reflect.DeepEqual(got, want) {
		t.Fatalf("outcomes %v, want %v\nlog:\n%s", got, want, log.String())
	}
	for _, ir := range res.Images {
		if ir.Image.Name == "hung" && (!errors.Is(ir.Err, image.ErrTimeout) || !strings.Contains(ir.Err.Error(), "verify timed out after 3 s")) {
			t.Errorf("hung: %v, want verify timed out after 3 s", ir.Err)
		}
	}
	if left := markerContainers(t, cli, marker); len(left) > 0 {
		t.Errorf("the hung test's containers are left: %v", left)
	}

	l := func(name, tag string) string { return ns + "/" + name + ":" + tag }
	wantTags := map[string]bool{
		l("good", "1.0-1"): true, l("good", "1.0-1-unverified"): false, l("good", "1.0-1-failed"): false,
		l("bad", "1.0-1"): false, l("bad", "1.0-1-unverified"): false, l("bad", "1.0-1-failed"): true,
		l("hung", "1.0-1"): false, l("hung", "1.0-1-failed"): true,
	}
	if got := exists(t, cli, slices.Collect(maps.Keys(wantTags))...); !reflect.DeepEqual(got, wantTags) {
		t.Errorf("tags %v\nwant %v", got, wantTags)
	}

	plan, err = b.Plan(t.Context(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantCodes := map[string]string{"good": "built built_locally", "bad": "to_build test_failed", "hung": "to_build test_failed"}
	if got := codes(plan); !reflect.DeepEqual(got, wantCodes) {
		t.Errorf("the next plan: %v\nwant %v", got, wantCodes)
	}
	for _, e := range plan.Entries {
		if e.Image.Name == "bad" && e.Reason != "its last build failed its test (kept as "+l("bad", "1.0-1-failed")+")" {
			t.Errorf("bad: reason %q", e.Reason)
		}
	}
	if got := chainNames(plan); !reflect.DeepEqual(got, []string{"bad", "hung"}) {
		t.Errorf("the next build chain: %v, want bad and hung again", got)
	}
}

// TestBuildDaemonVerifyInterrupted interrupts a run while an image is
// being tested: the image keeps its unverified mark, and the next plan
// builds it again.
func TestBuildDaemonVerifyInterrupted(t *testing.T) {
	cli := testenv.Docker(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	log := &syncBuffer{onWrite: func(s string) {
		if strings.Contains(s, "[slow] testing\n") {
			cancel()
		}
	}}
	ns := daemonNamespace(t, cli, log)
	cfg := writeConfig(t, t.TempDir(), ns, nil)
	tree := daemonTree(t, cfg, execImage{name: "slow", test: "echo testing; sleep 1000"})
	b := builderFor(t, tree, cfg, WithEngine(cli), WithLog(log))
	plan, err := b.Plan(t.Context(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Build(ctx, plan, BuildOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Build: %v, want context.Canceled\nlog:\n%s", err, log.String())
	}
	label := tree.Image("slow").Label()
	wantTags := map[string]bool{label: true, label + "-unverified": true}
	if got := exists(t, cli, label, label+"-unverified"); !reflect.DeepEqual(got, wantTags) {
		t.Errorf("tags %v, want %v", got, wantTags)
	}
	plan, err = b.Plan(t.Context(), PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := codes(plan), map[string]string{"slow": "to_build unverified"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the next plan: %v, want %v", got, want)
	}
}
