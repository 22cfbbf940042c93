package dockerfile

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"

	minijinja "github.com/mitsuhiko/minijinja/minijinja-go/v2"
	"github.com/mitsuhiko/minijinja/minijinja-go/v2/syntax"
	"github.com/mitsuhiko/minijinja/minijinja-go/v2/value"
)

// ErrUndefined is matched by the error of a template that uses a variable
// the configuration does not define.
var ErrUndefined = errors.New("undefined variable")

type undefinedError struct{ name string }

// passwordWhy says why the one configuration key templates do not see is
// kept from them.
const passwordWhy = "the registry password is kept out of templates, so that no template can write it into an image layer"

func (e *undefinedError) Error() string {
	if e.name == "password" {
		return "'password' is undefined: " + passwordWhy
	}
	return "'" + e.name + "' is undefined"
}
func (e *undefinedError) Is(target error) bool { return target == ErrUndefined }

// jinja renders the Jinja2 dialect with minijinja, configured and patched to
// give Jinja2's bytes: no autoescaping, Python's str() for printed values,
// Jinja2's StrictUndefined.
type jinja struct {
	env   *minijinja.Environment
	steps int // the fuel of one render
	vars  map[string]value.Value
	keys  []string
}

// builtinNames are minijinja's global functions: a template may use them as
// values, so they are not undefined variables.
var builtinNames = map[string]bool{
	"range": true, "dict": true, "cycler": true, "joiner": true,
	"namespace": true, "debug": true, "lipsum": true, mutableListFunc: true, doFunc: true, tickFunc: true,
}

func newJinja(h *helpers, vars map[string]any, steps int) *jinja {
	j := &jinja{env: minijinja.NewEnvironment(), vars: map[string]value.Value{}, steps: steps}
	for k, v := range vars {
		j.vars[k] = toValue(v)
		j.keys = append(j.keys, k)
	}
	sort.Strings(j.keys)

	env := j.env
	env.SetAutoEscapeFunc(func(string) minijinja.AutoEscape { return minijinja.AutoEscapeNone })
	// prepare drops the trailing newline the way Jinja2 does.
	env.SetWhitespace(syntax.WhitespaceConfig{KeepTrailingNewline: true})
	env.SetUndefinedBehavior(minijinja.UndefinedStrict)
	// Debug mode puts the line of the failing expression in runtime errors.
	env.SetDebug(true)
	fuel := uint64(steps)
	env.SetFuel(&fuel)
	env.SetFormatter(func(_ *minijinja.State, v value.Value, _ func(string) string) string {
		return pyStr(v)
	})

	for _, hp := range h.table() {
		env.AddFilter(hp.name, jinjaHelper(hp))
	}

	// Jinja2's versions of the filters and tests whose minijinja versions
	// print values differently or do not know undefined markers.
	env.AddFilter("join", filterJoin)
	env.AddFilter("string", func(_ minijinja.FilterState, v value.Value, _ []value.Value, _ map[string]value.Value) (value.Value, error) {
		return value.FromString(pyStr(v)), nil
	})
	env.AddFilter("replace", filterReplace)
	env.AddFilter("default", filterDefault)
	env.AddFilter("d", filterDefault)
	env.AddTest("defined", func(_ minijinja.TestState, v value.Value, _ []value.Value) (bool, error) {
		return !isUndefined(v), nil
	})
	env.AddTest("undefined", func(_ minijinja.TestState, v value.Value, _ []value.Value) (bool, error) {
		return isUndefined(v), nil
	})

	env.AddFunction(doFunc, func(*minijinja.State, []value.Value, map[string]value.Value) (value.Value, error) {
		return value.None(), nil
	})
	env.AddFunction(tickFunc, func(st *minijinja.State, _ []value.Value, _ map[string]value.Value) (value.Value, error) {
		return value.None(), st.Context().Err()
	})
	env.AddFunction(mutableListFunc, func(_ *minijinja.State, args []value.Value, _ map[string]value.Value) (value.Value, error) {
		l := &mutableList{}
		if len(args) == 1 {
			l.items = append(l.items, args[0].Iter()...)
		}
		return value.FromObject(l), nil
	})
	env.AddFilter(plainListFilter, func(_ minijinja.FilterState, v value.Value, _ []value.Value, _ map[string]value.Value) (value.Value, error) {
		if o, ok := v.AsObject(); ok {
			if l, ok := o.(*mutableList); ok {
				return value.FromSlice(l.items), nil
			}
		}
		return v, nil
	})
	return j
}

