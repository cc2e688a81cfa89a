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

// ResolveCgroupDriver sets cgroup_driver to the driver in effect (CgroupDriverOf): the daemon
// runs with it, and a reload compares the files' config, resolved the same way, with it, so that
// an unset key is no change.
func (c *Config) ResolveCgroupDriver() (cgroupdriver.Driver, error) {
	d, err := c.CgroupDriverOf()
	if err != nil {
		return "", err
	}
	c.CgroupDriver = string(d)
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
