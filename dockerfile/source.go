package dockerfile

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"
)

// Names the rewritten source uses for lists that templates mutate with
// {% do x.append(...) %}: minijinja's lists are immutable values, so such a
// list is built by mutableListFunc and read back through plainListFilter.
//
// doFunc wraps the expression of every {% do %}: Jinja2 takes any
// expression there, minijinja only a call.
//
// tickFunc is called at the start of every loop iteration and macro call
// (see scopeLoops), in both dialects: it ends a render whose context is
// done.
const (
	mutableListFunc = "_docker_pkg_list"
	plainListFilter = "_docker_pkg_plain"
	doFunc          = "_docker_pkg_do"
	tickFunc        = "_docker_pkg_tick"
	// loopScope is what every loop iteration opens: a scope of its own,
	// and a tick.
	loopScope = "{% with _docker_pkg_t = " + tickFunc + "() "
)

// prepared is a Jinja2 template rewritten so that minijinja reads it the way
// Jinja2 reads the original. The rewrite keeps every line where it was, so
// line numbers in errors are the user's.
type prepared struct {
	src    string
	macros map[string]bool // names of {% macro %}s: functions, not variables
}

// syntaxError is a template that Jinja2 would refuse to compile.
type syntaxError struct {
	line int
	msg  string
}

func (e *syntaxError) Error() string { return e.msg }

// region is a slice of the source: template data (text, comments, raw
// blocks), or the inside of a {{ }} or {% %} tag, delimiters included.
type region struct {
	start, end int
	kind       byte // 0 for data, '{' for {{ }}, '%' for {% %}
}

var (
	rawBegin     = regexp.MustCompile(`^\{%[-+]?\s*raw\s*[-+]?%\}`)
	rawEnd       = regexp.MustCompile(`\{%[-+]?\s*endraw\s*[-+]?%\}`)
	macroStmt    = regexp.MustCompile(`^\{%[-+]?\s*macro\s+([A-Za-z_]\w*)`)
	setList      = regexp.MustCompile(`^\{%[-+]?\s*set\s+([A-Za-z_]\w*)\s*=\s*\[`)
	blockEnd     = regexp.MustCompile(`^\s*[-+]?%\}$`)
	appendCall   = regexp.MustCompile(`([A-Za-z_]\w*)\s*\.\s*(?:append|extend)\s*\(`)
	appendCallAt = regexp.MustCompile(`^[A-Za-z_]\w*\s*\.\s*(?:append|extend)\s*\(`)
	stmtName     = regexp.MustCompile(`^\{%[-+]?\s*([A-Za-z_]\w*)`)
	doStmt       = regexp.MustCompile(`(?s)^(\{%[-+]?\s*do\s)(.*?)(\s*[-+]?%\})$`)
)

