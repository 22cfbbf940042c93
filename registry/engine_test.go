package registry

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/internal/testenv"
	"github.com/moby/moby/client"
)

var (
	_ Puller = (*client.Client)(nil)
	_ Pusher = (*client.Client)(nil)
)

// noEngine panics on any call: for paths that must not reach the daemon.
type noEngine struct {
	Puller
	Pusher
}

func TestProgress(t *testing.T) {
	tests := []struct {
		name    string
		stream  string
		wantLog string
		wantErr string // "" for none
	}{
		{
			name: "push",
			stream: `{"status":"The push refers to repository [127.0.0.1:5000/test/busybox]"}
{"status":"Preparing","progressDetail":{},"id":"d2b1"}
{"status":"Pushing","progressDetail":{"current":512,"total":1024},"progress":"[=>   ]","id":"d2b1"}
{"status":"Pushed","progressDetail":{},"id":"d2b1"}
{"status":"1.0-1: digest: sha256:abc size: 527"}
{"progressDetail":{},"aux":{"Tag":"1.0-1","Digest":"sha256:abc","Size":527}}
`,
			wantLog: "The push refers to repository [127.0.0.1:5000/test/busybox]\nd2b1: Preparing\nd2b1: Pushed\n1.0-1: digest: sha256:abc size: 527\n",
		},
		{
			name: "error and errorDetail",
			stream: `{"status":"Preparing","progressDetail":{},"id":"d2b1"}
{"errorDetail":{"message":"unauthorized: authentication required"},"error":"unauthorized: authentication required"}
`,
			wantLog: "d2b1: Preparing\n",
			wantErr: "unauthorized: authentication required",
		},
		{
			name:    "only the old error field",
			stream:  `{"error":"manifest for x:1 not found"}`,
			wantErr: "manifest for x:1 not found",
		},
		{
			name:    "a credential in the daemon's message",
			stream:  `{"error":"login with hunter2-pw failed"}`,
			wantErr: "login with [redacted] failed",
		},
		{
			name:    "cut short",
			stream:  `{"status":"Pull`,
			wantErr: "reading the daemon's progress: unexpected EOF",
		},
	}
	r := &Client{}
	r.remember("hunter2-pw")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log bytes.Buffer
			err := r.progress(strings.NewReader(tt.stream), &log)
			if got := log.String(); got != tt.wantLog {
				t.Errorf("log = %q, want %q", got, tt.wantLog)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("err = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr):
				t.Errorf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestPublishWithoutCredentials(t *testing.T) {
	noDockerConfig(t)
	r := newTestRegistry(t, &config.Config{Registry: "127.0.0.1:1", Username: "only-a-user"})
	err := r.Publish(t.Context(), noEngine{}, "127.0.0.1:1/releng/node20:1.0", io.Discard)
	if !errors.Is(err, ErrNoCredentials) {
		t.Errorf("Publish = %v, want ErrNoCredentials", err)
	}
}

// tagBase gives the busybox test image the label, removed at the end.
func tagBase(t *testing.T, cli *client.Client, labels ...string) {
	t.Helper()
	base := testenv.Busybox(t, cli)
	for _, label := range labels {
		if _, err := cli.ImageTag(t.Context(), client.ImageTagOptions{Source: base, Target: label}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { untag(t, cli, labels...) })
}

func untag(t *testing.T, cli *client.Client, labels ...string) {
	for _, label := range labels {
		cli.ImageRemove(t.Context(), label, client.ImageRemoveOptions{})
	}
}

func TestPublishAndPull(t *testing.T) {
	cli := testenv.Docker(t)
	host, _ := testenv.Registry(t, testenv.RegistryOptions{Auth: true})

	tests := []struct {
		name       string
		user, pass string
		login      bool // credentials in Docker's config.json instead
	}{
		{name: "config credentials", user: testenv.RegistryUser, pass: testenv.RegistryPassword},
		{name: "docker config.json", login: true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := noDockerConfig(t)
			if tt.login {
				dockerLogin(t, dir, host, testenv.RegistryUser, testenv.RegistryPassword)
			}
			repo := host + "/test/busybox" + string(rune('a'+i))
			label, latest := repo+":1.0-1", repo+":latest"
			tagBase(t, cli, label)
			t.Cleanup(func() { untag(t, cli, latest) })
			r := newTestRegistry(t, &config.Config{Registry: host, Username: tt.user, Password: tt.pass})

			var log bytes.Buffer
			if err := r.Publish(t.Context(), cli, label, &log); err != nil {
				t.Fatalf("Publish: %v\n%s", err, log.String())
			}
			if !strings.Contains(log.String(), "digest: sha256:") {
				t.Errorf("push log has no digest line:\n%s", log.String())
			}
			d1, ok1, err1 := r.Published(t.Context(), label)
			d2, ok2, err2 := r.Published(t.Context(), latest)
			if !ok1 || !ok2 || err1 != nil || err2 != nil || d1 != d2 {
				t.Fatalf("after Publish: %s published = %v (%s, %v), latest = %v (%s, %v); want both, same digest", label, ok1, d1, err1, ok2, d2, err2)
			}

			untag(t, cli, label, latest)
			if err := r.Pull(t.Context(), cli, label, &log); err != nil {
				t.Fatalf("Pull: %v\n%s", err, log.String())
			}
			if _, err := cli.ImageInspect(t.Context(), label); err != nil {
				t.Errorf("after Pull: %v", err)
			}
		})
	}
}

func TestPullMissingIsAnError(t *testing.T) {
	cli := testenv.Docker(t)
	host, _ := testenv.Registry(t, testenv.RegistryOptions{})
	noDockerConfig(t)
	r := newTestRegistry(t, &config.Config{Registry: host})
	label := host + "/test/absent:1.0"
	err := r.Pull(t.Context(), cli, label, io.Discard)
	if err == nil || !strings.HasPrefix(err.Error(), "pulling "+label+": ") {
		t.Errorf("Pull of a missing image = %v, want an error naming %s", err, label)
	}
}

func TestPublishWrongPassword(t *testing.T) {
	cli := testenv.Docker(t)
	host, _ := testenv.Registry(t, testenv.RegistryOptions{Auth: true})
	noDockerConfig(t)
	repo := host + "/test/denied"
	label := repo + ":1.0-1"
	tagBase(t, cli, label)
	t.Cleanup(func() { untag(t, cli, repo+":latest") })
	r := newTestRegistry(t, &config.Config{Registry: host, Username: testenv.RegistryUser, Password: wrongPassword})

	var log bytes.Buffer
	err := r.Publish(t.Context(), cli, label, &log)
	if err == nil {
		t.Fatalf("Publish with a wrong password succeeded\n%s", log.String())
	}
	t.Logf("error: %v", err)
	if !errors.Is(err, ErrEngine) {
		t.Errorf("error %v: want the daemon's (ErrEngine)", err)
	}
	if want := "pushing " + label + ": unauthorized"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q, want it to start with %q", err, want)
	}
	if strings.Contains(err.Error(), wrongPassword) || strings.Contains(log.String(), wrongPassword) {
		t.Errorf("the password shows in the error or log:\n%v\n%s", err, log.String())
	}
}
