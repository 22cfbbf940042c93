package registry

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ErrNoCredentials is matched (errors.Is) by Publish when neither the
// configuration nor Docker's credential store has credentials for the
// registry.
var ErrNoCredentials = errors.New("no credentials for the registry")

// ErrPlainHTTP is matched (errors.Is) when a registry call would have gone
// over plain HTTP to a registry that is neither on loopback nor listed in
// insecure_registries.
var ErrPlainHTTP = errors.New("plain HTTP is allowed only for loopback registries and those in insecure_registries")

// Client talks to the configured registry: whether an image is published,
// what its build record says, whether we hold credentials, and pulls and
// pushes through the daemon.
//
// A nil *Client, what New returns when no registry is configured,
// is valid: nothing is published, there are no credentials, Pull does
// nothing and Publish fails. It is safe for concurrent use; all calls share
// one HTTP transport.
type Client struct {
	host               string // cfg.Registry, as go-containerregistry names it
	username, password string
	insecure           []string
	attempts           int
	backoff            time.Duration
	timeout            time.Duration
	puller             *remote.Puller
	pusher             *remote.Pusher
	labels             *labelCache
	// published remembers, by label, what Config found in the registry
	// during this run: the state check and the build record read the
	// same manifest.
	published sync.Map // label -> publishedImage
	resolved  sync.Map // label -> Image, what Resolve found

	mu      sync.Mutex
	secrets []string         // every credential seen, removed from error messages
	down    map[string]error // host -> why it cannot be reached
}

// Option changes a Client made by New.
type Option func(*Client)

// WithRetry sets how many times a registry call is tried and the wait after
// the first failure, doubled after each further one. Default: 3 attempts,
// 200ms.
func WithRetry(attempts int, backoff time.Duration) Option {
	return func(r *Client) { r.attempts, r.backoff = attempts, backoff }
}

// WithLabelCache sets the folder where image labels read from the registry
// are kept, by config digest, for later runs (see DefaultLabelCache).
// Default: "", in memory only, for this run.
func WithLabelCache(dir string) Option {
	return func(r *Client) { r.labels = newLabelCache(dir) }
}

// WithTimeout bounds one call (all its attempts). Default: 30s.
func WithTimeout(d time.Duration) Option {
	return func(r *Client) { r.timeout = d }
}

// New prepares calls to cfg.Registry honouring http_proxy,
// ca_bundle and insecure_registries. It returns nil, nil when cfg.Registry
// is empty.
func New(cfg *config.Config, opts ...Option) (*Client, error) {
	if cfg.Registry == "" {
		return nil, nil
	}
	reg, err := name.NewRegistry(cfg.Registry)
	if err != nil {
		return nil, fmt.Errorf("registry %q: %w", cfg.Registry, err)
	}
	r := &Client{
		host:     reg.RegistryStr(),
		insecure: cfg.InsecureRegistries,
		attempts: 3,
		backoff:  200 * time.Millisecond,
		timeout:  30 * time.Second,
		labels:   newLabelCache(""),
	}
	// As the reference: both or nothing; half a pair falls back to the
	// credential store.
	if cfg.Username != "" && cfg.Password != "" {
		r.username, r.password = cfg.Username, cfg.Password
		r.remember(cfg.Password, base64.StdEncoding.EncodeToString([]byte(cfg.Username+":"+cfg.Password)))
	}
	for _, opt := range opts {
		opt(r)
	}
	if r.attempts < 1 || r.backoff < 0 || r.timeout <= 0 {
		return nil, fmt.Errorf("registry options: want at least 1 attempt, a backoff >= 0 and a timeout > 0, got %d, %s, %s", r.attempts, r.backoff, r.timeout)
	}

	tr, err := r.transport(cfg)
	if err != nil {
		return nil, err
	}
	// Retries are ours (see Published), so go-containerregistry's own are
	// turned off: one attempt per call to it.
	r.puller, err = remote.NewPuller(
		remote.WithTransport(tr),
		remote.WithAuthFromKeychain(keychain{r}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", r.host, err)
	}
	r.pusher, err = remote.NewPusher(
		remote.WithTransport(tr),
		remote.WithAuthFromKeychain(keychain{r}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
	)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", r.host, err)
	}
	return r, nil
}

// transport is the one transport every call shares, so connections are
// reused across parallel checks.
func (r *Client) transport(cfg *config.Config) (http.RoundTripper, error) {
	proxy := http.ProxyFromEnvironment
	if cfg.HTTPProxy != "" {
		u, err := url.Parse(cfg.HTTPProxy)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("http_proxy %q: not a URL like http://proxy:8080", cfg.HTTPProxy)
		}
		// Like Go's own ProxyFromEnvironment, never proxy loopback.
		proxy = func(req *http.Request) (*url.URL, error) {
			if isLoopback(req.URL.Host) {
				return nil, nil
			}
			return u, nil
		}
	}
	// nil: Go loads the system's roots on the first TLS handshake, so a
	// run that talks plain HTTP to a loopback registry never pays for it.
	var roots *x509.CertPool
	if cfg.CABundle != "" {
		var err error
		if roots, err = x509.SystemCertPool(); err != nil {
			roots = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.CABundle)
		if err != nil {
			return nil, fmt.Errorf("ca_bundle: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_bundle %s: no PEM certificate found", cfg.CABundle)
		}
	}
	base := &http.Transport{
		Proxy:                 proxy,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
	}
	return &pingCache{inner: httpGuard{base, r.plainHTTP}}, nil
}