// prepare normalizes a Jinja2 template for minijinja:
//   - newlines: Jinja2 turns \r\n and \r into \n and drops one trailing
//     newline (keep_trailing_newline=False);
//   - string literals: Jinja2 decodes them with Python's string escapes, so
//     a backslash-newline is a line continuation, \a \b \f \v \ooo \xhh are
//     characters; minijinja keeps the first and differs on the others;
//   - lists the template mutates with .append/.extend become mutable;
//   - {% do x %} becomes {% do _docker_pkg_do(x) %};
//   - each iteration of a for loop gets its own scope.
func prepare(src string) (*prepared, error) {
	s := strings.ReplaceAll(src, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	s = strings.TrimSuffix(s, "\n")

	p := &prepared{macros: map[string]bool{}}
	var out strings.Builder
	out.Grow(len(s))
	var lists []listLiteral
	mutable := map[string]bool{}
	for _, r := range regions(s) {
		text := s[r.start:r.end]
		if r.kind == 0 {
			out.WriteString(text)
			continue
		}
		fixed, err := fixStrings(text)
		if err != nil {
			err.line += strings.Count(s[:r.start], "\n")
			return nil, err
		}
		if r.kind == '%' {
			if m := doStmt.FindStringSubmatch(fixed); m != nil {
				fixed = m[1] + doFunc + "(" + m[2] + ")" + m[3]
			}
			if m := macroStmt.FindStringSubmatch(fixed); m != nil {
				p.macros[m[1]] = true
			}
			if l, ok := findSetList(fixed); ok {
				l.open += out.Len()
				l.close += out.Len()
				lists = append(lists, l)
			}
		}
		for _, m := range appendCall.FindAllStringSubmatch(fixed, -1) {
			mutable[m[1]] = true
		}
		out.WriteString(fixed)
	}
	p.src = out.String()
	if len(mutable) > 0 {
		p.src = makeMutable(p.src, lists, mutable)
	}
	p.src = scopeLoops(p.src)
	return p, nil
}

// regions splits a template the way Jinja2's lexer does: {# #} comments and
// {% raw %} blocks are data; a tag ends at the first closing delimiter that
// is outside string literals and brackets.
func regions(s string) []region {
	var out []region
	eachRegion(s, func(r region) { out = append(out, r) })
	return out
}

// eachRegion calls f with each region of s, in order.
func eachRegion(s string, f func(region)) {
	data := 0
	for i := 0; i < len(s); {
		j := strings.IndexByte(s[i:], '{')
		if j < 0 || i+j+1 >= len(s) {
			break
		}
		i += j
		switch s[i+1] {
		case '#':
			end := strings.Index(s[i+2:], "#}")
			if end < 0 {
				i = len(s)
				continue
			}
			i += 2 + end + 2
			continue
		case '%':
			if !mayBeRaw(s[i+2:]) {
				break
			}
			if m := rawBegin.FindStringIndex(s[i:]); m != nil {
				e := rawEnd.FindStringIndex(s[i+m[1]:])
				if e == nil {
					i = len(s)
					continue
				}
				i += m[1] + e[1]
				continue
			}
		case '{':
		default:
			i++
			continue
		}
		if data < i {
			f(region{data, i, 0})
		}
		end := tagEnd(s, i+2, s[i+1])
		f(region{i, end, s[i+1]})
		i, data = end, end
	}
	if data < len(s) {
		f(region{data, len(s), 0})
	}
}

// mayBeRaw reports whether the block tag whose code starts s may be
// {% raw %}, so that rawBegin runs only where it can match.
func mayBeRaw(s string) bool {
	if s != "" && (s[0] == '-' || s[0] == '+') {
		s = s[1:]
	}
	return strings.HasPrefix(strings.TrimLeft(s, " \t\n\r"), "raw")
}

// tagEnd returns the index just past the "}}" (kind '{') or "%}" (kind '%')
// closing the tag whose code starts at i, or len(s) if it is not closed.
func tagEnd(s string, i int, kind byte) int {
	closer := byte('}')
	if kind == '%' {
		closer = '%'
	}
	depth := 0
	for i < len(s) {
		switch c := s[i]; {
		case c == '"' || c == '\'':
			i = stringEnd(s, i)
			continue
		case depth == 0 && c == closer && i+1 < len(s) && s[i+1] == '}':
			return i + 2
		case c == '(' || c == '[' || c == '{':
			depth++
		case (c == ')' || c == ']' || c == '}') && depth > 0:
			depth--
		}
		i++
	}
	return len(s)
}

// stringEnd returns the index just past the string literal starting at i
// (a backslash escapes any character, as in Jinja2's string regex), or
// len(s) if it is not closed.
func stringEnd(s string, i int) int {
	end, _ := closeString(s, i)
	return end
}

func closeString(s string, i int) (end int, closed bool) {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case quote:
			return j + 1, true
		}
	}
	return len(s), false
}

