// Package changelog reads and writes the Debian changelogs that name and
// version docker-pkg images: the top entry's name and version (Parse),
// version bumping for security updates (Bump), new entries (NewEntry,
// CheckReason, Maintainer), and the writing of a cascade of new entries.
//
// Writing goes through one path. Acquire takes the tree's exclusive lock
// (an flock on DIR/.docker-pkg.lock holding the holder's pid) and repairs
// what an interrupted run left; a Batch of the lock stages every new
// changelog next to its original and commits them with a journal, so a
// cascade lands whole or not at all, across errors, interrupts and kill -9.
// A command that writes changelogs holds the lock from the moment it reads
// the tree until its last rename, so two runs take turns instead of losing
// each other's entries.
//
// The package keeps three kinds of file in a tree, none of them a build
// input (IsInternal): the lock file, the journal, and temporary files
// (IsTemp), which exist only while a run writes or after it died.
//
// Only regular files of at most MaxSize bytes are read: a changelog that is
// a folder, a FIFO or a device is an error saying so, never a hang.
package changelog
