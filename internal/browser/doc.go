// Package browser runs Debian's Chromium headless on a local page, for the
// tests and the documentation that need what a person's browser would do
// with it: the DOM after the page loaded, the network requests the page
// made, a screenshot.
//
// Every run gets a fresh profile, a time limit and its own process group,
// which is killed when the run ends, so no Chromium outlives it.
package browser
