package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// RegistryVersion is the distribution registry the tests run.
const RegistryVersion = "v3.1.2"

// The user the registry's htpasswd knows, when started with Auth.
const (
	RegistryUser     = "docker-pkg-test"
	RegistryPassword = "not-a-real-secret-7fa1"
)

// RegistryOptions says how to start a registry.
type RegistryOptions struct {
	// Auth requires RegistryUser and RegistryPassword (htpasswd, basic
	// auth) for every request. Default: no auth.
	Auth bool
}

// Registry starts the distribution registry on 127.0.0.1 and a free port,
// storing into a temporary folder, and returns its host:port. The Docker
// daemon talks plain HTTP to it unconfigured, since loopback is insecure by
// default. stop ends it early (to test an unreachable registry); the test's
// cleanup ends it anyway.
func Registry(t testing.TB, opts RegistryOptions) (host string, stop func()) {
	t.Helper()
	bin, err := registryBinary()
	if err != nil {
		Require(t, false, "no distribution registry binary: "+err.Error())
	}
	dir := t.TempDir()
	auth := ""
	if opts.Auth {
		hash, err := bcrypt.GenerateFromPassword([]byte(RegistryPassword), bcrypt.MinCost) // checked on every request: keep it cheap
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(RegistryUser+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: docker-pkg-test\n    path: %s\n", htpasswd)
	}
	// The port is chosen then released before the registry binds it, so
	// another process may take it first: try a few.
	var last error
	for range 3 {
		host, stop, err := startRegistry(t, bin, dir, auth)
		if err == nil {
			return host, stop
		}
		last = err
	}
	Require(t, false, "cannot start the distribution registry: "+last.Error())
	return "", nil
}

func startRegistry(t testing.TB, bin, dir, auth string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	host := l.Addr().String()
	l.Close()
	storage := filepath.Join(dir, "storage")
	conf := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
%s`, storage, host, auth)
	if err := os.WriteFile(conf, []byte(yml), 0o600); err != nil {
		return "", nil, err
	}
	logPath := filepath.Join(dir, "registry.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin, "serve", conf)
	// The registry reads REGISTRY_* variables as configuration (a test's
	// REGISTRY_AUTH_FILE for podman becomes auth.file), and tracing would
	// otherwise look for an OTLP collector.
	cmd.Env = []string{"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none"}
	for _, kv := range startEnv {
		if !strings.HasPrefix(kv, "REGISTRY_") && !strings.HasPrefix(kv, "OTEL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Kill()
			<-exited
		})
	}
	t.Cleanup(stop)

	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			return "", nil, fmt.Errorf("registry on %s exited: %s", host, out)
		default:
		}
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return host, stop, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	out, _ := os.ReadFile(logPath)
	return "", nil, fmt.Errorf("registry on %s did not answer within 15s: %s", host, out)
}

// registryBin is the distribution registry, built once per machine. The
// first build takes minutes.
var registryBin = &artefact{
	key: "registry-" + RegistryVersion, name: "registry", timeout: 8 * time.Minute,
	make: func(ctx context.Context, gobin string) (string, error) {
		cmd := exec.CommandContext(ctx, "go", "install", "github.com/distribution/distribution/v3/cmd/registry@"+RegistryVersion)
		// Outside any module, with no inherited flags: only the pinned
		// version and its own go.mod count.
		cmd.Dir = gobin
		cmd.Env = slices.Concat(startEnv, []string{"GOBIN=" + gobin, "GOFLAGS=-buildvcs=false", "GOWORK=off"})
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go install registry@%s: %w\n%s", RegistryVersion, err, strings.TrimSpace(string(out)))
		}
		return filepath.Join(gobin, "registry"), nil
	},
}

func registryBinary() (string, error) { return registryBin.get() }
