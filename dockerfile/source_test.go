package dockerfile

import (
	"strings"
	"testing"
)

func TestPrepare(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"plain", "FROM x\n", "FROM x"},
		{"crlf and cr", "a\r\nb\rc\r\n", "a\nb\nc"},
		{"closing delimiter in a string", `{{ "}}" ~ '%}' }}`, `{{ "}}" ~ '%}' }}`},
		{"backslash-newline", "{{ \"a \\\nb\" }}", "{{ \"a \"\n\"b\" }}"},
		{"python escapes", `{{ '\a\x7f\xe9\101\d' }}`, `{{ "\x07\U0000007f\U000000e9\u0041\\d" }}`},
		{"quote kinds", `{{ 'say "hi"\n' }}`, `{{ "say \"hi\"\n" }}`},
		{"comment and raw untouched", `{# "\x" #}{% raw %}{{ "\x" }}{% endraw %}`, `{# "\x" #}{% raw %}{{ "\x" }}{% endraw %}`},
		{"dict braces", `{{ {"a": "\t"}["a"] }}x`, `{{ {"a": "\t"}["a"] }}x`},
		{"do", "{%- do x -%}", "{%- do _docker_pkg_do(x) -%}"},
		{"mutable list", `{% set l = [] %}{% for i in l %}{% do l.append(i) %}{% endfor %}{{ l }}`,
			`{% set l = _docker_pkg_list([]) %}{% for i in (l|_docker_pkg_plain) %}{% with _docker_pkg_t = _docker_pkg_tick() %}{% do _docker_pkg_do(l.append(i)) %}{% endwith %}{% endfor %}{{ (l|_docker_pkg_plain) }}`},
		{"loop scope", "{%- for x in y -%}\n{% if x %}a{% else %}b{% endif %}\n{%- endfor +%}",
			"{%- for x in y -%}{% with _docker_pkg_t = _docker_pkg_tick() -%}\n{% if x %}a{% else %}b{% endif %}\n{%- endwith %}{%- endfor +%}"},
		{"macro body ticks", "{% macro f(n) -%}\n{{ n }}{% for i in n %}{% endfor %}\n{%- endmacro %}{% if a %}{% endif %}",
			"{% macro f(n) -%}{% with _docker_pkg_t = _docker_pkg_tick() -%}\n{{ n }}{% for i in n %}{% with _docker_pkg_t = _docker_pkg_tick() %}{% endwith %}{% endfor %}\n{%- endwith %}{%- endmacro %}{% if a %}{% endif %}"},
		{"loop else and nesting", "{% for x in y %}{% for z in x %}{% set v %}{% endset %}{% endfor %}{% else %}e{% endfor %}",
			"{% for x in y %}{% with _docker_pkg_t = _docker_pkg_tick() %}{% for z in x %}{% with _docker_pkg_t = _docker_pkg_tick() %}{% set v %}{% endset %}{% endwith %}{% endfor %}{% endwith %}{% else %}{% with _docker_pkg_t = _docker_pkg_tick() %}e{% endwith %}{% endfor %}"},
		{"list not appended to", `{% set l = [] %}{{ l }}`, `{% set l = [] %}{{ l }}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := prepare(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if p.src != tt.want {
				t.Errorf("prepare(%q) =\n%q, want\n%q", tt.src, p.src, tt.want)
			}
			if strings.Count(p.src, "\n") != strings.Count(tt.want, "\n") {
				t.Errorf("prepare(%q) moved lines", tt.src)
			}
		})
	}
}

func TestUseLine(t *testing.T) {
	tests := []struct {
		name, src string
		line      int
	}{
		{"first use", "a\n{{ x }}\n{{ x }}", 2},
		{"guarded uses skipped", "{% if x is defined %}\n{{ x | default('') }}\n{% if x is not undefined %}\n{{ x ~ 'a' }}", 4},
		{"attribute and filter names skipped", "{{ a.x }}\n{{ a | x }}\n{{ a is x }}\n{{ x }}", 4},
		{"assignments skipped", "{% set x = 1 %}\n{% for x in y %}{% endfor %}\n{{ f(x=1) }}\n{{ x }}", 4},
		{"in strings skipped", "{{ 'x' }}\n{{ x }}", 2},
		{"only guarded", "\n{{ x is defined }}", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := useLine(tt.src, "x"); got != tt.line {
				t.Errorf("useLine(%q, x) = %d, want %d", tt.src, got, tt.line)
			}
		})
	}
}

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{
		0: "0.0", 1: "1.0", -2.5: "-2.5", 0.1: "0.1", 1e15: "1000000000000000.0", 1e16: "1e+16",
		1.5e-5: "1.5e-05", 0.0001: "0.0001", 123456789.125: "123456789.125", 1e100: "1e+100",
	} {
		if got := pyFloat(f); got != want {
			t.Errorf("pyFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

// FuzzRender checks that no template makes the renderer panic.
func FuzzRender(f *testing.F) {
	for _, seed := range []string{
		`{{ "abc\"`, `{{ 'a\`, "{% set l = [] %}{% do l.append(1) %}{{ l }}", `{{ "\x4`, `{% raw %}`, `{#`,
		"{{ \"a \\\nb\" }}", `{{ x.y }}{{ nope ~ 1 }}`, `{% for x in nope %}{% endfor %}`, `{{ '\U0011ffff' }}`,
	} {
		f.Add(seed)
	}
	r := newTestRenderer(f, "testdata/jinja/config.yaml")
	f.Fuzz(func(t *testing.T, src string) {
		_, _ = r.Render(t.Context(), "Dockerfile.template", []byte(src))
	})
}
