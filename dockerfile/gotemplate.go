package dockerfile

import (
	"bytes"
	"go/token"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

// goTemplates renders the Go dialect: text/template with the sprig
// functions, the helpers, and every configuration key both as .key and as a
// function, so {{ registry }} and {{ "x" | image_tag }} read as in Jinja2.
type goTemplates struct {
	funcs template.FuncMap
	vars  map[string]any
}

// goBuiltins are text/template's own functions, which configuration keys do
// not replace.
var goBuiltins = map[string]bool{
	"and": true, "call": true, "html": true, "index": true, "slice": true, "js": true,
	"len": true, "not": true, "or": true, "print": true, "printf": true, "println": true,
	"urlquery": true, "eq": true, "ge": true, "gt": true, "le": true, "lt": true, "ne": true,
}

func newGoTemplates(h *helpers, vars map[string]any) *goTemplates {
	funcs := sprig.TxtFuncMap()
	for k, v := range vars {
		if token.IsIdentifier(k) && !goBuiltins[k] {
			funcs[k] = func() any { return v }
		}
	}
	funcs["image_tag"] = h.imageTag
	funcs["upstream_version"] = upstreamVersion
	funcs["uid"] = h.uid
	funcs["add_user"] = h.addUser
	funcs["apt_install"] = h.aptInstall
	funcs["apt_remove"] = h.aptRemove
	return &goTemplates{funcs: funcs, vars: vars}
}

type goTemplate struct {
	path string
	tmpl *template.Template
	vars map[string]any
}

func (g *goTemplates) parse(path string, src []byte) (*goTemplate, error) {
	tmpl, err := template.New(path).Option("missingkey=error").Funcs(g.funcs).Parse(string(src))
	if err != nil {
		return nil, goError(path, err)
	}
	return &goTemplate{path: path, tmpl: tmpl, vars: g.vars}, nil
}

func (t *goTemplate) render() ([]byte, error) {
	var out bytes.Buffer
	if err := t.tmpl.Execute(&out, t.vars); err != nil {
		return nil, goError(t.path, err)
	}
	return out.Bytes(), nil
}

// goError turns text/template's "template: PATH:LINE[:COL]: [executing
// "PATH" at <...>: ]MESSAGE" into an *Error.
func goError(path string, err error) error {
	msg, ok := strings.CutPrefix(err.Error(), "template: "+path+":")
	if !ok {
		return &Error{Path: path, Err: err}
	}
	lineText, rest, _ := strings.Cut(msg, ":")
	line, convErr := strconv.Atoi(lineText)
	if convErr != nil {
		return &Error{Path: path, Err: err}
	}
	if col, after, ok := strings.Cut(rest, ":"); ok {
		if _, err := strconv.Atoi(col); err == nil {
			rest = after
		}
	}
	rest = strings.TrimSpace(rest)
	rest = strings.TrimPrefix(rest, "executing "+strconv.Quote(path)+" ")
	return &Error{Path: path, Line: line, Err: &wrapped{msg: rest, err: err}}
}

// wrapped is a shorter message for err, which stays matchable (a helper's
// ErrUnknownImage through text/template's ExecError).
type wrapped struct {
	msg string
	err error
}

func (w *wrapped) Error() string { return w.msg }
func (w *wrapped) Unwrap() error { return w.err }
