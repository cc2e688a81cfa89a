package config

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestRuntimesDefaultIsRunc(t *testing.T) {
	cfg := Default()
	if got := cfg.RuntimeNames(); !slices.Equal(got, []string{"runc"}) {
		t.Fatalf("default handlers %v, want [runc]", got)
	}
	if cfg.Runtimes["runc"].Type() != RuncRuntimeType {
		t.Fatalf("runc type %q", cfg.Runtimes["runc"].Type())
	}
}

func TestRuntimesFileAddsHandlers(t *testing.T) {
	cfg, err := Load(writeConfig(t, `
default_runtime_name = "crun"
[runtimes.crun]
binary_name = "/bin/sh"
pod_annotations = ["example.com/*"]
privileged_without_host_devices = true
[runtimes.kata]
runtime_type = "io.containerd.kata.v2"
snapshotter = "native"
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.RuntimeNames(); !slices.Equal(got, []string{"crun", "kata", "runc"}) {
		t.Fatalf("handlers %v, want the default first, then by name, runc kept", got)
	}
	crun := cfg.Runtimes["crun"]
	if crun.Type() != RuncRuntimeType || crun.BinaryName != "/bin/sh" || !crun.PrivilegedWithoutHostDevices ||
		!slices.Equal(crun.PodAnnotations, []string{"example.com/*"}) {
		t.Fatalf("crun table %+v", crun)
	}
	if cfg.Runtimes["kata"].Snapshotter != "native" {
		t.Fatalf("kata table %+v", cfg.Runtimes["kata"])
	}
	if err := cfg.validateRuntimes(); err != nil {
		t.Fatalf("valid table rejected: %v", err)
	}
}

func TestRuntimesValidateNamesKeys(t *testing.T) {
	dir := t.TempDir()
	notSpec := filepath.Join(dir, "bad.json")
	os.WriteFile(notSpec, []byte(`{"ociVersion": "1.0.2", "process": {"args": ["x"]}, "bogus": 1}`), 0o600)
	noLinux := filepath.Join(dir, "nolinux.json")
	os.WriteFile(noLinux, []byte(`{"ociVersion": "1.0.2", "process": {"args": ["x"]}, "root": {"path": "rootfs"}}`), 0o600)
	yes, no := true, false
	for _, tc := range []struct {
		name, want string
		rt         Runtime
		mutate     func(*Config)
	}{
		{"crun", "runtimes.crun.binary_name", Runtime{BinaryName: filepath.Join(dir, "absent")}, nil},
		{"crun", "runtimes.crun.binary_name", Runtime{BinaryName: "no-such-runtime-binary"}, nil},
		{"crun", "runtimes.crun.binary_name", Runtime{BinaryName: notSpec}, nil}, // not executable
		{"kata", "runtimes.kata.runtime_type", Runtime{RuntimeType: "io.containerd.kata.v2", BinaryName: "/bin/sh"}, nil},
		{"crun", "runtimes.crun.pod_annotations", Runtime{PodAnnotations: []string{"a[/*"}}, nil},
		{"crun", "runtimes.crun.base_runtime_spec", Runtime{BaseRuntimeSpec: "spec.json"}, nil},
		{"crun", "runtimes.crun.base_runtime_spec", Runtime{BaseRuntimeSpec: filepath.Join(dir, "absent.json")}, nil},
		{"crun", "runtimes.crun.base_runtime_spec", Runtime{BaseRuntimeSpec: notSpec}, nil},
		{"crun", "no linux section", Runtime{BaseRuntimeSpec: noLinux}, nil},
		{"crun", "runtimes.crun.systemd_cgroup", Runtime{SystemdCgroup: &yes}, func(c *Config) { c.CgroupDriver = "cgroupfs" }},
		{"Bad_Name", "runtimes.Bad_Name", Runtime{}, nil},
		{"crun", "default_runtime_name", Runtime{}, func(c *Config) { c.DefaultRuntimeName = "gvisor" }},
		{"crun", "runtimes: must configure", Runtime{}, func(c *Config) { c.Runtimes = nil }},
	} {
		t.Run(tc.want, func(t *testing.T) {
			cfg := Default()
			cfg.CgroupDriver = "cgroupfs"
			cfg.Runtimes = map[string]Runtime{"runc": {}, tc.name: tc.rt}
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			err := cfg.validateRuntimes()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// systemd_cgroup that agrees with the driver is accepted (configs copied from containerd).
	cfg := Default()
	cfg.CgroupDriver = "cgroupfs"
	cfg.Runtimes["runc"] = Runtime{SystemdCgroup: &no}
	if err := cfg.validateRuntimes(); err != nil {
		t.Fatalf("agreeing systemd_cgroup rejected: %v", err)
	}
}

func TestRuntimesBaseSpecLoads(t *testing.T) {
	p := filepath.Join(t.TempDir(), "base.json")
	os.WriteFile(p, []byte(`{"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/", "env": ["BASE=1"]},
		"root": {"path": "rootfs"}, "linux": {"sysctl": {"net.ipv4.ip_forward": "1"}}}`), 0o600)
	s, err := Runtime{BaseRuntimeSpec: p}.LoadBaseSpec()
	if err != nil {
		t.Fatal(err)
	}
	if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" || s.Process.Env[0] != "BASE=1" {
		t.Fatalf("base spec %+v", s)
	}
}

func TestRuntimesDefaultOutputShowsTableAndParses(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteDefault(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"default_runtime_name = 'runc'", "[runtimes.runc]", "runtime_type = 'io.containerd.runc.v2'", "#   base_runtime_spec:"} {
		if !strings.Contains(out, want) {
			t.Fatalf("config default lacks %q:\n%s", want, out)
		}
	}
	cfg := Default()
	cfg.Runtimes = nil
	if err := Decode(buf.Bytes(), &cfg); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.RuntimeNames(), []string{"runc"}) {
		t.Fatalf("round trip handlers %v", cfg.RuntimeNames())
	}
}
