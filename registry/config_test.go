package registry

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestConfig(t *testing.T) {
	srv := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	noDockerConfig(t)

	labels := map[string]string{"org.docker-pkg.title": "app", "org.docker-pkg.inputs.digest": "sha256:22"}
	rnd, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := rnd.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf.Config.Labels = labels
	pushed, err := mutate.ConfigFile(rnd, cf)
	if err != nil {
		t.Fatal(err)
	}
	label := host + "/ns/app:1.0-1"
	ref, err := name.ParseReference(label)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, pushed); err != nil {
		t.Fatal(err)
	}
	wantID, err := pushed.ConfigName()
	if err != nil {
		t.Fatal(err)
	}

	r := newTestRegistry(t, &config.Config{Registry: host}, WithRetry(1, 0))
	id, got, err := r.Config(context.Background(), label)
	if err != nil {
		t.Fatal(err)
	}
	if id != wantID.String() || !reflect.DeepEqual(got, labels) {
		t.Errorf("Config() = %s, %v; want %s, %v", id, got, wantID, labels)
	}
	if _, _, err := r.Config(context.Background(), host+"/ns/app:2.0-1"); !errors.Is(err, ErrNotPublished) {
		t.Errorf("Config() of an absent tag: error = %v, want ErrNotPublished", err)
	}
	var none *Client
	if _, _, err := none.Config(context.Background(), label); !errors.Is(err, ErrNotPublished) {
		t.Errorf("Config() with no registry: error = %v, want ErrNotPublished", err)
	}
}

func TestHolds(t *testing.T) {
	r := newTestRegistry(t, &config.Config{Registry: "127.0.0.1:5000"})
	tests := []struct {
		label string
		want  bool
	}{
		{"127.0.0.1:5000/ns/app:1.0", true},
		{"127.0.0.1:5001/ns/app:1.0", false},
		{"ns/app:1.0", false},
		{"debian:bookworm", false},
		{"not a label", false},
	}
	for _, tt := range tests {
		t.Run(tt.label, func(t *testing.T) {
			if got := r.Holds(tt.label); got != tt.want {
				t.Errorf("Holds(%q) = %v, want %v", tt.label, got, tt.want)
			}
		})
	}
	if hub := newTestRegistry(t, &config.Config{Registry: "docker.io"}); !hub.Holds("debian:bookworm") {
		t.Errorf("Holds(debian:bookworm) = false for docker.io, want true")
	}
}
