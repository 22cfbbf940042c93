package registry

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
)

const wrongPassword = "wrong-pass-4c9e2b"

// pushRandom writes a small random image to label with go-containerregistry,
// bypassing the code under test, and returns its digest.
func pushRandom(t testing.TB, label string, opts ...remote.Option) string {
	t.Helper()
	d, err := writeRandom(label, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func writeRandom(label string, opts ...remote.Option) (string, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return "", err
	}
	ref, err := name.ParseReference(label)
	if err != nil {
		return "", err
	}
	if err := remote.Write(ref, img, opts...); err != nil {
		return "", fmt.Errorf("pushing %s: %w", label, err)
	}
	d, err := img.Digest()
	return d.String(), err
}

var testAuth = remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: testenv.RegistryUser, Password: testenv.RegistryPassword}))

// noDockerConfig points Docker's credential store at empty folders, so the
// machine's own ~/.docker/config.json cannot leak into a test.
func noDockerConfig(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", filepath.Join(home, ".docker"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("XDG_RUNTIME_DIR", "")
	t.Setenv("REGISTRY_AUTH_FILE", "")
	return filepath.Join(home, ".docker")
}

// dockerLogin writes what `docker login host` would leave in config.json.
func dockerLogin(t *testing.T, dir, host, user, password string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	js := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
}

func newTestRegistry(t testing.TB, cfg *config.Config, opts ...Option) *Client {
	t.Helper()
	r, err := New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegistryPublished(t *testing.T) {
	host, _ := testenv.Registry(t, testenv.RegistryOptions{Auth: true})
	noDockerConfig(t)
	digest := pushRandom(t, host+"/releng/node20:20.11.0-1", testAuth)
	r := newTestRegistry(t, &config.Config{Registry: host, Username: testenv.RegistryUser, Password: testenv.RegistryPassword})

	tests := []struct {
		name       string
		label      string
		want       bool
		wantDigest string
	}{
		{name: "published", label: host + "/releng/node20:20.11.0-1", want: true, wantDigest: digest},
		{name: "unknown tag", label: host + "/releng/node20:20.11.0-2"},
		{name: "unknown repository", label: host + "/releng/nothing:1.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok, err := r.Published(t.Context(), tt.label)
			if err != nil {
				t.Fatalf("Published(%s): %v", tt.label, err)
			}
			if ok != tt.want || got != tt.wantDigest {
				t.Errorf("Published(%s) = %q, %v; want %q, %v", tt.label, got, ok, tt.wantDigest, tt.want)
			}
		})
	}
}

func TestRegistryWrongPasswordIsAnError(t *testing.T) {
	host, _ := testenv.Registry(t, testenv.RegistryOptions{Auth: true})
	noDockerConfig(t)
	label := host + "/releng/node20:1.0"
	pushRandom(t, label, testAuth)
	r := newTestRegistry(t, &config.Config{Registry: host, Username: testenv.RegistryUser, Password: wrongPassword}, WithRetry(2, time.Millisecond))

	_, ok, err := r.Published(t.Context(), label)
	if err == nil {
		t.Fatalf("Published with a wrong password = %v, nil; want an error", ok)
	}
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("error %v: want a 401 from the registry", err)
	}
	if strings.Contains(err.Error(), wrongPassword) {
		t.Errorf("error shows the password: %v", err)
	}
}

func TestRegistryUnreachableIsAnError(t *testing.T) {
	host, stop := testenv.Registry(t, testenv.RegistryOptions{})
	noDockerConfig(t)
	stop()
	tests := []struct {
		name string
		host string
	}{
		{"connection refused", host},
		{"no such host", "registry.invalid:5000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Many attempts: the first failure must not use them.
			r := newTestRegistry(t, &config.Config{Registry: tt.host}, WithRetry(5, time.Second))
			start := time.Now()
			_, ok, err := r.Published(t.Context(), tt.host+"/releng/node20:1.0")
			if err == nil || !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Published on an unreachable registry = %v, %v; want ErrUnreachable", ok, err)
			}
			if took := time.Since(start); took > 900*time.Millisecond {
				t.Errorf("gave up after %s: an unreachable registry was retried", took)
			}
			// Every later call fails at once, with the same words.
			_, _, err2 := r.Config(t.Context(), tt.host+"/releng/node22:1.0")
			if !errors.Is(err2, ErrUnreachable) || !strings.Contains(err2.Error(), "cannot reach the registry "+tt.host) {
				t.Errorf("second call = %v, want the remembered ErrUnreachable", err2)
			}
			t.Logf("%v", err)
		})
	}
}