// fixStrings rewrites the string literals with backslashes in one tag.
func fixStrings(code string) (string, *syntaxError) {
	if !strings.Contains(code, `\`) {
		return code, nil
	}
	var out strings.Builder
	last := 0
	for i := 0; i < len(code); {
		if c := code[i]; c != '"' && c != '\'' {
			i++
			continue
		}
		end, closed := closeString(code, i)
		if !closed {
			break // leave it to minijinja to report
		}
		body := code[i+1 : end-1]
		if strings.Contains(body, `\`) {
			out.WriteString(code[last:i])
			if err := writeLiteral(&out, body); err != nil {
				err.line = 1 + strings.Count(code[:i], "\n")
				return "", err
			}
			last = end
		}
		i = end
	}
	out.WriteString(code[last:])
	return out.String(), nil
}

// writeLiteral writes body, the inside of a Jinja2 string literal, as a
// minijinja double-quoted literal with the value Python's unicode-escape
// decoding gives it. A backslash-newline becomes `" newline "`: adjacent
// literals concatenate, and the line count stays the same.
func writeLiteral(out *strings.Builder, body string) *syntaxError {
	out.WriteByte('"')
	for i := 0; i < len(body); {
		c := body[i]
		if c != '\\' {
			if c == '"' {
				out.WriteByte('\\')
			}
			out.WriteByte(c)
			i++
			continue
		}
		e := body[i+1] // a literal never ends in a lone backslash
		i += 2
		switch e {
		case '\n':
			out.WriteString("\"\n\"")
		case '\\':
			out.WriteString(`\\`)
		case '\'':
			out.WriteByte('\'')
		case '"':
			out.WriteString(`\"`)
		case 'n', 'r', 't':
			out.WriteByte('\\')
			out.WriteByte(e)
		case 'a':
			out.WriteString(`\x07`)
		case 'b':
			out.WriteString(`\x08`)
		case 'f':
			out.WriteString(`\x0c`)
		case 'v':
			out.WriteString(`\x0b`)
		case '0', '1', '2', '3', '4', '5', '6', '7':
			v := int(e - '0')
			for n := 0; n < 2 && i < len(body) && body[i] >= '0' && body[i] <= '7'; n++ {
				v = v*8 + int(body[i]-'0')
				i++
			}
			fmt.Fprintf(out, `\u%04x`, v)
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			digits := body[i:min(i+n, len(body))]
			if len(digits) < n || strings.Trim(digits, "0123456789abcdefABCDEF") != "" {
				return &syntaxError{msg: fmt.Sprintf(`truncated \%c%s escape`, e, strings.Repeat("X", n))}
			}
			var v uint64
			fmt.Sscanf(digits, "%x", &v)
			if v > utf8.MaxRune {
				return &syntaxError{msg: "illegal Unicode character"}
			}
			fmt.Fprintf(out, `\U%08x`, v)
			i += n
		case 'N':
			return &syntaxError{msg: `\N{...} escapes are not supported; write the character itself`}
		default:
			// Python keeps an unknown escape; Jinja2 first turns a non-ASCII
			// character into its backslashreplace form, so `\é` is `\xe9`.
			out.WriteString(`\\`)
			if e < utf8.RuneSelf {
				out.WriteByte(e)
				continue
			}
			r, size := utf8.DecodeRuneInString(body[i-1:])
			i += size - 1
			switch {
			case r < 0x100:
				fmt.Fprintf(out, "x%02x", r)
			case r < 0x10000:
				fmt.Fprintf(out, "u%04x", r)
			default:
				fmt.Fprintf(out, "U%08x", r)
			}
		}
	}
	out.WriteByte('"')
	return nil
}

// listLiteral is `{% set name = [...] %}`: the offsets of its brackets.
type listLiteral struct {
	name        string
	open, close int
}

func findSetList(tag string) (listLiteral, bool) {
	m := setList.FindStringSubmatchIndex(tag)
	if m == nil {
		return listLiteral{}, false
	}
	open := m[1] - 1
	depth := 0
	for i := open; i < len(tag); i++ {
		switch tag[i] {
		case '"', '\'':
			i = stringEnd(tag, i) - 1
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				if !blockEnd.MatchString(tag[i+1:]) {
					return listLiteral{}, false
				}
				return listLiteral{name: tag[m[2]:m[3]], open: open, close: i}, true
			}
		}
	}
	return listLiteral{}, false
}