// jinjaTemplate is one parsed template.
type jinjaTemplate struct {
	j      *jinja
	path   string
	src    string // as prepared
	macros map[string]bool
	tmpl   *minijinja.Template
}

func (j *jinja) parse(path string, src []byte) (*jinjaTemplate, error) {
	p, err := prepare(string(src))
	if err != nil {
		var se *syntaxError
		if errors.As(err, &se) {
			return nil, &Error{Path: path, Line: se.line, Err: errors.New(se.msg)}
		}
		return nil, &Error{Path: path, Err: err}
	}
	if scan := lexScan(p.src); scan > maxLexScan {
		return nil, &Error{Path: path, Err: fmt.Errorf("%w: %d tags in %d KiB: the template engine would scan %d GiB to parse it (it reads the rest of the template again at every tag); split the template",
			ErrTooLarge, strings.Count(p.src, "{{")+strings.Count(p.src, "{%"), len(p.src)>>10, scan>>30)}
	}
	tmpl, err := j.env.TemplateFromNamedString(path, p.src)
	if err != nil {
		return nil, &Error{Path: path, Line: syntaxLine(err), Err: errors.New(syntaxMessage(err))}
	}
	return &jinjaTemplate{j: j, path: path, src: p.src, macros: p.macros, tmpl: tmpl}, nil
}

// maxLexScan bounds lexScan: about a second of parsing. A real
// template scans a few megabytes.
const maxLexScan = 2 << 30

// lexScan estimates the bytes minijinja's lexer reads to tokenize s: at
// every tag it searches the rest of the template for each of {{, {% and
// {#, so a template with many tags, or with tags followed by much text,
// takes quadratic time (120,000 tags: 11 s).
func lexScan(s string) int {
	markers := [3]string{"{{", "{%", "{#"}
	var next [3]int // next occurrence of each marker at or after the position
	find := func(m, from int) int {
		if k := strings.Index(s[from:], markers[m]); k >= 0 {
			return from + k
		}
		return len(s)
	}
	for m := range markers {
		next[m] = find(m, 0)
	}
	scan := 0
	for pos := 0; pos < len(s); {
		// One search from pos: each marker's up to its next occurrence.
		first := len(s)
		for m := range markers {
			if next[m] < pos {
				next[m] = find(m, pos)
			}
			scan += next[m] - pos
			first = min(first, next[m])
		}
		if first == len(s) {
			break
		}
		pos = first + 2
	}
	return scan
}

// minijinja's syntax errors are of an internal type: read their text.
var syntaxErrorText = regexp.MustCompile(`(?s)^(.*) \(line (\d+)\)$`)

func syntaxLine(err error) int {
	if m := syntaxErrorText.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[2])
		return n
	}
	return 0
}

func syntaxMessage(err error) string {
	if m := syntaxErrorText.FindStringSubmatch(err.Error()); m != nil {
		return m[1]
	}
	return err.Error()
}

func (t *jinjaTemplate) render(ctx context.Context, w *output) error {
	st := &renderState{}
	err := t.tmpl.RenderToWriteCtx(ctx, &root{t: t, st: st}, w)
	// Jinja2 fails at the first use of an undefined variable; minijinja
	// learns of it through markers (see root), after the fact.
	if st.undefined != "" && w.err == nil {
		return &Error{Path: t.path, Line: t.undefinedLine(ctx, st.undefined), Err: &undefinedError{st.undefined}}
	}
	if err != nil {
		return t.runtimeError(err)
	}
	return nil
}

