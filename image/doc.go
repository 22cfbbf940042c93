// Package image owns one image definition and what is done to one image:
// its folder, changelog and control metadata (Load, AddDepends); its build
// context (a private copy of the folder, .dockerignore applied, symbolic
// links into the repository followed and any other refused) and the digest
// of its inputs; its build record (one label); its verification
// (verify_command);
// and the backends that build a rendered context into an image: Classic
// (the Docker Engine's classic builder) and Session (the Engine's BuildKit,
// with a session serving secrets), with build-stage containers.
//
// What a registry holds is package registry's business; the order in which
// images are built is package builder's.
package image
