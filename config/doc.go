// Package config owns docker-pkg's configuration: the built-in defaults, the
// user file, the file named by -c, the rules that tie keys together
// (apt_only_proxy falling back to http_proxy) and the validation of the keys
// the tool itself reads. Every key, known or not, is also a template
// variable; Config.Vars holds them all.
package config