// makeMutable turns `{% set x = [...] %}` into `{% set x =
// _docker_pkg_list([...]) %}` for every x the template appends to, and every
// other read of x into `(x|_docker_pkg_plain)`, so that x behaves as an
// ordinary list everywhere else (in, +, ==, slicing).
func makeMutable(s string, lists []listLiteral, mutable map[string]bool) string {
	var edits []edit
	for _, l := range lists {
		if mutable[l.name] {
			edits = append(edits, edit{l.open, mutableListFunc + "(", 0}, edit{l.close + 1, ")", 0})
		}
	}
	for _, r := range regions(s) {
		if r.kind == 0 {
			continue
		}
		tag := s[r.start:r.end]
		for _, u := range identifiers(tag) {
			if !mutable[u.name] || u.target || u.attr {
				continue
			}
			if appendCallAt.MatchString(tag[u.start:]) {
				continue
			}
			edits = append(edits, edit{r.start + u.start, "(" + u.name + "|" + plainListFilter + ")", u.end - u.start})
		}
	}
	return applyEdits(s, edits)
}

// scopeLoops wraps the body of every for loop in {% with %}...{% endwith %}:
// Jinja2 gives each iteration a fresh scope, so a {% set %} in the body is
// gone at the next iteration; minijinja keeps one scope for the whole loop.
// The with calls tickFunc, so a cancelled render stops at the next
// iteration; macro bodies get the same with, for recursion.
// The inserted tags copy the whitespace control of the tags they stand next
// to, so trimming is unchanged.
func scopeLoops(s string) string {
	var edits []edit
	var open []string // enclosing block statements
	for _, r := range regions(s) {
		if r.kind != '%' {
			continue
		}
		tag := s[r.start:r.end]
		m := stmtName.FindStringSubmatch(tag)
		if m == nil {
			continue
		}
		top := ""
		if len(open) > 0 {
			top = open[len(open)-1]
		}
		switch name := m[1]; {
		case name == "for":
			open = append(open, "for")
			edits = append(edits, edit{r.end, loopScope + trim(tag[len(tag)-3]) + "%}", 0})
		case (name == "else" || name == "endfor") && (top == "for" || top == "for-else"):
			// The else of a for loop is a scope of its own too.
			edits = append(edits, edit{r.start, "{%" + trim(tag[2]) + " endwith %}", 0})
			if name == "else" {
				edits = append(edits, edit{r.end, loopScope + trim(tag[len(tag)-3]) + "%}", 0})
				open[len(open)-1] = "for-else"
			} else {
				open = open[:len(open)-1]
			}
		case name == "macro":
			// A macro body ticks too: recursion is the other way to run long.
			open = append(open, "macro")
			edits = append(edits, edit{r.end, loopScope + trim(tag[len(tag)-3]) + "%}", 0})
		case name == "endmacro" && top == "macro":
			edits = append(edits, edit{r.start, "{%" + trim(tag[2]) + " endwith %}", 0})
			open = open[:len(open)-1]
		case strings.HasPrefix(name, "end"):
			if len(open) > 0 {
				open = open[:len(open)-1]
			}
		case name == "if" || name == "call" || name == "filter" ||
			name == "with" || name == "block" || name == "autoescape" || name == "set" && !assigns(tag):
			open = append(open, name)
		}
	}
	return applyEdits(s, edits)
}

// trim is the whitespace control modifier c, if it is one.
func trim(c byte) string {
	if c == '-' || c == '+' {
		return string(c)
	}
	return ""
}

// assigns reports whether a set tag assigns a value (set x = 1) rather than
// opening a block (set x %}...{% endset).
func assigns(tag string) bool {
	for i := 2; i < len(tag); i++ {
		switch c := tag[i]; {
		case c == '"' || c == '\'':
			i = stringEnd(tag, i) - 1
		case c == '=' && !strings.ContainsRune("=!<>", rune(tag[i-1])) && (i+1 == len(tag) || tag[i+1] != '='):
			return true
		}
	}
	return false
}

// edit replaces cut bytes at an offset with text.
type edit struct {
	at   int
	text string
	cut  int
}

func applyEdits(s string, edits []edit) string {
	sort.SliceStable(edits, func(i, j int) bool { return edits[i].at < edits[j].at })
	var out strings.Builder
	last := 0
	for _, e := range edits {
		out.WriteString(s[last:e.at])
		out.WriteString(e.text)
		last = e.at + e.cut
	}
	out.WriteString(s[last:])
	return out.String()
}

