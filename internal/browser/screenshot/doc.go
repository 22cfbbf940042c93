// Command screenshot writes a PNG of a local HTML page as headless
// Chromium shows it, for the pictures under docs/:
//
//	go run ./internal/browser/screenshot -size 1280x1500 -o docs/report.png report.html
package main
