package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadOverridesDefaults(t *testing.T) {
	p := writeConfig(t, `
socket = "/run/x/cri.sock"
max_concurrent_pulls = 1
image_pull_progress_timeout = "90s"
cni_bin_dirs = ["/opt/cni/bin"]
`)
	cfg, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket != "/run/x/cri.sock" || cfg.MaxConcurrentPulls != 1 || cfg.ImagePullProgressTimeout.String() != "1m30s" ||
		len(cfg.CNIBinDirs) != 1 {
		t.Fatalf("file values not applied: %+v", cfg)
	}
	if cfg.ContainerdNamespace != Default().ContainerdNamespace {
		t.Fatalf("absent key lost its default: %q", cfg.ContainerdNamespace)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

func TestLoadErrorsNameTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
	}{
		{"bad toml", "socket = \"/run/x\nlog_level = 3", "line"},
		{"unknown key", "sockett = \"/run/x.sock\"", "unknown key sockett"},
		{"unknown nested key", "[streaming]\naddress = \"x\"", "unknown key streaming"},
		{"wrong type", "max_concurrent_pulls = \"three\"", "max_concurrent_pulls"},
		{"wrong type bool", "managed_containerd = \"yes\"", "managed_containerd"},
		{"bad duration", "image_pull_progress_timeout = \"soon\"", "image_pull_progress_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writeConfig(t, tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "absent.toml")); err == nil {
		t.Fatal("an explicitly named missing file must be an error")
	}
}

func TestValidateNamesKeys(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent")
	for _, tc := range []struct {
		key    string
		mutate func(*Config)
	}{
		{"socket", func(c *Config) { c.Socket = "relative.sock" }},
		{"root_dir", func(c *Config) { c.RootDir = "/var/lib/../x" }},
		{"state_dir", func(c *Config) { c.StateDir = "" }},
		{"registry_config_path", func(c *Config) { c.RegistryConfigPath = missing }},
		{"containerd_binary_dir", func(c *Config) { c.ContainerdBinaryDir = missing }},
		{"runc_binary", func(c *Config) { c.RuncBinary = missing }},
		{"runc_binary", func(c *Config) { c.RuncBinary = "runc" }},
		{"runc_binary", func(c *Config) { c.RuncBinary = os.TempDir() }},
		{"containerd_namespace", func(c *Config) { c.ContainerdNamespace = "Bad NS" }},
		{"sandbox_image", func(c *Config) { c.SandboxImage = "UPPER:case:bad" }},
		{"cni_bin_dirs", func(c *Config) { c.CNIBinDirs = nil }},
		{"max_concurrent_pulls", func(c *Config) { c.MaxConcurrentPulls = -1 }},
		{"max_concurrent_downloads", func(c *Config) { c.MaxConcurrentDownloads = -1 }},
		{"checkpoint_max_size_mib", func(c *Config) { c.CheckpointMaxSizeMiB = -1 }},
		{"go_memory_limit_mib", func(c *Config) { c.GoMemoryLimitMiB = -1 }},
		{"go_gc_percent", func(c *Config) { c.GoGCPercent = 5 }},
		{"image_pull_progress_timeout", func(c *Config) { c.ImagePullProgressTimeout = 0 }},
		{"exec_io_drain_timeout", func(c *Config) { c.ExecIODrainTimeout = 0 }},
		{"stream_server_address", func(c *Config) { c.StreamServerAddress = "nope" }},
		{"gc_min_age", func(c *Config) { c.GCMinAge = Duration(-time.Second) }},
		{"gc_max_per_pod_container", func(c *Config) { c.GCMaxPerPodContainer = -2 }},
		{"gc_max_containers", func(c *Config) { c.GCMaxContainers = -5 }},
		{"gc_interval", func(c *Config) { c.GCInterval = 0 }},
		{"log_level", func(c *Config) { c.LogLevel = "loud" }},
		{"log_format", func(c *Config) { c.LogFormat = "xml" }},
	} {
		t.Run(tc.key, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.key+":") {
				t.Fatalf("got %v, want an error starting with %q", err, tc.key+":")
			}
		})
	}
	d := Default()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestWriteDefaultRoundTrips(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteDefault(&buf); err != nil {
		t.Fatal(err)
	}
	c := Default()
	for _, f := range c.Fields() {
		if !strings.Contains(buf.String(), "\n"+f.Key+" = ") {
			t.Errorf("key %s missing from the default config", f.Key)
		}
		if f.Doc == "" || f.Flag == "" {
			t.Errorf("key %s lacks a comment or flag", f.Key)
		}
	}
	// Decoding the printed defaults must give the defaults back.
	var got Config
	if err := Decode(buf.Bytes(), &got); err != nil {
		t.Fatalf("printed default config does not parse: %v", err)
	}
	if got.Socket != Default().Socket || got.ImagePullProgressTimeout != Default().ImagePullProgressTimeout ||
		len(got.CNIBinDirs) != len(Default().CNIBinDirs) {
		t.Fatalf("round trip changed values: %+v", got)
	}
}

func TestGCPolicyKeys(t *testing.T) {
	d := Default()
	if d.GCMinAge != Duration(time.Minute) || d.GCMaxPerPodContainer != -1 || d.GCMaxContainers != -1 ||
		d.GCInterval != Duration(5*time.Minute) {
		t.Fatalf("GC defaults: %+v", d)
	}
	c := Default()
	err := Decode([]byte("gc_min_age = \"30s\"\ngc_max_per_pod_container = 2\ngc_max_containers = 100\ngc_interval = \"90s\"\n"), &c)
	if err != nil {
		t.Fatal(err)
	}
	if c.GCMinAge != Duration(30*time.Second) || c.GCMaxPerPodContainer != 2 || c.GCMaxContainers != 100 ||
		c.GCInterval != Duration(90*time.Second) {
		t.Fatalf("decoded: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ toml, key string }{
		{"gc_min_age = \"soon\"\n", "gc_min_age"},
		{"gc_interval = \"every day\"\n", "gc_interval"},
		{"gc_max_containers = \"many\"\n", "gc_max_containers"},
	} {
		c := Default()
		if err := Decode([]byte(tc.toml), &c); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: got %v, want an error naming %s", tc.toml, err, tc.key)
		}
	}
}
