package config

import "testing"

// The example configuration in the repository root must load.
func TestExampleConfigLoads(t *testing.T) {
	c, err := LoadFiles("", "../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.Registry != "docker-registry.example.org" || len(c.BaseImages) != 1 {
		t.Errorf("unexpected example: %+v", c)
	}
}