// undefinedLine finds where the undefined variable name was first used.
// Rendering again with name a plain undefined value makes minijinja fail
// there with the line, unless the use is one minijinja lets pass: then a
// mention next to ~ before that line, or else the first mention not
// guarded by `is defined` or `|default`, is the best guess.
func (t *jinjaTemplate) undefinedLine(ctx context.Context, name string) int {
	err := t.tmpl.RenderToWriteCtx(ctx, &root{t: t, st: &renderState{}, plain: name}, &output{ctx: ctx})
	failed := 0
	var me *minijinja.Error
	if errors.As(err, &me) && me.Kind == minijinja.ErrUndefinedVar && me.Span != nil {
		failed = int(me.Span.StartLine)
	}
	if concat := concatLine(t.src, name); concat > 0 && (failed == 0 || concat < failed) {
		return concat
	}
	if failed > 0 {
		return failed
	}
	return useLine(t.src, name)
}

func (t *jinjaTemplate) runtimeError(err error) error {
	var me *minijinja.Error
	if !errors.As(err, &me) {
		return &Error{Path: t.path, Err: err}
	}
	e := &Error{Path: t.path}
	if me.Span != nil {
		e.Line = int(me.Span.StartLine)
	}
	switch {
	case me.Kind == minijinja.ErrOutOfFuel:
		e.Err = fmt.Errorf("%w: more than %d", ErrTooLong, t.j.steps)
	case me.Cause != nil:
		e.Err = me.Cause
	case me.Kind == minijinja.ErrUndefinedVar && me.Span != nil:
		e.Err = &undefinedError{t.expression(*me.Span)}
	default:
		e.Err = fmt.Errorf("%s: %s", me.Kind, me.Message)
	}
	return e
}

// expression is the source of the attribute or item lookup that failed
// (minijinja's span starts at its first dot).
func (t *jinjaTemplate) expression(span syntax.Span) string {
	start, end := int(span.StartOffset), int(span.EndOffset)
	if end > len(t.src) || start >= end {
		return "undefined value"
	}
	for t.src[start] == '.' && start > 0 && (isWord(t.src[start-1]) || t.src[start-1] == '.') {
		start--
	}
	expr := strings.TrimSpace(t.src[start:end])
	expr = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(expr, "{{"), "}}"))
	return strings.TrimSpace(strings.Trim(expr, "-+"))
}

// helperError gives a filter's error the line minijinja knows, keeping it
// matchable.
func helperError(err error) error {
	if errors.Is(err, ErrUndefined) {
		return minijinja.NewError(minijinja.ErrUndefinedVar, "undefined value")
	}
	return minijinja.NewError(minijinja.ErrInvalidOperation, err.Error()).WithCause(err)
}

// renderState is what one render learns: the first undefined variable used.
type renderState struct {
	undefined string
}

// root is the context of one render: the configuration, and a marker for
// every other name, so that using an undefined variable is an error even
// where minijinja lets undefined pass (~, filters).
type root struct {
	t     *jinjaTemplate
	st    *renderState
	plain string // a name left plainly undefined, to find where it is used
}

func (c *root) GetAttr(name string) value.Value {
	if v, ok := c.t.j.vars[name]; ok {
		return v
	}
	if builtinNames[name] || c.t.macros[name] || name == c.plain {
		return value.Undefined() // minijinja looks these up next
	}
	return value.FromObject(&undefined{name: name, st: c.st})
}

func (c *root) Keys() []string { return c.t.j.keys }

// undefined is a variable the configuration does not define. Every use of
// it records the name; minijinja gives it no way to fail on the spot.
type undefined struct {
	name string
	st   *renderState
}

func (u *undefined) use() {
	if u.st.undefined == "" {
		u.st.undefined = u.name
	}
}

func (u *undefined) GetAttr(string) value.Value { u.use(); return value.Undefined() }
func (u *undefined) ObjectIsTrue() bool         { u.use(); return false }
func (u *undefined) ObjectLen() int             { u.use(); return 0 }
func (u *undefined) String() string             { u.use(); return "" }
func (u *undefined) ObjectString() string       { u.use(); return "" }
func (u *undefined) Iterate() iter.Seq[value.Value] {
	u.use()
	return func(func(value.Value) bool) {}
}
func (u *undefined) ObjectCall(value.State, []value.Value, map[string]value.Value) (value.Value, error) {
	u.use()
	return value.Undefined(), nil
}
func (u *undefined) CallMethod(value.State, string, []value.Value, map[string]value.Value) (value.Value, error) {
	u.use()
	return value.Undefined(), nil
}

