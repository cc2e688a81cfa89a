package config

import (
	"strings"
	"testing"
	"time"
)

func TestNRIDefaults(t *testing.T) {
	cfg := Default()
	if !cfg.EnableNRI {
		t.Fatal("NRI is off by default")
	}
	if got := cfg.NRISocketPath(); got != "/run/cri-shim/nri/nri.sock" {
		t.Fatalf("default NRI socket = %q, want it under the state dir", got)
	}
	cfg.StateDir = "/tmp/st"
	if got := cfg.NRISocketPath(); got != "/tmp/st/nri/nri.sock" {
		t.Fatalf("NRI socket follows state_dir: got %q", got)
	}
	cfg.NRISocket = "/var/run/nri/nri.sock"
	if got := cfg.NRISocketPath(); got != "/var/run/nri/nri.sock" {
		t.Fatalf("nri_socket not used: %q", got)
	}
	if time.Duration(cfg.NRIPluginRequestTimeout) != 2*time.Second || time.Duration(cfg.NRIPluginRegistrationTimeout) != 5*time.Second {
		t.Fatalf("NRI timeouts: %s, %s", cfg.NRIPluginRequestTimeout, cfg.NRIPluginRegistrationTimeout)
	}
}

func TestNRIValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"relative socket", func(c *Config) { c.NRISocket = "nri.sock" }, "nri_socket"},
		{"long socket", func(c *Config) { c.NRISocket = "/" + strings.Repeat("x", 120) }, "nri_socket"},
		{"relative plugin dir", func(c *Config) { c.NRIPluginDir = "plugins" }, "nri_plugin_dir"},
		{"relative plugin config dir", func(c *Config) { c.NRIPluginConfigDir = "conf.d" }, "nri_plugin_config_dir"},
		{"zero request timeout", func(c *Config) { c.NRIPluginRequestTimeout = 0 }, "nri_plugin_request_timeout"},
		{"negative registration timeout", func(c *Config) { c.NRIPluginRegistrationTimeout = Duration(-time.Second) }, "nri_plugin_registration_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Default()
			tc.mod(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s", err, tc.want)
			}
		})
	}
	cfg := Default()
	cfg.NRISocket = "/run/nri-x/nri.sock"
	cfg.NRIPluginDir = "/opt/nri/plugins"
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid NRI config rejected: %v", err)
	}
}
