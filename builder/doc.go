// Package builder owns the repository of image definitions as a whole: the
// scan of a directory into a Tree, the dependency graph between images
// (control files plus what the templates use), each image's state (to_build,
// built, verified, published, error) and why, read from the daemon, the
// registry and the build records the images carry, and the work done on the
// whole tree: the plan, the parallel build, publishing, update (version
// bumps that cascade to every descendant, all or nothing) and prune.
package builder