func TestRegistryRetriesAreBounded(t *testing.T) {
	noDockerConfig(t)
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		calls.Add(1)
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	r := newTestRegistry(t, &config.Config{Registry: host}, WithRetry(3, time.Millisecond))

	_, _, err := r.Published(t.Context(), host+"/a/b:1")
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("Published on a 503 registry: err = %v, want the 503", err)
	}
	if got := calls.Load(); got != 3 {
		t.Errorf("registry saw %d requests, want 3 (one per attempt)", got)
	}
}

func TestRegistryCABundle(t *testing.T) {
	noDockerConfig(t)
	srv := httptest.NewUnstartedServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
	srv.StartTLS()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	label := host + "/releng/node20:1.0"
	digest := pushRandom(t, label, remote.WithTransport(srv.Client().Transport))
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(bundle, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("with ca_bundle", func(t *testing.T) {
		r := newTestRegistry(t, &config.Config{Registry: host, CABundle: bundle})
		got, ok, err := r.Published(t.Context(), label)
		if err != nil || !ok || got != digest {
			t.Errorf("Published = %q, %v, %v; want %q, true, nil", got, ok, err, digest)
		}
	})
	t.Run("without", func(t *testing.T) {
		r := newTestRegistry(t, &config.Config{Registry: host}, WithRetry(1, 0))
		if _, ok, err := r.Published(t.Context(), label); err == nil {
			t.Errorf("Published with an unknown CA = %v, nil; want an error", ok)
		}
	})
	t.Run("bundle with no certificate", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty.pem")
		os.WriteFile(empty, []byte("not a certificate\n"), 0o600)
		if _, err := New(&config.Config{Registry: host, CABundle: empty}); err == nil || !strings.Contains(err.Error(), empty) {
			t.Errorf("New with a bad ca_bundle: err = %v, want one naming %s", err, empty)
		}
	})
}

func TestRegistryHTTPProxy(t *testing.T) {
	noDockerConfig(t)
	var mu sync.Mutex
	var seen []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		seen = append(seen, req.Method+" "+req.Host)
		mu.Unlock()
		http.Error(w, "no", http.StatusForbidden)
	}))
	defer proxy.Close()
	r := newTestRegistry(t, &config.Config{Registry: "registry.invalid", HTTPProxy: proxy.URL}, WithRetry(1, 0))

	if _, ok, err := r.Published(t.Context(), "registry.invalid/releng/node20:1.0"); err == nil {
		t.Fatalf("Published through a refusing proxy = %v, nil; want an error", ok)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 || seen[0] != "CONNECT registry.invalid:443" {
		t.Errorf("proxy saw %q, want CONNECT registry.invalid:443 first", seen)
	}
}

