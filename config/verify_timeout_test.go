package config

import (
	"strings"
	"testing"
	"time"
)

func TestVerifyTimeout(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		want    time.Duration
		wantErr string
	}{
		{name: "default", file: "", want: 1800 * time.Second},
		{name: "set", file: "verify_timeout: 60\n", want: time.Minute},
		{name: "no limit", file: "verify_timeout: 0\n", want: 0},
		{name: "negative", file: "\nverify_timeout: -1\n", wantErr: "config.yaml:2: verify_timeout: want seconds, 0 for no limit, got -1"},
		{name: "not a number", file: "verify_timeout: 30m\n", wantErr: `config.yaml:1: verify_timeout: want a whole number of seconds (0 for no limit), got the string "30m"`},
		{name: "empty", file: "verify_timeout:\n", wantErr: "verify_timeout: want a whole number of seconds (0 for no limit), got nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadFiles("", write(t, "config.yaml", tt.file))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.VerifyTimeout != tt.want {
				t.Errorf("VerifyTimeout %v, want %v", c.VerifyTimeout, tt.want)
			}
		})
	}
}