// ident is one identifier in a tag.
type ident struct {
	name       string
	start, end int
	attr       bool // an attribute, filter or test name, not a variable
	target     bool // assigned to, a loop variable or a keyword argument
}

var keywords = map[string]bool{
	"and": true, "or": true, "not": true, "in": true, "is": true, "if": true, "else": true,
	"true": true, "false": true, "none": true, "True": true, "False": true, "None": true,
}

// identifiers lists the names a tag mentions outside string literals.
func identifiers(tag string) []ident {
	stmt, i := "", 2
	if m := stmtName.FindStringSubmatchIndex(tag); tag[1] == '%' && m != nil {
		stmt, i = tag[m[2]:m[3]], m[1]
	}
	switch stmt {
	case "macro", "call", "import", "from", "extends", "include", "block":
		return nil
	}
	var out []ident
	targetsEnd := -1 // in set and for, names before this are assigned to
	for i < len(tag) {
		c := tag[i]
		switch {
		case c == '"' || c == '\'':
			i = stringEnd(tag, i)
			continue
		case c >= '0' && c <= '9':
			for i < len(tag) && (isWord(tag[i]) || tag[i] == '.') {
				i++
			}
			continue
		case !isWord(c):
			if c == '=' && stmt == "set" && targetsEnd < 0 && !strings.HasPrefix(tag[i:], "==") {
				targetsEnd = i
			}
			i++
			continue
		}
		u := ident{start: i}
		for i < len(tag) && isWord(tag[i]) {
			i++
		}
		u.name, u.end = tag[u.start:i], i
		if u.name == "in" && stmt == "for" && targetsEnd < 0 {
			targetsEnd = u.start
		}
		if keywords[u.name] {
			continue
		}
		before := strings.TrimRight(tag[:u.start], " \t\n")
		after := strings.TrimLeft(tag[u.end:], " \t\n")
		if endsWithWord(before, "not") {
			before = strings.TrimRight(strings.TrimSuffix(before, "not"), " \t\n")
		}
		u.attr = strings.HasSuffix(before, ".") || strings.HasSuffix(before, "|") || endsWithWord(before, "is")
		u.target = strings.HasPrefix(after, "=") && !strings.HasPrefix(after, "==")
		out = append(out, u)
	}
	if stmt == "set" && targetsEnd < 0 && len(out) > 0 {
		out[0].target = true // {% set x %}...{% endset %}
	}
	for k := range out {
		if out[k].start < targetsEnd {
			out[k].target = true
		}
	}
	return out
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func endsWithWord(s, w string) bool {
	return strings.HasSuffix(s, w) && (len(s) == len(w) || !isWord(s[len(s)-len(w)-1]))
}

var guarded = regexp.MustCompile(`^\s*(?:is\s+(?:not\s+)?(?:defined|undefined)\b|\|\s*(?:default|d)\b)`)

// useLine returns the line of the first read of variable name that is not
// guarded by `is defined` or `|default`: where Jinja2 would have failed.
func useLine(s, name string) int {
	fallback := 0
	for _, r := range regions(s) {
		if r.kind == 0 {
			continue
		}
		tag := s[r.start:r.end]
		for _, u := range identifiers(tag) {
			if u.name != name || u.attr || u.target {
				continue
			}
			line := 1 + strings.Count(s[:r.start+u.start], "\n")
			if !guarded.MatchString(tag[u.end:]) {
				return line
			}
			if fallback == 0 {
				fallback = line
			}
		}
	}
	return fallback
}

// concatLine returns the line of the first mention of variable name next
// to the ~ operator, or 0.
func concatLine(s, name string) int {
	for _, r := range regions(s) {
		if r.kind == 0 {
			continue
		}
		tag := s[r.start:r.end]
		for _, u := range identifiers(tag) {
			if u.name != name || u.attr || u.target {
				continue
			}
			if strings.HasSuffix(strings.TrimRight(tag[:u.start], " \t\n"), "~") || strings.HasPrefix(strings.TrimLeft(tag[u.end:], " \t\n"), "~") {
				return 1 + strings.Count(s[:r.start+u.start], "\n")
			}
		}
	}
	return 0
}
