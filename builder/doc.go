// Package builder owns the repository of image definitions as a whole: the
// scan of a directory into a Tree, the dependency graph between images
// (control files plus what the templates use), each image's state (to_build,
// built, verified, published, error) and the plan of what a build would do.
package builder