func TestRegistryPlainHTTP(t *testing.T) {
	r := &Client{insecure: []string{"myreg:5000", "build.example", "10.20.0.0/16"}}
	tests := []struct {
		name string
		host string
		want bool
	}{
		{name: "127.0.0.1 with port", host: "127.0.0.1:5000", want: true},
		{name: "elsewhere in 127/8", host: "127.3.2.1:5000", want: true},
		{name: "ipv6 loopback", host: "[::1]:5000", want: true},
		{name: "localhost", host: "localhost:5000", want: true},
		{name: "listed host:port", host: "myreg:5000", want: true},
		{name: "listed host, other port", host: "myreg:5001"},
		{name: "listed host without port", host: "build.example:443", want: true},
		{name: "listed CIDR", host: "10.20.3.4:5000", want: true},
		{name: "private address not listed", host: "10.0.0.1:5000"},
		{name: "a .localhost name", host: "reg.localhost:5000"},
		{name: "public registry", host: "docker-registry.wikimedia.org"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.plainHTTP(tt.host); got != tt.want {
				t.Errorf("plainHTTP(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}

	t.Run("guard refuses before dialing", func(t *testing.T) {
		g := httpGuard{inner: nil, allowed: r.plainHTTP} // a nil inner panics if reached
		req := httptest.NewRequest(http.MethodGet, "http://10.0.0.1:5000/v2/", nil)
		if _, err := g.RoundTrip(req); !errors.Is(err, ErrPlainHTTP) {
			t.Errorf("RoundTrip = %v, want ErrPlainHTTP", err)
		}
	})
}

func TestRegistryCredentials(t *testing.T) {
	host, _ := testenv.Registry(t, testenv.RegistryOptions{Auth: true})
	label := host + "/releng/node20:1.0"
	pushRandom(t, label, testAuth)

	tests := []struct {
		name       string
		user, pass string
		login      string // host written to config.json's auths, "" for none
		want       bool
	}{
		{name: "from the configuration", user: testenv.RegistryUser, pass: testenv.RegistryPassword, want: true},
		{name: "from Docker's config.json", login: host, want: true},
		{name: "half a pair falls back to config.json", user: testenv.RegistryUser, login: host, want: true},
		{name: "config.json for another registry", login: "other.example:5000"},
		{name: "none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := noDockerConfig(t)
			if tt.login != "" {
				dockerLogin(t, dir, tt.login, testenv.RegistryUser, testenv.RegistryPassword)
			}
			r := newTestRegistry(t, &config.Config{Registry: host, Username: tt.user, Password: tt.pass}, WithRetry(1, 0))
			found, err := r.Credentials(t.Context())
			if err != nil || found != tt.want {
				t.Fatalf("Credentials = %v, %v; want %v, nil", found, err, tt.want)
			}
			// The credentials found are the ones the check uses: without
			// any, the registry refuses.
			_, ok, err := r.Published(t.Context(), label)
			if tt.want && (err != nil || !ok) {
				t.Errorf("Published = %v, %v; want true, nil", ok, err)
			}
			if !tt.want && err == nil {
				t.Errorf("Published with no credentials = %v, nil; want a 401 error", ok)
			}
		})
	}
}

func TestNilRegistry(t *testing.T) {
	r, err := New(&config.Config{})
	if err != nil || r != nil {
		t.Fatalf("New with no registry = %v, %v; want nil, nil", r, err)
	}
	if d, ok, err := r.Published(t.Context(), "node20:1.0"); d != "" || ok || err != nil {
		t.Errorf("Published = %q, %v, %v; want nothing", d, ok, err)
	}
	if found, err := r.Credentials(t.Context()); found || err != nil {
		t.Errorf("Credentials = %v, %v; want false, nil", found, err)
	}
	if err := r.Pull(t.Context(), noEngine{}, "node20:1.0", io.Discard); err != nil {
		t.Errorf("Pull = %v, want nil (nothing pulled)", err)
	}
	if err := r.Publish(t.Context(), noEngine{}, "node20:1.0", io.Discard); err == nil {
		t.Error("Publish with no registry succeeded")
	}
}

func TestNewRegistryRejectsBadOptions(t *testing.T) {
	tests := []struct {
		name string
		cfg  config.Config
		opt  Option
	}{
		{name: "no attempts", cfg: config.Config{Registry: "r.example"}, opt: WithRetry(0, time.Second)},
		{name: "negative backoff", cfg: config.Config{Registry: "r.example"}, opt: WithRetry(1, -time.Second)},
		{name: "zero timeout", cfg: config.Config{Registry: "r.example"}, opt: WithTimeout(0)},
		{name: "bad proxy", cfg: config.Config{Registry: "r.example", HTTPProxy: "::nope"}, opt: WithTimeout(time.Second)},
		{name: "missing ca_bundle", cfg: config.Config{Registry: "r.example", CABundle: "/nonexistent/ca.pem"}, opt: WithTimeout(time.Second)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r, err := New(&tt.cfg, tt.opt); err == nil {
				t.Errorf("New = %v, nil; want an error", r)
			}
		})
	}
}

// BenchmarkPublishedCheck checks 150 published images with 8 workers, as a
// build's initial state computation does; one op is the full check, with a
// new Registry each time (no connection or auth reused from the last op).
func BenchmarkPublishedCheck(b *testing.B) {
	const images, workers = 150, 8
	host, _ := testenv.Registry(b, testenv.RegistryOptions{Auth: true})
	labels := make([]string, images)
	var g errgroup.Group
	g.SetLimit(workers)
	for i := range labels {
		labels[i] = fmt.Sprintf("%s/bench/image%03d:1.0-%d", host, i, i)
		g.Go(func() error { _, err := writeRandom(labels[i], testAuth); return err })
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	cfg := &config.Config{Registry: host, Username: testenv.RegistryUser, Password: testenv.RegistryPassword}

	for b.Loop() {
		r := newTestRegistry(b, cfg)
		g, ctx := errgroup.WithContext(context.Background())
		g.SetLimit(workers)
		for _, label := range labels {
			g.Go(func() error {
				_, ok, err := r.Published(ctx, label)
				if err == nil && !ok {
					err = fmt.Errorf("%s: not published", label)
				}
				return err
			})
		}
		if err := g.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}
