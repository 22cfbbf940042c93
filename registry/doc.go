// Package registry owns everything that talks to a container registry: the
// transport (TLS, ca_bundle, http_proxy, the plain-HTTP rule for loopback
// and insecure_registries), credentials (the configuration, then Docker's
// credential store and helpers), bounded retries, the redaction of every
// credential from messages, whether an image is published and what its
// build record says (labels, cached by config digest), and the pulls and
// pushes the Docker daemon makes on our behalf.
//
// It knows labels (registry/namespace/name:tag), not image definitions: it
// does not import package image.
package registry
