// Package changelog reads and writes the Debian changelogs that name and
// version docker-pkg images: the top entry's name and version, version
// bumping for security updates, and the atomic prepending of a new entry.
package changelog
