package dockerfile

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"strings"
	"text/template/parse"
)

// Ref is an image a template names through image_tag.
type Ref struct {
	Name string // the string literal given to image_tag
	Line int    // the line of image_tag
}

// ImageRefs finds the names a template passes to image_tag as string
// literals, without rendering it: `"x" | image_tag` in Jinja2,
// `image_tag "x"` or `"x" | image_tag` in Go. It reads the template as
// the engine does, so text outside tags, comments and raw blocks do not
// count. engine is cfg.TemplateEngine; path names the template in errors.
// A Go template that does not parse gives its error and no refs (a render
// reports it too); a Jinja2 template is read leniently and never fails.
func ImageRefs(engine, path string, src []byte) ([]Ref, error) {
	if !bytes.Contains(src, []byte(imageTag)) {
		return nil, nil // most templates: no tokenizing at all
	}
	switch engine {
	case "", "jinja2":
		return jinjaRefs(string(src)), nil
	case "go":
		return goRefs(path, string(src))
	}
	return nil, fmt.Errorf("template_engine: want jinja2 or go, got %q", engine)
}

const imageTag = "image_tag"

// jinjaRefs reads tags with the tokenizer prepare uses (regions): a string
// literal, or adjacent literals, which Jinja2 joins, then | image_tag.
func jinjaRefs(s string) []Ref {
	if strings.IndexByte(s, '\r') >= 0 {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	}
	var refs []Ref
	line, counted := 1, 0
	eachRegion(s, func(r region) {
		if r.kind == 0 || !strings.Contains(s[r.start:r.end], imageTag) {
			return
		}
		tag := s[r.start:r.end]
		literal, escaped, literalEnd := "", false, -1
		for i := 2; i < len(tag); {
			c := tag[i]
			switch {
			case c == '"' || c == '\'':
				end, closed := closeString(tag, i)
				if !closed {
					i = len(tag)
					continue
				}
				body := tag[i+1 : end-1]
				if literalEnd < 0 || strings.TrimSpace(tag[literalEnd:i]) != "" {
					literal, escaped = "", false
				}
				literal += body
				escaped = escaped || strings.IndexByte(body, '\\') >= 0
				literalEnd, i = end, end
				continue
			case c == '|' && literalEnd >= 0 && strings.TrimSpace(tag[literalEnd:i]) == "":
				j := i + 1
				for j < len(tag) && (tag[j] == ' ' || tag[j] == '\t' || tag[j] == '\n') {
					j++
				}
				// Names never hold backslashes: a literal with escapes is
				// not one, and need not be decoded.
				if strings.HasPrefix(tag[j:], imageTag) && (j+len(imageTag) == len(tag) || !isWord(tag[j+len(imageTag)])) && !escaped {
					at := r.start + j
					line += strings.Count(s[counted:at], "\n")
					counted = at
					refs = append(refs, Ref{Name: literal, Line: line})
				}
			case isWord(c):
				// Skip a whole word, so that `x"a"` style input and names
				// are not split.
				for i < len(tag) && isWord(tag[i]) {
					i++
				}
				literalEnd = -1
				continue
			}
			if c != ' ' && c != '\t' && c != '\n' {
				literalEnd = -1
			}
			i++
		}
	})
	return refs
}

// goRefs walks text/template's parse tree: image_tag with a string
// argument, or a string command piped into image_tag.
func goRefs(path, src string) ([]Ref, error) {
	t := parse.New(path)
	t.Mode = parse.SkipFuncCheck
	trees := map[string]*parse.Tree{}
	if _, err := t.Parse(src, "", "", trees); err != nil {
		return nil, goError(path, err)
	}
	var refs []Ref
	add := func(at parse.Pos, arg parse.Node) {
		if s, ok := stringArg(arg); ok {
			refs = append(refs, Ref{Name: s, Line: lineOf(src, at)})
		}
	}
	for _, tree := range trees {
		walkTree(tree.Root, func(n parse.Node) {
			pipe, ok := n.(*parse.PipeNode)
			if !ok || pipe == nil {
				return
			}
			for k, cmd := range pipe.Cmds {
				id, ok := cmd.Args[0].(*parse.IdentifierNode)
				if !ok || id.Ident != imageTag {
					continue
				}
				switch {
				case len(cmd.Args) == 2:
					add(id.Pos, cmd.Args[1])
				case len(cmd.Args) == 1 && k > 0 && len(pipe.Cmds[k-1].Args) == 1:
					add(id.Pos, pipe.Cmds[k-1].Args[0])
				}
			}
		})
	}
	// Trees ({{ define }}) come from a map: put the refs in line order.
	slices.SortStableFunc(refs, func(a, b Ref) int { return cmp.Compare(a.Line, b.Line) })
	return refs, nil
}

// stringArg is the value of a string constant, also in parentheses.
func stringArg(n parse.Node) (string, bool) {
	switch n := n.(type) {
	case *parse.StringNode:
		return n.Text, true
	case *parse.PipeNode:
		if len(n.Decl) == 0 && len(n.Cmds) == 1 && len(n.Cmds[0].Args) == 1 {
			return stringArg(n.Cmds[0].Args[0])
		}
	}
	return "", false
}