// pingCache answers the registry's /v2/ ping from the first answer. The
// ping says how to authenticate, which is the same for every repository of
// a registry, and go-containerregistry pings once per repository (over
// HTTPS and, for a plain-HTTP registry, HTTP too): on a no-op build of 150
// images that was 300 of the 450 requests, each a bcrypt check on an
// htpasswd registry.
type pingCache struct {
	inner http.RoundTripper

	mu      sync.Mutex
	answers map[string]*pingAnswer // scheme://host -> the first answer
}

type pingAnswer struct {
	mu     sync.Mutex
	ok     bool // the fields below are set
	status int
	proto  string
	header http.Header
	body   []byte
}

// maxPingBody bounds what is kept of a ping's body: it says nothing the
// handshake reads.
const maxPingBody = 4 << 10

func (p *pingCache) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || req.URL.Path != "/v2/" || req.Header.Get("Authorization") != "" {
		return p.inner.RoundTrip(req)
	}
	key := req.URL.Scheme + "://" + req.URL.Host
	p.mu.Lock()
	if p.answers == nil {
		p.answers = map[string]*pingAnswer{}
	}
	a := p.answers[key]
	if a == nil {
		a = &pingAnswer{}
		p.answers[key] = a
	}
	p.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.ok {
		// Only an answer that says how to authenticate is kept: an error or
		// a 5xx is asked again, as a retry must.
		resp, err := p.inner.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
			return resp, nil
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxPingBody))
		if err != nil {
			return nil, err
		}
		a.ok, a.status, a.proto, a.header, a.body = true, resp.StatusCode, resp.Proto, resp.Header.Clone(), body
	}
	return &http.Response{
		Status:        fmt.Sprintf("%d %s", a.status, http.StatusText(a.status)),
		StatusCode:    a.status,
		Proto:         a.proto,
		Header:        a.header.Clone(),
		Body:          io.NopCloser(bytes.NewReader(a.body)),
		ContentLength: int64(len(a.body)),
		Request:       req,
	}, nil
}

// httpGuard refuses plain HTTP to hosts Docker would not use it for:
// go-containerregistry also falls back to HTTP for private (RFC 1918)
// addresses and *.localhost, Docker does not.
type httpGuard struct {
	inner   http.RoundTripper
	allowed func(host string) bool
}

func (g httpGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !g.allowed(req.URL.Host) {
		return nil, fmt.Errorf("http://%s: %w", req.URL.Host, ErrPlainHTTP)
	}
	return g.inner.RoundTrip(req)
}

