// Package dockerfile renders Dockerfile.template files.
package dockerfile