func asUndefined(v value.Value) *undefined {
	if o, ok := v.AsObject(); ok {
		if u, ok := o.(*undefined); ok {
			return u
		}
	}
	return nil
}

func isUndefined(v value.Value) bool { return v.IsUndefined() || asUndefined(v) != nil }

// use reports whether v is undefined, recording the use of an undefined
// variable.
func use(v value.Value) bool {
	if u := asUndefined(v); u != nil {
		u.use()
		return true
	}
	return v.IsUndefined()
}

// mutableList is a list a template appends to ({% do l.append(x) %}).
type mutableList struct{ items []value.Value }

func (l *mutableList) GetAttr(string) value.Value   { return value.Undefined() }
func (l *mutableList) ObjectRepr() value.ObjectRepr { return value.ObjectReprSeq }
func (l *mutableList) SeqLen() int                  { return len(l.items) }
func (l *mutableList) SeqItem(i int) value.Value    { return l.items[i] }
func (l *mutableList) String() string               { return pyStr(value.FromSlice(l.items)) }
func (l *mutableList) CallMethod(_ value.State, name string, args []value.Value, kw map[string]value.Value) (value.Value, error) {
	if len(args) != 1 || len(kw) != 0 {
		return value.Undefined(), helperError(fmt.Errorf("list.%s takes exactly one argument", name))
	}
	switch name {
	case "append":
		l.items = append(l.items, args[0])
	case "extend":
		l.items = append(l.items, args[0].Iter()...)
	default:
		return value.Undefined(), value.ErrUnknownMethod
	}
	return value.None(), nil
}

func noArgs(name string, v value.Value, args []value.Value, kw map[string]value.Value) error {
	if use(v) {
		return ErrUndefined
	}
	if len(args) > 0 || len(kw) > 0 {
		return fmt.Errorf("%s takes no arguments", name)
	}
	return nil
}

// jinjaHelper makes a helper a filter.
func jinjaHelper(hp helper) minijinja.FilterFunc {
	return func(_ minijinja.FilterState, v value.Value, args []value.Value, kw map[string]value.Value) (value.Value, error) {
		if err := noArgs(hp.name, v, args, kw); err != nil {
			return value.Undefined(), helperError(err)
		}
		s, ok := v.AsString()
		switch {
		case !ok && hp.other != nil:
			hp.other(pyStr(v))
			return v, nil
		case !ok:
			return value.Undefined(), helperError(fmt.Errorf("%s: want a string, got %s %s", hp.name, v.Kind(), pyRepr(v)))
		}
		out, err := hp.fn(s)
		if err != nil {
			return value.Undefined(), helperError(err)
		}
		return value.FromString(out), nil
	}
}

// filterJoin is Jinja2's join(d=”, attribute=None).
func filterJoin(_ minijinja.FilterState, v value.Value, args []value.Value, kw map[string]value.Value) (value.Value, error) {
	sep := value.FromString("")
	if len(args) > 0 {
		sep = args[0]
	} else if d, ok := kw["d"]; ok {
		sep = d
	}
	attr, hasAttr := kw["attribute"]
	if use(v) || use(sep) || hasAttr && use(attr) {
		return value.Undefined(), helperError(ErrUndefined)
	}
	var parts []string
	for _, item := range v.Iter() {
		if hasAttr {
			item = item.GetAttr(pyStr(attr))
		}
		if use(item) {
			return value.Undefined(), helperError(ErrUndefined)
		}
		parts = append(parts, pyStr(item))
	}
	return value.FromString(strings.Join(parts, pyStr(sep))), nil
}

// filterReplace is Jinja2's replace(old, new, count=None) on str(value).
func filterReplace(_ minijinja.FilterState, v value.Value, args []value.Value, kw map[string]value.Value) (value.Value, error) {
	if len(args) < 2 || len(args) > 3 || len(kw) > 0 {
		return value.Undefined(), helperError(errors.New("replace takes two or three arguments: old, new, count"))
	}
	for _, a := range append([]value.Value{v}, args...) {
		if use(a) {
			return value.Undefined(), helperError(ErrUndefined)
		}
	}
	count := -1
	if len(args) == 3 {
		n, ok := args[2].AsInt()
		if !ok {
			return value.Undefined(), helperError(fmt.Errorf("replace: count must be a number, got %s", pyRepr(args[2])))
		}
		count = int(n)
	}
	return value.FromString(strings.Replace(pyStr(v), pyStr(args[0]), pyStr(args[1]), count)), nil
}