// plainHTTP is Docker's rule: loopback registries, and those listed in
// insecure_registries (host, host:port, or a CIDR of addresses).
func (r *Client) plainHTTP(host string) bool {
	if isLoopback(host) {
		return true
	}
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	for _, entry := range r.insecure {
		if entry == host || entry == hostname {
			return true
		}
		if _, cidr, err := net.ParseCIDR(entry); err == nil {
			if ip := net.ParseIP(hostname); ip != nil && cidr.Contains(ip) {
				return true
			}
		}
	}
	return false
}

// isLoopback says whether host[:port] is localhost, 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// reference parses a full label, marking it insecure when plain HTTP may
// be used for its registry.
func (r *Client) reference(label string) (name.Reference, error) {
	ref, err := name.ParseReference(label)
	if err != nil {
		return nil, err
	}
	if r.plainHTTP(ref.Context().RegistryStr()) {
		return name.ParseReference(label, name.Insecure)
	}
	return ref, nil
}

// Published says whether label is in its registry, and its manifest
// digest. A registry that answers 404 (manifest or repository unknown)
// means not published; anything else that is not an answer (401, 403, 5xx,
// timeouts, refused connections) is retried and then returned as an error,
// never taken for "not published".
func (r *Client) Published(ctx context.Context, label string) (digest string, ok bool, err error) {
	if r == nil {
		return "", false, nil
	}
	ref, err := r.reference(label)
	if err != nil {
		return "", false, fmt.Errorf("checking %s: %w", label, err)
	}
	found, err := r.retry(ctx, ref.Context().RegistryStr(), "checking "+label, func(ctx context.Context) error {
		desc, err := r.puller.Head(ctx, ref)
		if err == nil {
			digest = desc.Digest.String()
		}
		return err
	})
	return digest, found, err
}

// retry makes one call to the registry host, what naming it in errors,
// bounded by the timeout and retried with backoff while retriable. found
// is false, with no error, when the registry says the image or repository
// is unknown. A host that cannot be reached at all (its name does not
// resolve, it refuses the connection) is not retried: the failure is
// remembered, and every later call to it fails at once with it
// (ErrUnreachable), so a tree of many images reports one failure, fast.
func (r *Client) retry(ctx context.Context, host, what string, call func(context.Context) error) (found bool, err error) {
	if down := r.unreachable(host); down != nil {
		return false, fmt.Errorf("%s: %w", what, down)
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	wait := r.backoff
	for attempt := 1; ; attempt++ {
		err := call(ctx)
		switch {
		case err == nil:
			return true, nil
		case notFound(err):
			return false, nil
		case cannotConnect(err):
			return false, fmt.Errorf("%s: %w", what, r.markDown(host, err))
		case attempt == r.attempts || !retriable(err):
			return false, r.redact(fmt.Errorf("%s: %w", what, refused(err)))
		}
		select {
		case <-ctx.Done():
			return false, r.redact(fmt.Errorf("%s: %w (after %d attempts, last: %v)", what, ctx.Err(), attempt, err))
		case <-time.After(wait):
		}
		wait *= 2
	}
}

// ErrUnreachable is matched (errors.Is) by the error of every call to a
// registry that could not be reached at all: its name does not resolve,
// or it refuses connections.
var ErrUnreachable = errors.New("registry unreachable")

// unreachableError is the first failure to reach a host, returned again
// by every later call to it.
type unreachableError struct {
	host string
	err  error
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach the registry %s: %v", e.host, e.err)
}
func (e *unreachableError) Is(target error) bool { return target == ErrUnreachable }
func (e *unreachableError) Unwrap() error        { return e.err }

// Unreachable says whether err means that a registry could not be reached
// at all: its name does not resolve, nothing listens there, or no route
// leads to it. Off the registry's network (a laptop off the VPN), that is
// every registry call; --offline is then the way to work.
func Unreachable(err error) bool {
	return errors.Is(err, ErrUnreachable) || cannotConnect(err)
}

// Down is the failure, out of err, that says a registry could not be
// reached at all, as it was first met: the one cause that every call to
// that registry failed with. nil when err is not one.
func Down(err error) error {
	var u *unreachableError
	if errors.As(err, &u) {
		return u
	}
	if cannotConnect(err) {
		return err
	}
	return nil
}

// cannotConnect says whether err means the host is not there. Timeouts
// and resets are retried; these are not.
func cannotConnect(err error) bool {
	if err == nil {
		return false
	}
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}

// markDown remembers that host cannot be reached and returns the error
// every later call gets.
func (r *Client) markDown(host string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down == nil {
		r.down = map[string]error{}
	}
	if prev := r.down[host]; prev != nil {
		return prev
	}
	// The cause goes through redaction once: a URL may hold a credential.
	down := &unreachableError{host: host, err: errors.New(r.redactLocked(err.Error()))}
	r.down[host] = down
	return down
}

func (r *Client) unreachable(host string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down[host]
}

func notFound(err error) bool {
	var terr *transport.Error
	if !errors.As(err, &terr) {
		return false
	}
	if terr.StatusCode == http.StatusNotFound {
		return true
	}
	for _, d := range terr.Errors {
		if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
			return true
		}
	}
	return false
}

