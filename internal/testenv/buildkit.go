package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
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
)

// BuildKitVersion is the buildkitd the tests run: the version of
// github.com/moby/buildkit in go.mod, so daemon and client match.
const BuildKitVersion = "v0.34.2"

// BuildKitOptions says how to start a buildkitd.
type BuildKitOptions struct {
	// TLS serves the TCP address with mutual TLS: buildkitd presents a
	// certificate for 127.0.0.1 and requires a client certificate, both
	// signed by a CA made for this one daemon (Buildkitd.CA, ClientCert,
	// ClientKey). The unix socket stays plain. Default: plain TCP.
	TLS bool
}

// Buildkitd is a buildkitd process started for one test, with its own
// state; the test's cleanup kills it.
type Buildkitd struct {
	// Addr is its TCP address, tcp://127.0.0.1:PORT.
	Addr string
	// Socket is its unix socket, unix:///PATH, always without TLS.
	Socket string
	// Root is its state folder (--root), fresh for each daemon.
	Root string
	// Log is the file its stdout and stderr go to.
	Log string
	// With BuildKitOptions.TLS, the PEM files a client presents to Addr:
	// the CA that signed the server's and the client's certificate, and
	// the client's certificate and key. Empty without TLS.
	CA, ClientCert, ClientKey string

	cmd          *exec.Cmd
	cgroupParent string
	exited       chan struct{}
	kill         sync.Once
	cleanup      sync.Once
}

// BuildKit starts a buildkitd (the OCI worker, runc, host networking) on
// 127.0.0.1 and a free port and on a unix socket, with a fresh state
// folder, and waits until it lists its workers. The binary is built once
// per machine into the user cache folder (minutes the first time). Without
// the binary or a running daemon the test is skipped, or fails under CI=true.
// Several may run side by side.
func BuildKit(t testing.TB, opts BuildKitOptions) *Buildkitd {
	t.Helper()
	bin, err := buildkitBinaries()
	if err != nil {
		Require(t, false, "no buildkitd binary: "+err.Error())
	}
	// The port is chosen then released before buildkitd binds it, so
	// another process may take it first: try a few.
	var last error
	for range 3 {
		b, err := startBuildkitd(t, filepath.Join(bin, "buildkitd"), opts)
		if err == nil {
			return b
		}
		last = err
	}
	Require(t, false, "cannot start buildkitd: "+last.Error())
	return nil
}

