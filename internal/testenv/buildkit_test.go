package testenv_test

import (
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bkclient "github.com/moby/buildkit/client"

	"github.com/docker-pkg/docker-pkg/internal/testenv"
)

func workers(t *testing.T, c *bkclient.Client) []*bkclient.WorkerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ws, err := c.ListWorkers(ctx)
	if err != nil {
		t.Fatalf("listing workers: %v", err)
	}
	return ws
}

func TestBuildKit(t *testing.T) {
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	if !strings.HasPrefix(bk.Addr, "tcp://127.0.0.1:") || !strings.HasPrefix(bk.Socket, "unix:///") {
		t.Fatalf("addresses %q and %q, want tcp://127.0.0.1:PORT and unix:///PATH", bk.Addr, bk.Socket)
	}
	if bk.CA != "" || bk.ClientCert != "" || bk.ClientKey != "" {
		t.Errorf("TLS material without TLS: %q %q %q", bk.CA, bk.ClientCert, bk.ClientKey)
	}
	ws := workers(t, bk.Client(t))
	if len(ws) != 1 {
		t.Fatalf("%d workers, want the one OCI worker", len(ws))
	}
	w := ws[0]
	if got := w.Labels["org.mobyproject.buildkit.worker.executor"]; got != "oci" {
		t.Errorf("worker executor %q, want oci", got)
	}
	if got := w.BuildkitVersion.Version; got != testenv.BuildKitVersion {
		t.Errorf("buildkitd version %q, want %s", got, testenv.BuildKitVersion)
	}
	var names []string
	for _, p := range w.Platforms {
		names = append(names, p.OS+"/"+p.Architecture)
	}
	t.Logf("platforms: %s", strings.Join(names, ", "))
	if !slices.Contains(names, "linux/amd64") {
		t.Errorf("platforms %v lack linux/amd64", names)
	}
	if !strings.HasPrefix(w.Labels["org.mobyproject.buildkit.worker.snapshotter"], "overlay") {
		t.Logf("snapshotter %q", w.Labels["org.mobyproject.buildkit.worker.snapshotter"])
	}

	// The unix socket serves the same daemon.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	sc, err := bkclient.New(ctx, bk.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	if sws := workers(t, sc); len(sws) != 1 || sws[0].ID != w.ID {
		t.Errorf("the socket lists other workers than the TCP address")
	}
	if fi, err := os.Stat(bk.Root); err != nil || !fi.IsDir() {
		t.Errorf("state folder %s: %v", bk.Root, err)
	}
}

func TestBuildKitTwoAtOnce(t *testing.T) {
	var wg sync.WaitGroup
	bks := make([]*testenv.Buildkitd, 2)
	for i := range bks {
		wg.Go(func() { bks[i] = testenv.BuildKit(t, testenv.BuildKitOptions{}) })
	}
	wg.Wait()
	if t.Failed() || t.Skipped() {
		return
	}
	a, b := bks[0], bks[1]
	if a.Addr == b.Addr || a.Socket == b.Socket || a.Root == b.Root {
		t.Fatalf("two daemons share an address or state: %+v %+v", a, b)
	}
	wa, wb := workers(t, a.Client(t)), workers(t, b.Client(t))
	if wa[0].ID == wb[0].ID {
		t.Errorf("both daemons have worker %s", wa[0].ID)
	}
	// Killing one leaves the other serving.
	a.Kill()
	workers(t, b.Client(t))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	if c, err := bkclient.New(ctx, a.Addr); err == nil {
		_, err = c.ListWorkers(ctx)
		c.Close()
		if err == nil {
			t.Errorf("a killed buildkitd still answers on %s", a.Addr)
		}
	}
}

func TestBuildKitKillLeavesNothing(t *testing.T) {
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	u, err := url.Parse(bk.Addr)
	if err != nil {
		t.Fatal(err)
	}
	// buildkitd is the process with its state folder on its command line.
	pids := processesUsing(t, bk.Root)
	if len(pids) == 0 {
		t.Fatalf("no process has %s on its command line", bk.Root)
	}
	bk.Kill()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil && !zombie(pid) {
			t.Errorf("process %d is still alive after Kill", pid)
		}
	}
	if conn, err := net.DialTimeout("tcp", u.Host, time.Second); err == nil {
		conn.Close()
		t.Errorf("something still listens on %s", u.Host)
	}
	bk.Kill() // a second call does nothing
}

// processesUsing lists the processes with arg on their command line.
func processesUsing(t *testing.T, arg string) []int {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", "--", arg).Output()
	if err != nil {
		t.Fatalf("pgrep -f %s: %v", arg, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pgrep printed %q", f)
		}
		pids = append(pids, pid)
	}
	return pids
}

// zombie tells whether pid is gone or dead but not yet reaped.
func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func TestBuildKitTLS(t *testing.T) {
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{TLS: true})
	for _, f := range []string{bk.CA, bk.ClientCert, bk.ClientKey} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("TLS material: %v", err)
		}
	}
	tests := []struct {
		name string
		opts []bkclient.ClientOpt
		ok   bool
	}{
		{name: "with the client certificate", opts: bk.ClientOpts(), ok: true},
		{name: "without a client certificate", opts: []bkclient.ClientOpt{bkclient.WithServerConfig("127.0.0.1", bk.CA)}},
		{name: "plain text", opts: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			c, err := bkclient.New(ctx, bk.Addr, tt.opts...)
			if err == nil {
				defer c.Close()
				_, err = c.ListWorkers(ctx)
			}
			if tt.ok && err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatal("buildkitd served a client it should have refused")
			}
			if err != nil {
				t.Logf("refused: %v", err)
			}
		})
	}
}

// TestBuildKitKillMidRun kills buildkitd while a RUN step runs, as a
// builder lost mid-run: the build fails, the step's processes die with
// it, and the test's cleanup can remove the state (it fails the test
// otherwise).
func TestBuildKitKillMidRun(t *testing.T) {
	host, _ := testenv.Registry(t, testenv.RegistryOptions{})
	bk := testenv.BuildKit(t, testenv.BuildKitOptions{})
	base := testenv.BusyboxAmd64(t, bk, host, "dpkg-kill-mid-run")
	marker := strconv.Itoa(100000 + int(time.Now().UnixNano()%100000))
	dir := t.TempDir()
	dockerfile := "FROM " + base + "\nRUN sleep " + marker + "\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	solved := make(chan error, 1)
	go func() {
		solved <- testenv.Solve(t.Context(), bk.Client(t), dir, "", bkclient.ExportEntry{Type: bkclient.ExporterLocal, OutputDir: t.TempDir()})
	}()
	var step []int
	for deadline := time.Now().Add(time.Minute); len(step) == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the RUN step did not start within a minute")
		}
		select {
		case err := <-solved:
			t.Fatalf("the build ended before it was killed: %v", err)
		default:
		}
		out, _ := exec.Command("pgrep", "-f", "sleep "+marker).Output()
		for _, f := range strings.Fields(string(out)) {
			pid, _ := strconv.Atoi(f)
			step = append(step, pid)
		}
	}
	bk.Kill()
	select {
	case err := <-solved:
		if err == nil {
			t.Error("the build succeeded on a killed buildkitd")
		}
	case <-time.After(30 * time.Second):
		t.Error("the build did not end within 30s of its buildkitd being killed")
	}
	time.Sleep(100 * time.Millisecond) // let the kernel reap the step's processes
	for _, pid := range step {
		if err := syscall.Kill(pid, 0); err == nil && !zombie(pid) {
			t.Errorf("process %d of the RUN step is still alive after Kill", pid)
		}
	}
}
