// Package image owns one image definition: its folder, changelog and control
// metadata (Load), and the work done on it against the Docker Engine and the
// registry: the build context, the classic and BuildKit builds (Build,
// BuildKit, with build-stage containers and build secrets), verification,
// its build record, the published check, pull and publish.
package image
