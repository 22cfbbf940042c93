package main

import (
	"strings"
	"testing"
)

func TestUpdateStaleArgs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"name and stale", []string{"update", "--stale", "core", "../../fixtures/images"}, "with --stale, give only DIR (got 2 arguments)"},
		{"stale and select", []string{"update", "--stale", "--select", "*", "../../fixtures/images"}, "it cannot be used with --select or --version"},
		{"stale and reason", []string{"update", "--stale", "--reason", "x", "../../fixtures/images"}, "it cannot be used with --reason"},
		// run gives no daemon, and the fixtures no registry.
		{"nowhere to read records", []string{"update", "--stale", "../../fixtures/images"}, "reads build records from the Docker daemon or the registry, and there is neither"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := run(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
