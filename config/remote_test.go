package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestBuilders(t *testing.T) {
	path := write(t, "config.yaml", `registry: 127.0.0.1:5000
platforms: [linux/amd64, linux/arm64/v8, linux/amd64]
build_cache: registry
builders:
  - name: bk1
    address: tcp://10.0.0.5:1234
    jobs: 4
    tls: {ca: ca.pem, cert: /etc/bk/cert.pem, key: key.pem}
  - name: arm
    address: unix:///run/buildkit/buildkitd.sock
    platforms: [linux/arm64]
  - name: pod
    address: kube-pod://buildkitd-0
`)
	c, err := LoadFiles("", path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	want := []Remote{
		{Name: "bk1", Address: "tcp://10.0.0.5:1234", Jobs: 4, TLS: &TLSFiles{
			CA: filepath.Join(dir, "ca.pem"), Cert: "/etc/bk/cert.pem", Key: filepath.Join(dir, "key.pem"),
		}},
		{Name: "arm", Address: "unix:///run/buildkit/buildkitd.sock", Jobs: 1, Platforms: []string{"linux/arm64"}},
		{Name: "pod", Address: "kube-pod://buildkitd-0", Jobs: 1},
	}
	if !reflect.DeepEqual(c.Builders, want) {
		t.Errorf("builders:\n%+v\nwant\n%+v", c.Builders, want)
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !reflect.DeepEqual(c.Platforms, want) {
		t.Errorf("platforms = %q, want %q (normalized, once each)", c.Platforms, want)
	}
	if c.BuildCache != "registry" {
		t.Errorf("build_cache = %q", c.BuildCache)
	}
}

func TestBuildersDefaults(t *testing.T) {
	c, err := LoadFiles("", write(t, "config.yaml", ""))
	if err != nil {
		t.Fatal(err)
	}
	if c.Builders != nil || c.Platforms != nil || c.BuildCache != "none" {
		t.Errorf("defaults: builders %v, platforms %v, build_cache %q; want none, none, none", c.Builders, c.Platforms, c.BuildCache)
	}
}

func TestBuildersErrors(t *testing.T) {
	tests := []struct {
		name, body string
		want       []string // each in the error
	}{
		{"no registry", "builders: [{name: bk1, address: 'tcp://h:1'}]\n",
			[]string{"config.yaml:1: builders: builders hand images over through the registry: set registry"}},
		{"cache without registry", "build_cache: registry\n",
			[]string{"config.yaml:1: build_cache: a registry build cache needs a registry"}},
		{"bad cache", "build_cache: s3\n", []string{`build_cache: want none or registry, got "s3"`}},
		{"not a list", "registry: r:5000\nbuilders: {name: bk1}\n", []string{"config.yaml:2: builders: want a list"}},
		{"missing fields", "registry: r:5000\nbuilders:\n  - jobs: 2\n", []string{
			"builder 1: name: missing", "builder 1: address: missing",
		}},
		{"bad fields", "registry: r:5000\nbuilders:\n  - {name: Bk_1!, address: 'ftp://h', jobs: 0, colour: red}\n", []string{
			"name: want lower-case letters", "unknown scheme ftp://", "jobs: want a whole number", `unknown key "colour"`,
		}},
		{"tcp without port", "registry: r:5000\nbuilders: [{name: a, address: 'tcp://host'}]\n", []string{"builder a: address: want tcp://HOST:PORT"}},
		{"tls on unix", "registry: r:5000\nbuilders: [{name: a, address: 'unix:///s', tls: {ca: a, cert: b, key: c}}]\n",
			[]string{"builder a: tls: only a tcp:// address"}},
		{"tls half", "registry: r:5000\nbuilders: [{name: a, address: 'tcp://h:1', tls: {ca: a}}]\n",
			[]string{"tls: cert: want the path", "tls: key: want the path"}},
		{"twice", "registry: r:5000\nbuilders: [{name: a, address: 'tcp://h:1'}, {name: a, address: 'tcp://h:2'}]\n",
			[]string{"builder a: the name is used twice"}},
		{"credentials in address", "registry: r:5000\nbuilders: [{name: a, address: 'tcp://u:p@h:1'}]\n",
			[]string{"builder a: address: holds credentials"}},
		{"bad platform", "platforms: [amd64, linux/amd64]\n", []string{`config.yaml:1: platforms: platform "amd64": want os/architecture`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadFiles("", write(t, "config.yaml", tt.body))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not say %q", err, w)
				}
			}
			if strings.Contains(err.Error(), ":p@") {
				t.Errorf("the error repeats the credential: %v", err)
			}
		})
	}
}