// filterDefault is Jinja2's default(default_value=”, boolean=False).
func filterDefault(_ minijinja.FilterState, v value.Value, args []value.Value, kw map[string]value.Value) (value.Value, error) {
	def := value.FromString("")
	if len(args) > 0 {
		def = args[0]
	} else if d, ok := kw["default_value"]; ok {
		def = d
	}
	boolean := len(args) > 1 && args[1].IsTrue()
	if b, ok := kw["boolean"]; ok {
		boolean = b.IsTrue()
	}
	if isUndefined(v) || boolean && !v.IsTrue() {
		return def, nil
	}
	return v, nil
}

// toValue converts a configuration value once, so renders share it.
func toValue(v any) value.Value {
	switch v := v.(type) {
	case []any:
		items := make([]value.Value, len(v))
		for i, item := range v {
			items[i] = toValue(item)
		}
		return value.FromSlice(items)
	case map[string]any:
		m := make(map[string]value.Value, len(v))
		for k, item := range v {
			m[k] = toValue(item)
		}
		return value.FromMap(m)
	case fmt.Stringer:
		return value.FromString(v.String())
	}
	return value.FromAny(v)
}

// pyStr is Python's str() of a value, which is what Jinja2 prints.
func pyStr(v value.Value) string {
	if use(v) {
		return ""
	}
	switch v.Kind() {
	case value.KindString:
		s, _ := v.AsString()
		return s
	case value.KindUndefined:
		return ""
	}
	return pyRepr(v)
}

// pyRepr is Python's repr() of a value, which str() of a container uses for
// its items.
func pyRepr(v value.Value) string {
	if use(v) {
		return "Undefined"
	}
	switch v.Kind() {
	case value.KindNone:
		return "None"
	case value.KindBool:
		if v.IsTrue() {
			return "True"
		}
		return "False"
	case value.KindNumber:
		if v.IsActualFloat() {
			f, _ := v.AsFloat()
			return pyFloat(f)
		}
		return v.String()
	case value.KindString:
		s, _ := v.AsString()
		return pyQuote(s)
	case value.KindSeq, value.KindIterable:
		var parts []string
		for _, item := range v.Iter() {
			parts = append(parts, pyRepr(item))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case value.KindMap:
		var parts []string
		for _, k := range v.Iter() {
			parts = append(parts, pyRepr(k)+": "+pyRepr(v.GetItem(k)))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	}
	return v.String()
}

// pyQuote is Python's repr() of a str.
func pyQuote(s string) string {
	quote := '\''
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		quote = '"'
	}
	var b strings.Builder
	b.WriteRune(quote)
	for _, r := range s {
		switch {
		case r == quote || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r > 0x7f && !unicode.IsPrint(r):
			switch {
			case r < 0x100:
				fmt.Fprintf(&b, `\x%02x`, r)
			case r < 0x10000:
				fmt.Fprintf(&b, `\u%04x`, r)
			default:
				fmt.Fprintf(&b, `\U%08x`, r)
			}
		default:
			b.WriteRune(r)
		}
	}
	b.WriteRune(quote)
	return b.String()
}

// pyFloat is Python's repr() of a float: the shortest digits that round
// trip, in positional notation from 1e-4 up to 1e16.
func pyFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f):
		return "nan"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // -d.ddde±XX
	sign := ""
	if s[0] == '-' {
		sign, s = "-", s[1:]
	}
	mantissa, expText, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expText)
	digits := strings.Replace(mantissa, ".", "", 1)
	if exp < -4 || exp >= 16 {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		return fmt.Sprintf("%s%se%+03d", sign, m, exp)
	}
	if exp < 0 {
		return sign + "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return sign + digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
	}
	return sign + digits[:exp+1] + "." + digits[exp+1:]
}