// retriable: not for our own refusals, the caller's deadline, or a 4xx
// other than 401/403/408/429, which another try would not change.
// refusedError says in plain words that the registry would not let us in;
// the registry's own words (a HEAD answer has none) stay in Err.
type refusedError struct {
	status int
	err    error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("the registry refused the credentials (%d %s)", e.status, http.StatusText(e.status))
}

func (e *refusedError) Unwrap() error { return e.err }

// refused turns a 401 or 403 answer into a refusedError.
func refused(err error) error {
	var terr *transport.Error
	if errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden) {
		return &refusedError{terr.StatusCode, err}
	}
	return err
}

func retriable(err error) bool {
	if errors.Is(err, ErrPlainHTTP) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode >= 400 && terr.StatusCode < 500 {
		switch terr.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
			return true
		}
		return false
	}
	return true
}

// Credentials says whether publishing can happen: the configuration has a
// username and password, or Docker's credential store has an entry for the
// registry.
func (r *Client) Credentials(ctx context.Context) (found bool, err error) {
	if r == nil {
		return false, nil
	}
	ac, err := r.authConfig(ctx, r.host)
	if err != nil {
		return false, err
	}
	return ac != authn.AuthConfig{}, nil
}

// authConfig is the credential for a registry: the configured one for our
// registry, else the keychain's. The configured credential never goes to
// another registry.
func (r *Client) authConfig(ctx context.Context, host string) (authn.AuthConfig, error) {
	reg, err := name.NewRegistry(host)
	if err != nil {
		return authn.AuthConfig{}, fmt.Errorf("registry %q: %w", host, err)
	}
	auth, err := keychain{r}.ResolveContext(ctx, reg)
	if err != nil {
		return authn.AuthConfig{}, err
	}
	ac, err := authn.Authorization(ctx, auth)
	if err != nil {
		return authn.AuthConfig{}, r.redact(fmt.Errorf("credentials for %s: %w", host, err))
	}
	if ac.Auth != "" && ac.Username == "" {
		// config.json's "auth" is base64 of user:password.
		if raw, err := base64.StdEncoding.DecodeString(ac.Auth); err == nil {
			ac.Username, ac.Password, _ = strings.Cut(string(raw), ":")
		}
	}
	r.remember(ac.Password, ac.Auth, ac.IdentityToken, ac.RegistryToken)
	return *ac, nil
}

// keychain gives go-containerregistry the same credentials as authConfig:
// the configured ones for our registry, else Docker's own (config.json and
// credential helpers, through authn.DefaultKeychain).
type keychain struct{ r *Client }

func (k keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), res)
}

