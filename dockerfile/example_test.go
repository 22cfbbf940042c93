package dockerfile_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/docker-pkg/docker-pkg/config"
	"github.com/docker-pkg/docker-pkg/dockerfile"
)

// render renders a template with the configuration in configYAML, as the
// builder does with the user's config.yaml. The "|" it prints after the
// output shows where the output ends: apt_install ends with a space.
func render(configYAML string, images map[string]string, template string, opts ...dockerfile.Option) {
	f, err := os.CreateTemp("", "config-*.yaml")
	if err != nil {
		panic(err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(configYAML); err != nil {
		panic(err)
	}
	f.Close()
	cfg, err := config.LoadFiles("", f.Name())
	if err != nil {
		panic(err)
	}
	r, err := dockerfile.New(cfg, images, opts...)
	if err != nil {
		panic(err)
	}
	out, err := r.Render(context.Background(), "Dockerfile.template", []byte(template))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s|\n", out)
}

func ExampleRenderer_Render() {
	render(`
registry: docker-registry.example.org
namespace: releng
`, map[string]string{
		"docker-registry.example.org/releng/node20": "docker-registry.example.org/releng/node20:20.11.0-1",
	}, `FROM {{ "node20" | image_tag }}
{% set version = "1.2" -%}
{% if registry %}
ENV VERSION={{ version }}
{% endif %}
USER {{ "nobody" | uid }}
`)
	// Output:
	// FROM docker-registry.example.org/releng/node20:20.11.0-1
	//
	// ENV VERSION=1.2
	//
	// USER 65534|
}

func Example_imageTag() {
	render(`
registry: docker-registry.example.org
namespace: releng
base_images:
  - docker-registry.example.org/releng/bookworm:20240101
`, map[string]string{
		"docker-registry.example.org/releng/node20": "docker-registry.example.org/releng/node20:20.11.0-1",
	}, `FROM {{ "node20" | image_tag }}
FROM {{ "bookworm" | image_tag }}`)
	// Output:
	// FROM docker-registry.example.org/releng/node20:20.11.0-1
	// FROM docker-registry.example.org/releng/bookworm:20240101|
}

func Example_imageTagRegistryPort() {
	render(`
registry: 127.0.0.1:5000
namespace: ns
`, map[string]string{"127.0.0.1:5000/ns/x": "127.0.0.1:5000/ns/x:1.0-1"},
		`FROM {{ "x" | image_tag }}
ARG VERSION={{ "x" | image_tag | upstream_version }}`)
	// Output:
	// FROM 127.0.0.1:5000/ns/x:1.0-1
	// ARG VERSION=1.0|
}

func Example_imageTagUnknown() {
	render("registry: docker-registry.example.org\n", nil, "\nFROM {{ \"nodejs\" | image_tag }}")
	// Output:
	// rendering Dockerfile.template:2: image_tag: image not found: docker-registry.example.org/nodejs
}

func Example_upstreamVersion() {
	render("{}", nil, `{{ "x/jaeger:1.2.3-1-20241211" | upstream_version }}
{{ "x/node20:20.11.0-1" | upstream_version }}
{{ "x/php:8.2.7-1~deb12u1-s2" | upstream_version }}
{{ "x/busybox:1.36" | upstream_version }}`)
	// Output:
	// 1.2.3
	// 20.11.0
	// 8.2.7
	// 1.36|
}

func Example_uid() {
	logger := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
	render(`
known_uid_mappings:
  www-data: 33
  somebody: 65533
`, nil, `USER {{ "www-data" | uid }}
RUN chown {{ "somebody" | uid }} /srv
USER {{ "ghost" | uid }}`, dockerfile.WithLogger(logger))
	// Output:
	// level=WARN msg="UID mapping for user ghost not found"
	// USER 33
	// RUN chown 65533 /srv
	// USER ghost|
}

func Example_addUser() {
	render("known_uid_mappings: {somebody: 65533}\n", nil, `RUN {{ "somebody" | add_user }}
RUN {{ "ghost" | add_user }}`)
	// Output:
	// rendering Dockerfile.template:2: add_user: no uid mapping for user 'ghost' in known_uid_mappings
}

func Example_addUserKnown() {
	render("known_uid_mappings: {somebody: 65533}\n", nil, `RUN {{ "somebody" | add_user }}`)
	// Output:
	// RUN groupadd -o -g 65533 -r somebody && useradd -l -o -r -m -d /var/lib/somebody -g somebody -u 65533 somebody|
}

// Without apt_options, the spaces around them stay; a package list may be
// written one package a line.
func Example_aptInstall() {
	render("{}", nil, `RUN {{ "curl
git" | apt_install }}`)
	// Output:
	// RUN apt-get update  \
	//     && DEBIAN_FRONTEND=noninteractive \
	//     apt-get install  --yes curl git --no-install-recommends \
	//     && apt-get clean && rm -rf /var/lib/apt/lists/* |
}

func Example_aptInstallOptions() {
	render("apt_options: -o Dpkg::Options::=--force-confold\n", nil, `RUN {{ "curl" | apt_install }}`)
	// Output:
	// RUN apt-get update -o Dpkg::Options::=--force-confold \
	//     && DEBIAN_FRONTEND=noninteractive \
	//     apt-get install -o Dpkg::Options::=--force-confold --yes curl --no-install-recommends \
	//     && apt-get clean && rm -rf /var/lib/apt/lists/* |
}

// http_proxy sets apt_only_proxy when it is not set itself.
func Example_aptInstallProxy() {
	render("http_proxy: http://webproxy.example.org:8080\napt_options: -q\n", nil, `RUN {{ "curl git" | apt_install }}`)
	// Output:
	// RUN echo 'Acquire::http::Proxy "http://webproxy.example.org:8080";' > /etc/apt/apt.conf.d/80_proxy \
	//     && apt-get update -q \
	//     && DEBIAN_FRONTEND=noninteractive \
	//     apt-get install -q --yes curl git --no-install-recommends \
	//     && rm -f /etc/apt/apt.conf.d/80_proxy \
	//     && apt-get clean && rm -rf /var/lib/apt/lists/* |
}

// Unlike apt_install, apt_remove keeps newlines in the package list.
func Example_aptRemove() {
	render("apt_options: -q\n", nil, `RUN {{ "curl
git" | apt_remove }}`)
	// Output:
	// RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get remove --yes --purge curl
	// git \
	//     && apt-get clean && rm -rf /var/lib/apt/lists/* |
}

// With a proxy, the reference glues a backslash to apt-get (the shell reads
// \a as a); it is reproduced.
func Example_aptRemoveProxy() {
	render("apt_only_proxy: http://webproxy.example.org:8080\n", nil, `RUN {{ "curl" | apt_remove }}`)
	// Output:
	// RUN echo 'Acquire::http::Proxy "http://webproxy.example.org:8080";' > /etc/apt/apt.conf.d/80_proxy  && \apt-get update && DEBIAN_FRONTEND=noninteractive apt-get remove --yes --purge curl \
	//     && rm -f /etc/apt/apt.conf.d/80_proxy \
	//     && apt-get clean && rm -rf /var/lib/apt/lists/* |
}

// The Go dialect reads the same helpers and configuration keys.
func Example_goTemplate() {
	render(`
template_engine: go
registry: docker-registry.example.org
known_uid_mappings: {somebody: 65533}
`, map[string]string{"docker-registry.example.org/node20": "docker-registry.example.org/node20:20.11.0-1"},
		`FROM {{ "node20" | image_tag }}
LABEL registry={{ registry }} namespace={{ .namespace | default "none" }}
USER {{ "somebody" | uid }}
`)
	// Output:
	// FROM docker-registry.example.org/node20:20.11.0-1
	// LABEL registry=docker-registry.example.org namespace=none
	// USER 65533
	// |
}

func ExampleCheckNumericUser() {
	fmt.Println(dockerfile.CheckNumericUser([]byte("FROM x\nUSER root\nUSER 65534:65534\n")))
	fmt.Println(dockerfile.CheckNumericUser([]byte("FROM x\nUSER 0\n  user nobody\n")))
	fmt.Println(dockerfile.CheckNumericUser([]byte("FROM x\nRUN true\n")))
	// Output:
	// <nil>
	// line 3: user nobody: the last USER is not a numeric uid[:gid] (force_numeric_user)
	// <nil>
}

// ImageRefs finds the images a template names through image_tag without
// rendering it, reading the template as the engine does: the commented-out
// reference does not count.
func ExampleImageRefs() {
	refs, err := dockerfile.ImageRefs("jinja2", "Dockerfile.template", []byte(`{# FROM {{ "buster" | image_tag }} #}
FROM {{ "bookworm" | image_tag }}
COPY --from={{ 'node20' | image_tag }} /usr/bin/node /usr/bin/node
`))
	fmt.Println(refs, err)
	refs, err = dockerfile.ImageRefs("go", "Dockerfile.template", []byte(`{{/* image_tag "buster" */}}
FROM {{ image_tag "bookworm" }}
`))
	fmt.Println(refs, err)
	// Output:
	// [{bookworm 2} {node20 3}] <nil>
	// [{bookworm 2}] <nil>
}
