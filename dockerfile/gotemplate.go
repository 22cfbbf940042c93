package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"go/token"
	"strconv"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"

	"github.com/Masterminds/sprig/v3"
)

// goTemplates renders the Go dialect: text/template with sprig's
// deterministic functions, the helpers, and every configuration key both as
// .key and as a function, so {{ registry }} and {{ "x" | image_tag }} read
// as in Jinja2.
type goTemplates struct {
	funcs template.FuncMap
	vars  map[string]any
	steps int // loop iterations and template calls of one render
}

// goBuiltins are text/template's own functions, which configuration keys do
// not replace.
var goBuiltins = map[string]bool{
	"and": true, "call": true, "html": true, "index": true, "slice": true, "js": true,
	"len": true, "not": true, "or": true, "print": true, "printf": true, "println": true,
	"urlquery": true, "eq": true, "ge": true, "gt": true, "le": true, "lt": true, "ne": true,
}

// notDeterministic are the functions of sprig's hermetic map (which has no
// env, expandenv, now, rand*, uuidv4 or getHostByName already) that still
// read the clock, the host's time zone or a random source: a Dockerfile
// renders the same wherever and whenever it is rendered.
var notDeterministic = []string{
	"ago", "durationRound", // the clock
	"toDate", "mustToDate", // the host's time zone ($TZ)
	"randInt", "shuffle",
	"bcrypt", "htpasswd", "encryptAES", "genPrivateKey", "buildCustomCert",
	"genCA", "genCAWithKey", "genSelfSignedCert", "genSelfSignedCertWithKey",
	"genSignedCert", "genSignedCertWithKey",
}

// maxItems bounds the lists sprig builds from a number (until, untilStep,
// seq) and the result of repeat, which would otherwise allocate whatever a
// template asks for.
const maxItems = 1 << 20

func goFuncs(h *helpers, vars map[string]any) template.FuncMap {
	funcs := sprig.HermeticTxtFuncMap()
	for _, name := range notDeterministic {
		delete(funcs, name)
	}
	until, untilStep, seq := funcs["until"].(func(int) []int), funcs["untilStep"].(func(int, int, int) []int), funcs["seq"].(func(...int) string)
	funcs["until"] = func(n int) ([]int, error) {
		if n > maxItems || -n > maxItems {
			return nil, fmt.Errorf("%w: until %d: more than %d items", ErrTooLarge, n, maxItems)
		}
		return until(n), nil
	}
	funcs["untilStep"] = func(start, stop, step int) ([]int, error) {
		if step != 0 && ((stop-start)/step > maxItems || (stop-start)/step < -maxItems) {
			return nil, fmt.Errorf("%w: untilStep %d %d %d: more than %d items", ErrTooLarge, start, stop, step, maxItems)
		}
		return untilStep(start, stop, step), nil
	}
	funcs["seq"] = func(params ...int) (string, error) {
		if len(params) > 0 && (params[len(params)-1] > maxItems || params[len(params)-1] < -maxItems ||
			len(params) > 1 && (params[0] > maxItems || params[0] < -maxItems)) {
			return "", fmt.Errorf("%w: seq: more than %d items", ErrTooLarge, maxItems)
		}
		return seq(params...), nil
	}
	funcs["repeat"] = func(count int, s string) (string, error) {
		if count > 0 && len(s) > 0 && count > MaxOutputSize/len(s) {
			return "", fmt.Errorf("%w: repeat %d: the result passes %d MiB", ErrTooLarge, count, MaxOutputSize>>20)
		}
		return strings.Repeat(s, max(count, 0)), nil
	}
	for k, v := range vars {
		if token.IsIdentifier(k) && !goBuiltins[k] {
			funcs[k] = func() any { return v }
		}
	}
	for _, hp := range h.table() {
		funcs[hp.name] = goHelper(hp)
	}
	// Defined so that parse reaches passwordUse, which says why it is not.
	funcs["password"] = func() (string, error) { return "", errors.New(passwordWhy) }
	return funcs
}

// goHelper makes a helper a function.
func goHelper(hp helper) any {
	if hp.other == nil {
		return hp.fn
	}
	return func(v any) (any, error) {
		if s, ok := v.(string); ok {
			return hp.fn(s)
		}
		hp.other(fmt.Sprint(v))
		return v, nil
	}
}

func newGoTemplates(h *helpers, vars map[string]any, steps int) *goTemplates {
	return &goTemplates{funcs: goFuncs(h, vars), vars: vars, steps: steps}
}

type goTemplate struct {
	path  string
	base  *template.Template // the parse, copied for concurrent renders
	vars  map[string]any
	steps int

	mu   sync.Mutex
	free []*tickingTemplate // copies of base no render is using
}

// tickingTemplate is a template set whose tick function reads the context
// and counts the steps of the one render using it. The first is the parse
// itself; a render that finds none free copies base (Clone), which costs as
// much as a parse, so copies are kept for the next renders.
type tickingTemplate struct {
	tmpl  *template.Template
	ctx   context.Context
	steps int
	limit int
	err   error // why tick stopped the render, said without text/template's words
}

func (tt *tickingTemplate) tick() (string, error) {
	if tt.steps++; tt.steps > tt.limit {
		tt.err = fmt.Errorf("%w: more than %d loop iterations and template calls", ErrTooLong, tt.limit)
	} else {
		tt.err = tt.ctx.Err()
	}
	return "", tt.err
}