func (k keychain) ResolveContext(ctx context.Context, res authn.Resource) (authn.Authenticator, error) {
	r := k.r
	if res.RegistryStr() == r.host && r.username != "" {
		return authn.FromConfig(authn.AuthConfig{Username: r.username, Password: r.password}), nil
	}
	auth, err := authn.Resolve(ctx, authn.DefaultKeychain, res)
	if err != nil {
		return nil, r.redact(fmt.Errorf("reading Docker credentials for %s: %w", res.RegistryStr(), err))
	}
	return auth, nil
}

// remember adds credentials to the list redact removes.
func (r *Client) remember(secrets ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range secrets {
		if s != "" {
			r.secrets = append(r.secrets, s)
		}
	}
}

// redact keeps any credential out of an error's message: errors end up in
// logs and on the terminal.
func (r *Client) redact(err error) error {
	if err == nil {
		return nil
	}
	msg := r.redactString(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg, err}
}

func (r *Client) redactString(s string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.redactLocked(s)
}

func (r *Client) redactLocked(s string) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	return s
}

// redactedError still unwraps, so errors.Is works, but prints no secret.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// Holds says whether label names an image in this registry (a nil one
// holds none).
func (r *Client) Holds(label string) bool {
	if r == nil {
		return false
	}
	ref, err := name.ParseReference(label)
	return err == nil && ref.Context().RegistryStr() == r.host
}

// ErrNotPublished is matched (errors.Is) by Client.Config for an image
// the registry does not have.
var ErrNotPublished = errors.New("not in the registry")

// Config returns the image ID (the digest of its configuration, which the
// daemon also uses as ID once pulled) and the labels of label in its
// registry: its build record, without pulling it. A manifest list resolves
// to its linux/amd64 image. Failures are retried as in Published.
func (r *Client) Config(ctx context.Context, label string) (id string, labels map[string]string, err error) {
	if r == nil {
		return "", nil, fmt.Errorf("reading %s: %w: no registry configured", label, ErrNotPublished)
	}
	if p, ok := r.published.Load(label); ok {
		return p.(publishedImage).id, p.(publishedImage).labels, nil
	}
	ref, err := r.reference(label)
	if err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", label, err)
	}
	found, err := r.retry(ctx, ref.Context().RegistryStr(), "reading "+label+" from the registry", func(ctx context.Context) (err error) {
		id, labels, err = r.config(ctx, ref)
		return err
	})
	switch {
	case err != nil:
		return "", nil, err
	case !found:
		return "", nil, fmt.Errorf("reading %s: %w", label, ErrNotPublished)
	}
	// Only what is there is remembered: a tag published later in the run
	// must not read as absent.
	r.published.Store(label, publishedImage{id, labels})
	return id, labels, nil
}

type publishedImage struct {
	id     string
	labels map[string]string
}

func (r *Client) config(ctx context.Context, ref name.Reference) (string, map[string]string, error) {
	desc, err := r.puller.Get(ctx, ref)
	if err != nil {
		return "", nil, err
	}
	img, err := desc.Image()
	if err != nil && desc.MediaType.IsIndex() {
		// An index without linux/amd64: every image of a docker-pkg
		// index holds the same record, the first one will do.
		img, err = firstImage(desc)
	}
	if err != nil {
		return "", nil, err
	}
	// The manifest names the config by digest (img.ConfigName would fetch
	// the config to hash it): a config read once, in this run or an earlier
	// one, need not be fetched again. On a no-op run that is half of the
	// requests.
	m, err := img.Manifest()
	if err != nil {
		return "", nil, err
	}
	id := m.Config.Digest
	if labels, ok := r.labels.get(id.String()); ok {
		return id.String(), labels, nil
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return "", nil, err
	}
	r.labels.put(id.String(), cf.Config.Labels)
	return id.String(), cf.Config.Labels, nil
}

// firstImage is the first image of an index, attestations left out.
func firstImage(desc *remote.Descriptor) (v1.Image, error) {
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.OS != "unknown" && m.MediaType.IsImage() {
			return idx.Image(m.Digest)
		}
	}
	return nil, fmt.Errorf("%s: an index of no image", desc.Digest)
}
