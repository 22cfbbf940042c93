// Package config owns docker-pkg's configuration: the built-in defaults, the
// user file, the file named by -c, the rules that tie keys together
// (apt_only_proxy falling back to http_proxy) and the validation of the keys
// the tool itself reads (registry and namespace with Docker's reference
// grammar, a key set twice is an error). Every key, known or not, is also a
// template variable; Config.Vars holds them all, password excepted, and
// defines the keys whose default is None (http_proxy, apt_only_proxy,
// username, ca_bundle) as nil.
package config
