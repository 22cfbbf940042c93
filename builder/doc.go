// Package builder owns the repository of image definitions as a whole and
// the work done on it. Everything enters through one value, made by New:
// the scanned Tree (images, the dependency graph from control files and
// the templates' image_tag), with the Docker Engine, the registry and the
// backend it builds on.
//
//   - Plan: each image's state (to_build, built, published, error) and why,
//     read through one locator that asks the local engine (one ImageList)
//     and the registry where an image is and what its build record says;
//     then the build chain of a selection.
//   - Build: the scheduler. Images build in parallel (WithJobs), each after
//     its parents, through one per-image pipeline: render -> record ->
//     build (on a Backend) -> verify. A failure skips only its descendants.
//   - Publish, Update (version bumps that cascade to every descendant, all
//     or nothing; of the images built on a base image too), Stale, Prune,
//     Render.
//   - Lint: every problem of the repository in one list (what the scan
//     warns about, templates, links, stray temporary files), and the
//     missing Depends that Fix adds to control files.
//
// It never prints: progress goes to WithEvents, build output to WithLog.
package builder
