package config

import (
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/cgroupdriver"
)

func TestCgroupDriverKey(t *testing.T) {
	cfg := Default()
	if cfg.CgroupDriver != "" {
		t.Fatalf("default cgroup_driver %q, want empty (the host's)", cfg.CgroupDriver)
	}
	if d, err := cfg.CgroupDriverOf(); err != nil || d != cgroupdriver.Detect() {
		t.Fatalf("empty cgroup_driver = %q, %v; want the host's %q", d, err, cgroupdriver.Detect())
	}
	if err := Decode([]byte(`cgroup_driver = "cgroupfs"`), &cfg); err != nil {
		t.Fatal(err)
	}
	if d, err := cfg.CgroupDriverOf(); err != nil || d != cgroupdriver.Cgroupfs {
		t.Fatalf("cgroupfs: %q, %v", d, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("cgroupfs refused: %v", err)
	}

	cfg.CgroupDriver = "systemd-ish"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "cgroup_driver") {
		t.Fatalf("unknown driver: %v", err)
	}

	// systemd is refused where systemd is not running (runc could make no scope), taken where it is.
	cfg.CgroupDriver = "systemd"
	err := cfg.Validate()
	if cgroupdriver.SystemdRunning() {
		if err != nil {
			t.Fatalf("systemd on a systemd host refused: %v", err)
		}
	} else if err == nil || !strings.Contains(err.Error(), "cgroup_driver: systemd, but systemd is not running") {
		t.Fatalf("systemd without systemd: %v", err)
	}
}