func (g *goTemplates) parse(path string, src []byte) (*goTemplate, error) {
	tt := &tickingTemplate{limit: g.steps}
	tmpl, err := template.New(path).Option("missingkey=error").Funcs(g.funcs).Funcs(template.FuncMap{tickFunc: tt.tick}).Parse(string(src))
	if err != nil {
		return nil, goError(path, err)
	}
	for _, t := range tmpl.Templates() {
		if t.Tree == nil || t.Root == nil {
			continue
		}
		if n := passwordUse(t.Root); n != nil {
			return nil, &Error{Path: path, Line: lineOf(string(src), n.Position()), Err: errors.New("password: " + passwordWhy)}
		}
		addTicks(t.Tree)
	}
	tt.tmpl = tmpl
	return &goTemplate{path: path, base: tmpl, vars: g.vars, steps: g.steps, free: []*tickingTemplate{tt}}, nil
}

func (t *goTemplate) get() (*tickingTemplate, error) {
	t.mu.Lock()
	if n := len(t.free); n > 0 {
		tt := t.free[n-1]
		t.free = t.free[:n-1]
		t.mu.Unlock()
		return tt, nil
	}
	t.mu.Unlock()
	// The parse trees are shared; the copy has its own function maps.
	tmpl, err := t.base.Clone()
	if err != nil {
		return nil, err
	}
	tt := &tickingTemplate{tmpl: tmpl, limit: t.steps}
	tmpl.Funcs(template.FuncMap{tickFunc: tt.tick})
	return tt, nil
}

func (t *goTemplate) put(tt *tickingTemplate) {
	tt.ctx = nil
	t.mu.Lock()
	t.free = append(t.free, tt)
	t.mu.Unlock()
}

func (t *goTemplate) render(ctx context.Context, w *output) error {
	tt, err := t.get()
	if err != nil {
		return &Error{Path: t.path, Err: err}
	}
	tt.ctx, tt.steps, tt.err = ctx, 0, nil
	err = tt.tmpl.Execute(w, t.vars)
	stopped := tt.err
	t.put(tt)
	switch {
	case stopped != nil:
		return &Error{Path: t.path, Err: stopped}
	case err != nil:
		return goError(t.path, err)
	}
	return nil
}

// addTicks puts a call of tickFunc at the start of the template and of
// every range body: text/template has no step limit and no context, and
// loops and recursive template calls are the only ways a template runs
// long without writing.
func addTicks(tree *parse.Tree) {
	tick := func(pos parse.Pos) parse.Node {
		id := parse.NewIdentifier(tickFunc).SetPos(pos)
		cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos, Args: []parse.Node{id}}
		pipe := &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{cmd}}
		return &parse.ActionNode{NodeType: parse.NodeAction, Pos: pos, Pipe: pipe}
	}
	prepend := func(l *parse.ListNode) {
		if l != nil {
			l.Nodes = append([]parse.Node{tick(l.Pos)}, l.Nodes...)
		}
	}
	walkTree(tree.Root, func(n parse.Node) {
		if r, ok := n.(*parse.RangeNode); ok {
			prepend(r.List)
		}
	})
	prepend(tree.Root)
}

// passwordUse returns the first mention of the password key (.password,
// $.password or password), which is not a template variable.
func passwordUse(root parse.Node) parse.Node {
	var found parse.Node
	walkTree(root, func(n parse.Node) {
		if found != nil {
			return
		}
		switch n := n.(type) {
		case *parse.IdentifierNode:
			if n.Ident == "password" {
				found = n
			}
		case *parse.FieldNode:
			if n.Ident[0] == "password" {
				found = n
			}
		case *parse.VariableNode:
			if len(n.Ident) > 1 && n.Ident[0] == "$" && n.Ident[1] == "password" {
				found = n
			}
		}
	})
	return found
}

// walkTree calls f on n and every node under it, parents first.
func walkTree(n parse.Node, f func(parse.Node)) {
	if n == nil {
		return
	}
	f(n)
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walkTree(c, f)
		}
	case *parse.ActionNode:
		walkTree(n.Pipe, f)
	case *parse.PipeNode:
		if n == nil {
			return
		}
		for _, d := range n.Decl {
			walkTree(d, f)
		}
		for _, c := range n.Cmds {
			walkTree(c, f)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walkTree(a, f)
		}
	case *parse.ChainNode:
		walkTree(n.Node, f)
	case *parse.IfNode:
		walkBranch(&n.BranchNode, f)
	case *parse.RangeNode:
		walkBranch(&n.BranchNode, f)
	case *parse.WithNode:
		walkBranch(&n.BranchNode, f)
	case *parse.TemplateNode:
		walkTree(n.Pipe, f)
	}
}

func walkBranch(b *parse.BranchNode, f func(parse.Node)) {
	walkTree(b.Pipe, f)
	if b.List != nil {
		walkTree(b.List, f)
	}
	if b.ElseList != nil {
		walkTree(b.ElseList, f)
	}
}

// lineOf is the line of byte offset pos in src.
func lineOf(src string, pos parse.Pos) int {
	return 1 + strings.Count(src[:min(int(pos), len(src))], "\n")
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
