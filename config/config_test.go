package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, name, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name  string
		user  string // "" for no user file
		file  string
		check func(t *testing.T, c *Config)
	}{
		{
			name: "empty file gives the defaults",
			file: "",
			check: func(t *testing.T, c *Config) {
				if c.ScanWorkers != 8 || c.Distribution != "wikimedia" || c.UpdateID != "s" ||
					c.FallbackAuthor != "Author" || c.FallbackEmail != "email@domain" ||
					c.VerifyCommand != "/bin/bash" || c.ForceNumericUser || c.Registry != "" ||
					c.TemplateEngine != "jinja2" || c.Builder != "classic" {
					t.Errorf("defaults not applied: %+v", c)
				}
				if want := []string{"-c", "{path}/test.sh {image}"}; !reflect.DeepEqual(c.VerifyArgs, want) {
					t.Errorf("verify_args = %q, want %q", c.VerifyArgs, want)
				}
				if want := map[string]int{"root": 0, "www-data": 33, "nobody": 65534}; !reflect.DeepEqual(c.KnownUIDMappings, want) {
					t.Errorf("known_uid_mappings = %v, want %v", c.KnownUIDMappings, want)
				}
				if c.ContainerLimits != nil || c.HTTPProxy != "" || c.AptOnlyProxy != "" {
					t.Errorf("unset keys set: %+v", c)
				}
			},
		},
		{
			name: "null document is an empty mapping",
			file: "---\n~\n",
			check: func(t *testing.T, c *Config) {
				if c.ScanWorkers != 8 {
					t.Errorf("scan_workers = %d", c.ScanWorkers)
				}
			},
		},
		{
			name: "user file under -c file, shallow merge",
			user: "registry: user.example\nnamespace: userns\nknown_uid_mappings: {alice: 1000}\n",
			file: "registry: repo.example\n",
			check: func(t *testing.T, c *Config) {
				if c.Registry != "repo.example" || c.Namespace != "userns" {
					t.Errorf("registry=%q namespace=%q", c.Registry, c.Namespace)
				}
				if want := map[string]int{"alice": 1000}; !reflect.DeepEqual(c.KnownUIDMappings, want) {
					t.Errorf("a mapping replaces the default whole: got %v", c.KnownUIDMappings)
				}
			},
		},
		{
			name: "http_proxy fills apt_only_proxy",
			file: "http_proxy: http://proxy:8080\n",
			check: func(t *testing.T, c *Config) {
				if c.AptOnlyProxy != "http://proxy:8080" || c.Vars["apt_only_proxy"] != "http://proxy:8080" {
					t.Errorf("apt_only_proxy = %q, var %v", c.AptOnlyProxy, c.Vars["apt_only_proxy"])
				}
			},
		},
		{
			name: "apt_only_proxy kept when set",
			file: "http_proxy: http://a\napt_only_proxy: http://b\n",
			check: func(t *testing.T, c *Config) {
				if c.AptOnlyProxy != "http://b" || c.HTTPProxy != "http://a" {
					t.Errorf("got %q %q", c.HTTPProxy, c.AptOnlyProxy)
				}
			},
		},
		{
			name: "unknown keys and seed_image are template variables",
			file: "seed_image: debian:bookworm\nmy_var: [1, 2]\n",
			check: func(t *testing.T, c *Config) {
				if c.Vars["seed_image"] != "debian:bookworm" {
					t.Errorf("seed_image = %v", c.Vars["seed_image"])
				}
				if !reflect.DeepEqual(c.Vars["my_var"], []any{1, 2}) {
					t.Errorf("my_var = %#v", c.Vars["my_var"])
				}
				if c.Vars["registry"] != "" || c.Vars["scan_workers"] != 8 {
					t.Errorf("known keys missing from Vars: %v", c.Vars)
				}
			},
		},
		{
			name: "credentials and base images",
			file: "username: bot\npassword: s3cret\nbase_images:\n  - reg/x/bookworm:20240101\n",
			check: func(t *testing.T, c *Config) {
				if c.Username != "bot" || c.Password != "s3cret" || !reflect.DeepEqual(c.BaseImages, []string{"reg/x/bookworm:20240101"}) {
					t.Errorf("got %+v", c)
				}
				if _, ok := c.Vars["password"]; ok {
					t.Error("password is a template variable: a template could bake it into a layer")
				}
				if c.Vars["username"] != "bot" {
					t.Errorf("username var = %v", c.Vars["username"])
				}
			},
		},
		{
			name: "container_limits string",
			file: "container_limits: memory=1073741824,memswap=-1, cpushares=512,cpusetcpus=0-1\n",
			check: func(t *testing.T, c *Config) {
				want := &Limits{Memory: 1073741824, MemorySwap: -1, CPUShares: 512, CPUSetCPUs: "0-1"}
				if !reflect.DeepEqual(c.ContainerLimits, want) {
					t.Errorf("limits = %+v, want %+v", c.ContainerLimits, want)
				}
			},
		},
		{
			name: "container_limits mapping",
			file: "container_limits: {memory: 100, cpusetcpus: \"0\"}\n",
			check: func(t *testing.T, c *Config) {
				want := &Limits{Memory: 100, CPUSetCPUs: "0"}
				if !reflect.DeepEqual(c.ContainerLimits, want) {
					t.Errorf("limits = %+v, want %+v", c.ContainerLimits, want)
				}
			},
		},
		{
			name: "secrets",
			file: "builder: buildkit\nsecrets:\n  pip: {env: PIP_TOKEN}\n  netrc: {file: /root/.netrc}\n",
			check: func(t *testing.T, c *Config) {
				want := map[string]Secret{"pip": {Env: "PIP_TOKEN"}, "netrc": {File: "/root/.netrc"}}
				if !reflect.DeepEqual(c.Secrets, want) || c.Builder != "buildkit" {
					t.Errorf("secrets = %+v", c.Secrets)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := ""
			if tt.user != "" {
				user = write(t, "user.yaml", tt.user)
			}
			c, err := LoadFiles(user, write(t, "config.yaml", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		want []string // substrings of the error, the file:line first
	}{
		{"not a mapping", "- a\n- b\n", []string{"config.yaml:1:", "mapping"}},
		{"yaml syntax", "registry: [\n", []string{"config.yaml", "parsing"}},
		{"scan_workers not a number", "\nscan_workers: many\n", []string{"config.yaml:2: scan_workers", "whole number"}},
		{"scan_workers zero", "scan_workers: 0\n", []string{"config.yaml:1: scan_workers", "at least 1"}},
		{"limits unknown key", "container_limits: memory=1,swap=2\n", []string{"config.yaml:1: container_limits", `unknown limit "swap"`}},
		{"limits malformed item", "container_limits: memory\n", []string{"container_limits", `"memory" is not key=value`}},
		{"limits not a number", "container_limits: memory=1g\n", []string{"container_limits", "memory=1g: not a whole number"}},
		{"uid not a number", "known_uid_mappings: {bob: x}\n", []string{"known_uid_mappings", "uid of bob"}},
		{"base_images not a list", "base_images: foo\n", []string{"config.yaml:1: base_images", "list"}},
		{"force_numeric_user not a bool", "force_numeric_user: maybe\n", []string{"force_numeric_user", "true or false"}},
		{"template engine", "template_engine: mako\n", []string{"template_engine", "jinja2 or go"}},
		{"builder", "builder: kaniko\n", []string{"builder", "classic or buildkit"}},
		{"secret with both", "secrets: {a: {env: X, file: Y}}\n", []string{"secrets", "secret a"}},
		{"two errors at once", "scan_workers: x\nbuilder: y\n", []string{"scan_workers", "builder"}},
		{"duplicate key", "registry: a.example\nnamespace: n\nregistry: b.example\n", []string{"config.yaml:3:", "registry is already set at line 1"}},
		{"duplicate nested key", "known_uid_mappings:\n  bob: 1\n  bob: 2\n", []string{"config.yaml:3:", "bob is already set at line 2"}},
		{"two duplicates", "a: 1\na: 2\nb: 1\nb: 2\n", []string{"config.yaml:2:", "a is already set at line 1", "config.yaml:4:", "b is already set at line 3"}},
		{"registry URL", "registry: https://host/\n", []string{"config.yaml:1: registry", `"https://host/" is a URL`}},
		{"registry path", "\nregistry: host/releng\n", []string{"config.yaml:2: registry", "path"}},
		{"registry not a host", "registry: my host\n", []string{"config.yaml:1: registry", "host[:port]"}},
		{"namespace", "namespace: Rel Probe/UPPER\n", []string{"config.yaml:1: namespace", `"Rel Probe"`}},
		{"namespace component", "namespace: releng/UPPER\n", []string{"config.yaml:1: namespace", `"UPPER"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFiles("", write(t, "config.yaml", tt.file))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestDuplicateKeyIs: a duplicate key is matchable, in the user file too.
func TestDuplicateKeyIs(t *testing.T) {
	user := write(t, "user.yaml", "namespace: a\nnamespace: b\n")
	_, err := LoadFiles(user, write(t, "config.yaml", ""))
	if !errors.Is(err, ErrDuplicateKey) || !strings.Contains(err.Error(), "user.yaml:2:") {
		t.Fatalf("err = %v, want ErrDuplicateKey at user.yaml:2", err)
	}
}

// TestRegistryCredentials: a registry holding user:password@ is refused at
// load, and neither the password nor any other part of the value is in the
// message.
func TestRegistryCredentials(t *testing.T) {
	for i, registry := range []string{"alice:hunter2-pw@reg.internal:5000", "https://alice:hunter2-pw@reg.internal/"} {
		// Not named after the value: the test's temporary path would hold it.
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			_, err := LoadFiles("", write(t, "config.yaml", "registry: "+registry+"\n"))
			if err == nil || !strings.Contains(err.Error(), "config.yaml:1: registry: holds credentials") {
				t.Fatalf("err = %v, want a credentials error naming config.yaml:1 and registry", err)
			}
			for _, secret := range []string{"hunter2", "alice", "reg.internal"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("err = %q repeats %q", err, secret)
				}
			}
		})
	}
}

func TestNoneKeys(t *testing.T) {
	c, err := LoadFiles("", write(t, "config.yaml", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"http_proxy", "apt_only_proxy", "username", "ca_bundle"} {
		v, ok := c.Vars[key]
		if !ok || v != nil {
			t.Errorf("Vars[%s] = %v, %v: want defined as nil (None)", key, v, ok)
		}
	}
	if _, ok := c.Vars["password"]; ok {
		t.Error("password is a template variable")
	}
	if c.HTTPProxy != "" || c.AptOnlyProxy != "" || c.Username != "" || c.CABundle != "" {
		t.Errorf("none keys are not \"\" in Config: %+v", c)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.yaml")
	_, err := LoadFiles("", path)
	if !errors.Is(err, ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
	if want := "Config file " + path + " does not exist"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}
}

func TestUserFile(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", "/xdg")
	if got := UserFile(); got != "/xdg/docker-pkg.yaml" {
		t.Errorf("UserFile() = %q", got)
	}
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got := UserFile(); got != "/home/u/.config/docker-pkg.yaml" {
		t.Errorf("UserFile() = %q", got)
	}
}

func TestLoadReadsUserFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)
	if err := os.WriteFile(filepath.Join(dir, "docker-pkg.yaml"), []byte("namespace: fromuser\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(write(t, "config.yaml", "registry: r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Namespace != "fromuser" || c.Registry != "r" {
		t.Errorf("got %q %q", c.Namespace, c.Registry)
	}
}
