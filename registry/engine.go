package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/docker-pkg/docker-pkg/internal/ref"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/api/pkg/authconfig"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"
)

// Puller is the Engine API call Pull uses; *client.Client satisfies it.
type Puller interface {
	ImagePull(ctx context.Context, refStr string, options client.ImagePullOptions) (client.ImagePullResponse, error)
}

// Pusher is the Engine API calls Publish uses; *client.Client satisfies it.
type Pusher interface {
	ImageTag(ctx context.Context, options client.ImageTagOptions) (client.ImageTagResult, error)
	ImagePush(ctx context.Context, image string, options client.ImagePushOptions) (client.ImagePushResponse, error)
}

// Pull has the daemon pull label, with our credentials when label is in our
// registry (the keychain's otherwise), writing its progress to log. With no
// registry configured it does nothing.
func (r *Client) Pull(ctx context.Context, eng Puller, label string, log io.Writer) error {
	if r == nil {
		return nil
	}
	auth, err := r.engineAuth(ctx, label)
	if err != nil {
		return fmt.Errorf("pulling %s: %w", label, err)
	}
	resp, err := eng.ImagePull(ctx, label, client.ImagePullOptions{RegistryAuth: auth})
	if err != nil {
		return r.redact(fmt.Errorf("pulling %s: %w", label, err))
	}
	defer resp.Close()
	if err := r.progress(resp, log); err != nil {
		return fmt.Errorf("pulling %s: %w", label, err)
	}
	return nil
}

// Publish tags label as its repository's latest and pushes label, then
// latest. It fails with ErrNoCredentials rather than push anonymously.
func (r *Client) Publish(ctx context.Context, eng Pusher, label string, log io.Writer) error {
	if r == nil {
		return fmt.Errorf("publishing %s: no registry configured", label)
	}
	found, err := r.Credentials(ctx)
	if err != nil {
		return fmt.Errorf("publishing %s: %w", label, err)
	}
	if !found {
		return fmt.Errorf("publishing %s: %w %s", label, ErrNoCredentials, r.host)
	}
	repo, _, ok := ref.SplitLabel(label)
	if !ok {
		return fmt.Errorf("publishing %s: not a full label (repository:tag)", label)
	}
	latest := repo + ":latest"
	if _, err := eng.ImageTag(ctx, client.ImageTagOptions{Source: label, Target: latest}); err != nil {
		return fmt.Errorf("tagging %s as %s: %w", label, latest, err)
	}
	for _, l := range []string{label, latest} {
		if err := r.push(ctx, eng, l, log); err != nil {
			return err
		}
	}
	return nil
}

func (r *Client) push(ctx context.Context, eng Pusher, label string, log io.Writer) error {
	auth, err := r.engineAuth(ctx, label)
	if err != nil {
		return fmt.Errorf("pushing %s: %w", label, err)
	}
	resp, err := eng.ImagePush(ctx, label, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		return r.redact(fmt.Errorf("pushing %s: %w", label, err))
	}
	defer resp.Close()
	if err := r.progress(resp, log); err != nil {
		return fmt.Errorf("pushing %s: %w", label, err)
	}
	return nil
}

// engineAuth is the X-Registry-Auth value for label's registry: the daemon
// does the transfer, so it needs the credential, which goes nowhere else.
func (r *Client) engineAuth(ctx context.Context, label string) (string, error) {
	ref, err := r.reference(label)
	if err != nil {
		return "", err
	}
	host := ref.Context().RegistryStr()
	ac, err := r.authConfig(ctx, host)
	if err != nil {
		return "", err
	}
	encoded, err := authconfig.Encode(registry.AuthConfig{
		Username:      ac.Username,
		Password:      ac.Password,
		IdentityToken: ac.IdentityToken,
		RegistryToken: ac.RegistryToken,
		ServerAddress: host,
	})
	if err != nil {
		return "", err
	}
	if ac != (authn.AuthConfig{}) {
		r.remember(encoded)
	}
	return encoded, nil
}

// ErrEngine is matched (errors.Is) by an error the daemon reported in the
// middle of a pull or push.
var ErrEngine = errors.New("engine error")

// engineError is the daemon's own message, e.g. "unauthorized:
// authentication required".
type engineError struct{ msg string }

func (e *engineError) Error() string        { return e.msg }
func (e *engineError) Is(target error) bool { return target == ErrEngine }

// progressMessage is one line of the daemon's JSON progress stream. Daemons send
// the failure both as "error" (older) and "errorDetail".
type progressMessage struct {
	Status      string          `json:"status"`
	ID          string          `json:"id"`
	Progress    json.RawMessage `json:"progressDetail"`
	Error       string          `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

// progress copies the daemon's status lines to log, leaving out the
// byte-count ticks, and returns the error the stream ends with, if any.
func (r *Client) progress(stream io.Reader, log io.Writer) error {
	dec := json.NewDecoder(stream)
	for {
		var m progressMessage
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the daemon's progress: %w", err)
		}
		msg := m.Error
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			msg = m.ErrorDetail.Message
		}
		if msg != "" {
			return &engineError{r.redactString(msg)}
		}
		if m.Status == "" || (len(m.Progress) > 0 && string(m.Progress) != "{}") {
			continue
		}
		line := m.Status
		if m.ID != "" {
			line = m.ID + ": " + line
		}
		fmt.Fprintln(log, r.redactString(line))
	}
}
