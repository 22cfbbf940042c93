package testenv

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestArtefacts makes, or finds made, everything the tests fetch or build
// once per machine, and checks each is what it says. .ci/run starts it
// first, beside the installs, so that the tests never wait for a build.
func TestArtefacts(t *testing.T) {
	for _, tt := range []struct {
		a    *artefact
		run  func(path string) *exec.Cmd
		says string
	}{
		{registryBin, func(p string) *exec.Cmd { return exec.Command(p, "--version") }, RegistryVersion},
		{buildkitBin, func(p string) *exec.Cmd { return exec.Command(filepath.Join(p, "buildkitd"), "--version") }, BuildKitVersion},
		{arm64Bin, nil, ""},
	} {
		t.Run(tt.a.key, func(t *testing.T) {
			t.Parallel()
			path, err := tt.a.get()
			Require(t, err == nil, "cannot make "+tt.a.key+": "+errString(err))
			if tt.run == nil {
				return
			}
			out, err := tt.run(path).CombinedOutput()
			if err != nil || !strings.Contains(string(out), tt.says) {
				t.Errorf("%s: %v: %s; want it to say %s", path, err, out, tt.says)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
