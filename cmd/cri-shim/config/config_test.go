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

// writeFiles writes name -> body under dir, making the dirs on the way.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDropInsApplyInLexicalOrder: the drop-ins of config.d next to the main file apply over it in
// lexical order, each key keeping the last value set; files that are not *.toml or are hidden are
// left out.
func TestDropInsApplyInLexicalOrder(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"config.toml":              "log_level = \"warn\"\nmax_concurrent_pulls = 7\nsocket = \"/run/main.sock\"\n",
		"config.d/10-a.toml":       "log_level = \"debug\"\nmax_concurrent_pulls = 1\n",
		"config.d/20-b.toml":       "log_level = \"error\"\n",
		"config.d/9-c.toml":        "gc_max_containers = 9\nlog_level = \"trace\"\n", // "9-" sorts after "20-"
		"config.d/.hidden.toml":    "log_level = \"info\"\n",
		"config.d/notes.txt":       "not toml at all",
		"config.d/30-d.toml.orig":  "log_level = \"info\"\n",
		"config.d/sub.toml/x.toml": "log_level = \"info\"\n",
	})
	main := filepath.Join(dir, "config.toml")
	cfg, files, err := LoadFiles(main, "")
	if err != nil {
		t.Fatal(err)
	}
	d := filepath.Join(dir, "config.d")
	want := []string{main, filepath.Join(d, "10-a.toml"), filepath.Join(d, "20-b.toml"), filepath.Join(d, "9-c.toml")}
	if strings.Join(files, " ") != strings.Join(want, " ") {
		t.Fatalf("files read %q, want %q", files, want)
	}
	if cfg.LogLevel != "trace" || cfg.MaxConcurrentPulls != 1 || cfg.GCMaxContainers != 9 || cfg.Socket != "/run/main.sock" {
		t.Fatalf("merge: log_level %q (want trace), max_concurrent_pulls %d (want 1), gc_max_containers %d (want 9), socket %q (want the main file's)",
			cfg.LogLevel, cfg.MaxConcurrentPulls, cfg.GCMaxContainers, cfg.Socket)
	}
	if cfg.ConfigDir != d {
		t.Fatalf("config_dir %q, want %q", cfg.ConfigDir, d)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestConfigDirChoice: the --config-dir value wins over the main file's config_dir, which wins over
// config.d next to the main file; a dir named explicitly must exist, the derived one need not.
func TestConfigDirChoice(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"config.toml":            "config_dir = \"" + filepath.Join(dir, "keyed") + "\"\n",
		"keyed/a.toml":           "log_level = \"warn\"\n",
		"flagged/a.toml":         "log_level = \"error\"\n",
		"config.d/a.toml":        "log_level = \"debug\"\n",
		"nomain/config.d/a.toml": "log_level = \"trace\"\n",
	})
	main := filepath.Join(dir, "config.toml")
	for _, tc := range []struct{ name, path, flagDir, want string }{
		{"key", main, "", "warn"},
		{"flag over key", main, filepath.Join(dir, "flagged"), "error"},
	} {
		cfg, _, err := LoadFiles(tc.path, tc.flagDir)
		if err != nil || cfg.LogLevel != tc.want {
			t.Errorf("%s: log_level %q, %v; want %q", tc.name, cfg.LogLevel, err, tc.want)
		}
	}
	// The main file may be absent only at the default path.
	if _, _, err := LoadFiles(filepath.Join(dir, "nomain", "config.toml"), ""); err == nil {
		t.Error("an explicitly named missing main file must be an error")
	}
	if _, _, err := LoadFiles(main, filepath.Join(dir, "absent")); err == nil || !strings.HasPrefix(err.Error(), "config_dir:") {
		t.Errorf("an explicitly named missing config_dir: %v, want an error naming config_dir", err)
	}
	writeFiles(t, dir, map[string]string{"other/config.toml": "max_concurrent_pulls = 2\n"})
	if cfg, files, err := LoadFiles(filepath.Join(dir, "other", "config.toml"), ""); err != nil || len(files) != 1 ||
		cfg.ConfigDir != filepath.Join(dir, "other", "config.d") {
		t.Errorf("absent derived config.d: %v %q %q", err, files, cfg.ConfigDir)
	}
}

// TestDropInErrorsNameTheFile: a drop-in's unknown key, wrong type or config_dir is an error naming
// that drop-in and the key.
func TestDropInErrorsNameTheFile(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key", "sockett = \"/x\"", "unknown key sockett"},
		{"wrong type", "max_concurrent_pulls = \"three\"", "max_concurrent_pulls"},
		{"config_dir", "config_dir = \"/etc\"", "config_dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, map[string]string{"config.toml": "log_level = \"warn\"\n", "config.d/10-ok.toml": "log_level = \"debug\"\n",
				"config.d/50-bad.toml": tc.body + "\n"})
			_, _, err := LoadFiles(filepath.Join(dir, "config.toml"), "")
			bad := filepath.Join(dir, "config.d", "50-bad.toml")
			if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %s and %q", err, bad, tc.want)
			}
		})
	}
}

// TestContainerdMode: the mode is managed by default, external or managed when set, anything else
// an error naming the key; managed_containerd = true is a deprecated managed that contradicts
// external; a containerd_address of its own without external mode is an error (it meant external).
func TestContainerdMode(t *testing.T) {
	if d := Default(); d.ContainerdMode != ModeManaged || len(d.Warnings()) != 0 {
		t.Fatalf("default mode %q, warnings %q", d.ContainerdMode, d.Warnings())
	}
	for _, tc := range []struct {
		body, wantErr string
		warn          bool
	}{
		{`containerd_mode = "external"`, "", false},
		{`containerd_mode = "managed"`, "", false},
		{`containerd_mode = "auto"`, "containerd_mode", false},
		{"managed_containerd = true", "", true},
		{"managed_containerd = true\ncontainerd_mode = \"external\"", "containerd_mode", true},
		{`containerd_address = "/run/other/containerd.sock"`, "containerd_mode", false},
		{"containerd_address = \"/run/other/containerd.sock\"\ncontainerd_mode = \"external\"", "", false},
	} {
		cfg, err := Load(writeConfig(t, tc.body))
		if err != nil {
			t.Fatal(err)
		}
		err = cfg.Validate()
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.wantErr+":")) {
			t.Errorf("%q: %v, want error %q", tc.body, err, tc.wantErr)
		}
		if w := cfg.Warnings(); (len(w) > 0) != tc.warn || tc.warn && !strings.Contains(w[0], `containerd_mode = "managed"`) {
			t.Errorf("%q: warnings %q", tc.body, w)
		}
	}
}
