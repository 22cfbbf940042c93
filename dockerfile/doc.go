// Package dockerfile renders Dockerfile.template files into Dockerfiles, with
// the helpers docker-pkg gives templates: image_tag, upstream_version, uid,
// add_user, apt_install and apt_remove. It also checks force_numeric_user
// (CheckNumericUser).
//
// Templates are Jinja2 by default, rendered to the bytes Python's Jinja2 3.1
// gives in docker-pkg: StrictUndefined, the do extension, no autoescaping,
// one trailing newline dropped, values printed as Python's str() prints
// them. The engine is minijinja; where it reads a template differently from
// Jinja2 the source is rewritten first, keeping every line in place (see
// prepare): Python string escapes (a backslash-newline in a string literal
// is a line continuation), {% do %} of any expression, lists mutated with
// .append, a fresh scope for each loop iteration.
//
// Known differences from Jinja2 that remain: ~ formats None, booleans and
// containers as minijinja does (none, true, ["a"]); Python's str methods
// ("a,b".split(",")) and % formatting are not available; namespace() is
// callable (in docker-pkg the namespace setting hides it); \N{...} escapes
// are refused.
//
// With template_engine: go, templates are Go text/template instead, with
// sprig's deterministic functions (none reads the environment, the clock or
// a random source), the helpers as functions, and every configuration key as
// .key and as a function (key), so {{ registry }} and {{ "x" | image_tag }}
// read the same in both dialects. The helpers are one table (helpers.go)
// registered into both dialects.
//
// A render is bounded: the template file is read only if it is a regular
// file of at most MaxTemplateSize, the output is at most MaxOutputSize, the
// work at most WithMaxSteps, and it stops when its context is done.
// ImageRefs finds the images a template names through image_tag without
// rendering it.
package dockerfile
