// Package report owns the presentation of one build run: a Run (the images
// of the tree, what became of each, where and when it was built) written as
// one self-contained HTML page, or as JSON with the same data plus what is
// derived from it (the critical path, a summary per lane).
//
// The page needs no network: its CSS, its little JavaScript and its
// pictures (the dependency graph and the timeline, laid out here in Go) are
// inline. The output depends only on the Run: every time shown is relative
// to Run.Started, every list has a fixed order, and every string from the
// Run (image names, reasons, log lines) is escaped.
package report