// Client returns a client for b's TCP address, with the TLS material when
// b has it, closed when the test ends.
func (b *Buildkitd) Client(t testing.TB) *bkclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := bkclient.New(ctx, b.Addr, b.ClientOpts()...)
	if err != nil {
		t.Fatalf("connecting to buildkitd at %s: %v", b.Addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ClientOpts are the options a client needs for Addr: the CA and client
// certificate with TLS, none without.
func (b *Buildkitd) ClientOpts() []bkclient.ClientOpt {
	if b.CA == "" {
		return nil
	}
	return []bkclient.ClientOpt{
		bkclient.WithServerConfig("127.0.0.1", b.CA),
		bkclient.WithCredentials(b.ClientCert, b.ClientKey),
	}
}

// Kill ends buildkitd and everything it started with SIGKILL at once, as a
// builder lost mid-run would end, and waits until it is gone. Its state
// stays until the test ends. Calling it again does nothing.
func (b *Buildkitd) Kill() {
	b.kill.Do(func() {
		// runc and the containers of RUN steps may leave the process
		// group (runc init calls setsid): kill them by ancestry too,
		// found before buildkitd dies and they are reparented.
		pids := descendants(b.cmd.Process.Pid)
		syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		<-b.exited
	})
}

// remove kills b and removes its state and socket folder, unmounting
// first what a killed RUN step may have left mounted there.
func (b *Buildkitd) remove(t testing.TB, dir string) {
	b.cleanup.Do(func() {
		b.Kill()
		unmountUnder(dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing the state of buildkitd %s: %v", b.Addr, err)
		}
		if err := removeCgroups(b.cgroupParent); err != nil {
			t.Errorf("removing the cgroups of buildkitd %s: %v", b.Addr, err)
		}
	})
}

func startBuildkitd(t testing.TB, bin string, opts BuildKitOptions) (*Buildkitd, error) {
	// Not t.TempDir: a unix socket path must stay under 108 bytes, and
	// a test's name may be long.
	dir, err := os.MkdirTemp("", "buildkitd-")
	if err != nil {
		return nil, err
	}
	b := &Buildkitd{
		Root:   filepath.Join(dir, "root"),
		Socket: "unix://" + filepath.Join(dir, "buildkitd.sock"),
		Log:    filepath.Join(dir, "buildkitd.log"),
		exited: make(chan struct{}),
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b.Addr = "tcp://" + l.Addr().String()
	l.Close()

	// A configuration of its own, so a machine's
	// /etc/buildkit/buildkitd.toml cannot change what the tests see; and
	// a cgroup parent of its own, which remove deletes: the cgroups of
	// RUN steps killed with buildkitd would stay behind otherwise.
	b.cgroupParent = "docker-pkg-testenv-" + filepath.Base(dir)
	conf := filepath.Join(dir, "buildkitd.toml")
	toml := fmt.Sprintf("[worker.oci]\n  defaultCgroupParent = %q\n", b.cgroupParent)
	if err := os.WriteFile(conf, []byte(toml), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{
		"--config", conf,
		"--root", b.Root,
		"--addr", b.Socket,
		"--addr", b.Addr,
		"--oci-worker=true",
		"--containerd-worker=false",
	}
	if opts.TLS {
		tlsArgs, err := b.makeTLS(dir)
		if err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("making TLS certificates: %w", err)
		}
		args = append(args, tlsArgs...)
	}
	logFile, err := os.Create(b.Log)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close()
	b.cmd = exec.Command(bin, args...)
	b.cmd.Env = []string{"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none"}
	for _, kv := range startEnv {
		if !strings.HasPrefix(kv, "BUILDKIT_") && !strings.HasPrefix(kv, "OTEL_") {
			b.cmd.Env = append(b.cmd.Env, kv)
		}
	}
	b.cmd.Stdout, b.cmd.Stderr = logFile, logFile
	// Its own process group, killed whole; and killed with the test
	// binary should that die without running its cleanups (a go test
	// timeout).
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := b.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { b.cmd.Wait(); close(b.exited) }()
	t.Cleanup(func() { b.remove(t, dir) })

	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-b.exited:
			out, _ := os.ReadFile(b.Log)
			b.remove(t, dir)
			return nil, fmt.Errorf("buildkitd on %s exited: %s", b.Addr, lastLines(out, 20))
		default:
		}
		if last = b.ready(); last == nil {
			return b, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, _ := os.ReadFile(b.Log)
	b.remove(t, dir)
	return nil, fmt.Errorf("buildkitd on %s did not list its workers within 30s (%v): %s", b.Addr, last, lastLines(out, 20))
}

// ready connects as a test's client would, over TCP with the TLS
// material, and asks for the workers.
func (b *Buildkitd) ready() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := bkclient.New(ctx, b.Addr, b.ClientOpts()...)
	if err != nil {
		return err
	}
	defer c.Close()
	workers, err := c.ListWorkers(ctx)
	if err != nil {
		return err
	}
	if len(workers) == 0 {
		return errors.New("no workers")
	}
	return nil
}

// makeTLS writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir, and returns buildkitd's flags for them.
func (b *Buildkitd) makeTLS(dir string) ([]string, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "docker-pkg test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	b.CA = filepath.Join(dir, "ca.pem")
	if err := writePEM(b.CA, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage, certPath, keyPath string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(24 * time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			tmpl.DNSNames = []string{"localhost"}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		return errors.Join(writePEM(certPath, "CERTIFICATE", der), writePEM(keyPath, "PRIVATE KEY", keyDER))
	}
	serverCert, serverKey := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	if err := leaf(2, "127.0.0.1", x509.ExtKeyUsageServerAuth, serverCert, serverKey); err != nil {
		return nil, err
	}
	b.ClientCert, b.ClientKey = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	if err := leaf(3, "docker-pkg test client", x509.ExtKeyUsageClientAuth, b.ClientCert, b.ClientKey); err != nil {
		return nil, err
	}
	return []string{"--tlscacert", b.CA, "--tlscert", serverCert, "--tlskey", serverKey}, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// descendants lists the processes below pid, children first found, from
// /proc.
func descendants(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces: the
		// fields after its closing one are state, ppid, ...
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(fields[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		out = append(out, children[p]...)
		queue = append(queue, children[p]...)
	}
	return out
}

// removeCgroups removes the cgroup parent (below the cgroup v2 root, or
// each v1 controller's) and everything below it, deepest first. The
// processes in them are dead but may not be reaped yet: a few tries.
func removeCgroups(parent string) error {
	tops, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", parent))
	v1, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
	var dirs []string
	for _, top := range append(tops, v1...) {
		filepath.WalkDir(top, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	var errs []error
	for _, d := range dirs {
		var err error
		for range 50 {
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				err = nil
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount point at or below dir, deepest first.
func unmountUnder(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 5 {
			continue
		}
		p := unescapeMount(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	for _, p := range points {
		syscall.Unmount(p, syscall.MNT_DETACH)
	}
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				out.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		out.WriteByte(s[i])
	}
	return out.String()
}

// buildkitBin is the folder holding buildkitd and buildctl, built once per
// machine. The first build takes minutes.
var buildkitBin = &artefact{
	key: "buildkit-" + BuildKitVersion, name: "bin", timeout: 20 * time.Minute,
	make: func(ctx context.Context, tmp string) (string, error) {
		// Outside any module, with no inherited flags: only the pinned
		// version and its own go.mod count. go install refuses the module
		// (its go.mod has exclude directives), so build inside its folder.
		env := slices.Concat(startEnv, []string{"GOFLAGS=-buildvcs=false", "GOWORK=off"})
		download := exec.CommandContext(ctx, "go", "mod", "download", "-json", "github.com/moby/buildkit@"+BuildKitVersion)
		download.Dir = tmp
		download.Env = env
		out, err := download.Output()
		if err != nil {
			return "", fmt.Errorf("go mod download buildkit@%s: %w\n%s", BuildKitVersion, err, stderrOf(err))
		}
		var mod struct{ Dir, Error string }
		if err := json.Unmarshal(out, &mod); err != nil {
			return "", fmt.Errorf("reading go mod download's answer: %w", err)
		}
		if mod.Dir == "" {
			return "", fmt.Errorf("go mod download buildkit@%s: no folder: %s", BuildKitVersion, mod.Error)
		}
		bin := filepath.Join(tmp, "bin")
		if err := os.Mkdir(bin, 0o755); err != nil {
			return "", err
		}
		build := exec.CommandContext(ctx, "go", "build", "-o", bin,
			"-ldflags", "-X github.com/moby/buildkit/version.Version="+BuildKitVersion,
			"./cmd/buildkitd", "./cmd/buildctl")
		build.Dir = mod.Dir
		build.Env = env
		if out, err := build.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build buildkitd@%s: %w\n%s", BuildKitVersion, err, strings.TrimSpace(string(out)))
		}
		return bin, nil
	},
}

// buildkitBinaries returns the folder holding buildkitd and buildctl.
func buildkitBinaries() (string, error) { return buildkitBin.get() }

func stderrOf(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}
