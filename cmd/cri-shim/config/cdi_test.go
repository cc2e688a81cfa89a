package config

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestCDIDefaults(t *testing.T) {
	cfg := Default()
	if !cfg.EnableCDI || !slices.Equal(cfg.CDISpecDirs, []string{"/etc/cdi", "/var/run/cdi"}) {
		t.Fatalf("CDI defaults: enable_cdi %v, cdi_spec_dirs %v; want on, /etc/cdi and /var/run/cdi", cfg.EnableCDI, cfg.CDISpecDirs)
	}
	// The verbose Status shows the config as JSON.
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"enable_cdi":true`) || !strings.Contains(string(b), `"cdi_spec_dirs":["/etc/cdi","/var/run/cdi"]`) {
		t.Fatalf("CDI keys missing from the config's JSON: %s", b)
	}
}

func TestCDIFromFile(t *testing.T) {
	cfg, err := Load(writeConfig(t, "enable_cdi = false\ncdi_spec_dirs = [\"/opt/cdi\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.EnableCDI || !slices.Equal(cfg.CDISpecDirs, []string{"/opt/cdi"}) {
		t.Fatalf("file values not applied: enable_cdi %v, cdi_spec_dirs %v", cfg.EnableCDI, cfg.CDISpecDirs)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestCDIValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
	}{
		{"relative dir", func(c *Config) { c.CDISpecDirs = []string{"/etc/cdi", "cdi"} }},
		{"unclean dir", func(c *Config) { c.CDISpecDirs = []string{"/etc/cdi/"} }},
		{"no dirs", func(c *Config) { c.CDISpecDirs = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.mod(&cfg)
			if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "cdi_spec_dirs:") {
				t.Fatalf("got %v, want an error naming cdi_spec_dirs", err)
			}
		})
	}
	cfg := Default()
	cfg.EnableCDI, cfg.CDISpecDirs = false, nil
	if err := cfg.Validate(); err != nil {
		t.Fatalf("CDI off needs no dirs: %v", err)
	}
}
