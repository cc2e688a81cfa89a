package config

import (
	"fmt"

	"github.com/cri-shim/cri-shim/cgroupdriver"
)

// CgroupDriverOf is the driver of cgroup_driver: the one named, or the host's (systemd when
// systemd is PID 1, else cgroupfs) when empty.
func (c *Config) CgroupDriverOf() (cgroupdriver.Driver, error) {
	d, err := cgroupdriver.Parse(c.CgroupDriver)
	if err != nil {
		return "", fmt.Errorf("cgroup_driver: %w", err)
	}
	return d, nil
}

// validateCgroupDriver refuses an unknown driver, and systemd on a host systemd did not boot:
// runc could create no container there.
func (c *Config) validateCgroupDriver() error {
	d, err := c.CgroupDriverOf()
	if err != nil {
		return err
	}
	if d.IsSystemd() && !cgroupdriver.SystemdRunning() {
		return fmt.Errorf("cgroup_driver: systemd, but systemd is not running on this host (no /run/systemd/system): use cgroupfs")
	}
	return nil
}
