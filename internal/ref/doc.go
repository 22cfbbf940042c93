// Package ref is the one home of the grammars docker-pkg shares between
// packages: a Docker tag, one component of a repository path, a registry
// host, a namespace, the repository join (registry/namespace/short), the
// split of a full label into name and tag, and python-debian's version
// syntax. It has no state; every function is pure.
package ref
