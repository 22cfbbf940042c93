package testenv

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9]+`)

// Namespace returns a namespace of the test's own under registry (""
// for none), named after the test, holding busybox:static, the test's
// base image. Every image under it is removed from the daemon when the
// test ends.
func Namespace(t testing.TB, cli *client.Client, registry string) string {
	t.Helper()
	name := strings.Trim(unsafeName.ReplaceAllString(t.Name(), "-"), "-")
	ns := strings.ToLower(fmt.Sprintf("dpkg-%s-%s", name, rand.Text()[:6]))
	prefix := ns
	if registry != "" {
		prefix = registry + "/" + ns
	}
	if _, err := cli.ImageTag(context.Background(), client.ImageTagOptions{Source: Busybox(t, cli), Target: prefix + "/busybox:static"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := cli.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("reference", prefix+"/*")})
		if err != nil {
			t.Errorf("listing the test's images: %v", err)
			return
		}
		for _, img := range list.Items {
			for _, tag := range img.RepoTags {
				cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
			}
		}
	})
	return ns
}
