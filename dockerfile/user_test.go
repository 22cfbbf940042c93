package dockerfile

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckNumericUser(t *testing.T) {
	tests := []struct {
		name       string
		dockerfile string
		badLine    int // 0: passes
	}{
		// The reference's own cases.
		{"last not numeric", "USER 0\nUSER notmuchnumeric", 2},
		{"no USER", "RUN but\nNo user at all", 0},
		{"last numeric with gid", "USER root\nPrivileged\nUSER 123:12", 0},
		{"numeric", "USER 1000", 0},
		// Beyond the reference.
		{"tab", "FROM x\nUSER\tnobody\n", 2},
		{"tab numeric", "FROM x\nUSER\t1000\n", 0},
		{"indented", "FROM x\nUSER 0\n  USER nobody\n", 3},
		{"lower case", "FROM x\nuser nobody\n", 2},
		{"trailing space", "USER 1000 \n", 0},
		{"crlf", "USER 1000\r\nRUN x\r\n", 0},
		{"name and gid", "USER 1000:staff", 1},
		{"variable", "ARG UID\nUSER ${UID}", 2},
		{"comment", "USER 1000\n# USER root\n", 0},
		{"continuation line", "USER 1000\nRUN echo \\\n  USER root\n", 0},
		{"continuation across comment", "USER 1000\nRUN echo \\\n# note\n  USER root\n", 0},
		{"after continuation", "RUN echo \\\n  done\nUSER root\n", 3},
		{"USER as a word", "RUN echo USER root\nUSERNAME=x\n", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckNumericUser([]byte(tt.dockerfile))
			if tt.badLine == 0 {
				if err != nil {
					t.Fatalf("CheckNumericUser(%q) = %v, want nil", tt.dockerfile, err)
				}
				return
			}
			if !errors.Is(err, ErrNonNumericUser) {
				t.Fatalf("CheckNumericUser(%q) = %v, want ErrNonNumericUser", tt.dockerfile, err)
			}
			line := strings.Split(strings.ReplaceAll(tt.dockerfile, "\r", ""), "\n")[tt.badLine-1]
			if want := "line " + string(rune('0'+tt.badLine)) + ": " + strings.TrimSpace(line) + ":"; !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("CheckNumericUser(%q) = %q, want it to start with %q", tt.dockerfile, err, want)
			}
		})
	}
}
