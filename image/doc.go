// Package image owns one image definition: its folder, changelog and control
// metadata, and the work done on it against the Docker Engine and the
// registry (build, verify, publish).
package image
