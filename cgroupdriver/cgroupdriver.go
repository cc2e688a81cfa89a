// Package cgroupdriver names the cgroups of pods and containers under the two cgroup drivers a
// kubelet may use, and finds them in a cgroup hierarchy.
//
// cgroupfs: a pod's cgroup parent is a path (/kubepods/burstable/pod<uid>) and a container's
// cgroup is <parent>/<id>. systemd: the parent is a slice (kubepods-burstable-pod<uid>.slice, or
// its expansion /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice as the
// kubelet sends it) and a container's OCI cgroupsPath is "slice:prefix:name", from which runc's
// systemd driver makes the transient scope <prefix>-<name>.scope in that slice.
package cgroupdriver

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"
)

// Driver is a cgroup driver. The zero value behaves as Cgroupfs.
type Driver string

const (
	Cgroupfs Driver = "cgroupfs"
	Systemd  Driver = "systemd"
)

// ScopePrefix is the prefix of the scopes of cri-shim's containers under systemd
// (cri-shim-<id>.scope), as containerd's CRI uses cri-containerd.
const ScopePrefix = "cri-shim"

// DefaultSlice holds the scopes of pods that name no cgroup parent under systemd: runc's own
// default slice.
const DefaultSlice = "system.slice"

// systemdRunDir exists when systemd is PID 1 (sd_booted(3)); a variable for tests.
var systemdRunDir = "/run/systemd/system"

// SystemdRunning tells whether systemd booted this host, the way the kubelet, containerd and runc
// tell it: /run/systemd/system is a directory.
func SystemdRunning() bool {
	st, err := os.Lstat(systemdRunDir)
	return err == nil && st.IsDir()
}

// Detect is the driver a host runs by default: systemd when systemd booted it, else cgroupfs.
func Detect() Driver {
	if SystemdRunning() {
		return Systemd
	}
	return Cgroupfs
}

// Parse reads a driver's name; "" is the host's default (Detect).
func Parse(s string) (Driver, error) {
	switch d := Driver(s); d {
	case Systemd, Cgroupfs:
		return d, nil
	case "":
		return Detect(), nil
	}
	return "", fmt.Errorf("%q is not systemd or cgroupfs", s)
}

// IsSystemd tells whether d drives cgroups through systemd.
func (d Driver) IsSystemd() bool { return d == Systemd }

// CheckParent tells whether parent, the cgroup parent of a pod's config, has the driver's form:
// under systemd a slice, by its name or by its path (which must then be the name's expansion);
// under cgroupfs a path that does not end in a slice. A parent of the other driver's form would
// put the pod in a cgroup other than the one the kubelet made for it (and limits): the error
// wraps errdefs.ErrInvalidArgument. An empty parent is always right.
func (d Driver) CheckParent(parent string) error {
	if parent == "" {
		return nil
	}
	base := path.Base(parent)
	slice := strings.HasSuffix(base, ".slice")
	if !d.IsSystemd() {
		if slice {
			return fmt.Errorf("cgroup parent %q is a systemd slice but the cgroup driver is cgroupfs (is the kubelet's cgroupDriver systemd? set cri-shim's cgroup_driver to match): %w", parent, errdefs.ErrInvalidArgument)
		}
		return nil
	}
	if !slice {
		return fmt.Errorf("cgroup parent %q is not a systemd slice (<name>.slice) but the cgroup driver is systemd (is the kubelet's cgroupDriver cgroupfs? set cri-shim's cgroup_driver to match): %w", parent, errdefs.ErrInvalidArgument)
	}
	if strings.Contains(parent, ":") {
		return fmt.Errorf("cgroup parent %q: a slice name has no ':': %w", parent, errdefs.ErrInvalidArgument)
	}
	expanded, err := ExpandSlice(base)
	if err != nil {
		return fmt.Errorf("cgroup parent %q: %v: %w", parent, err, errdefs.ErrInvalidArgument)
	}
	if strings.Contains(parent, "/") && path.Clean("/"+parent) != expanded {
		return fmt.Errorf("cgroup parent %q is not the path of slice %s (%s): %w", parent, base, expanded, errdefs.ErrInvalidArgument)
	}
	return nil
}

// CgroupsPath is the OCI cgroupsPath of container id in a pod whose cgroup parent is parent
// (checked by CheckParent). systemd: "<slice>:cri-shim:<id>", the slice being the parent's last
// element, as containerd's CRI does; a pod without a parent goes to DefaultSlice (runc's systemd
// driver refuses containerd's default path). cgroupfs: <parent>/<id>, or "" without a parent
// (containerd's default spec then has /<namespace>/<id>).
func (d Driver) CgroupsPath(parent, id string) string {
	if d.IsSystemd() {
		slice := DefaultSlice
		if parent != "" {
			slice = path.Base(parent)
		}
		return strings.Join([]string{slice, ScopePrefix, id}, ":")
	}
	if parent == "" {
		return ""
	}
	return filepath.Join(parent, id)
}

// ExpandSlice is the path of a systemd slice in the cgroup hierarchy: each dash-separated prefix
// of its name is a parent slice, so a-b-c.slice is /a.slice/a-b.slice/a-b-c.slice and -.slice
// (the root slice) is /. systemd refuses names with empty components (a--b.slice, -a.slice,
// a-.slice) and with '/'; so does this, as runc's ExpandSlice.
func ExpandSlice(slice string) (string, error) {
	const suffix = ".slice"
	name, ok := strings.CutSuffix(slice, suffix)
	if !ok || name == "" || strings.Contains(slice, "/") {
		return "", fmt.Errorf("invalid slice name %q", slice)
	}
	if name == "-" {
		return "/", nil
	}
	var b strings.Builder
	prefix := ""
	for _, part := range strings.Split(name, "-") {
		if part == "" {
			return "", fmt.Errorf("invalid slice name %q: empty component", slice)
		}
		b.WriteString("/" + prefix + part + suffix)
		prefix += part + "-"
	}
	return b.String(), nil
}

// Dir is the directory of the cgroup at cgroupsPath (an OCI spec's, of either driver) relative to
// the root of a cgroup hierarchy (/sys/fs/cgroup on a v2 host, /sys/fs/cgroup/<controller> on v1).
// A cgroupfs path is its own directory; a systemd "slice:prefix:name" is the slice's expansion
// and the scope runc makes in it:
//
//	kubepods-besteffort-pod1.slice:cri-shim:ID ->
//	/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-shim-ID.scope
//
// ok is false for "" and for a systemd path that names no valid slice.
func Dir(cgroupsPath string) (dir string, ok bool) {
	slice, prefix, name, systemd := splitSystemd(cgroupsPath)
	if !systemd {
		return cgroupsPath, cgroupsPath != ""
	}
	if slice == "" {
		slice = DefaultSlice
	}
	parent, err := ExpandSlice(slice)
	if err != nil || name == "" {
		return "", false
	}
	// runc's unit name: a scope, unless the name is a slice itself.
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		unit = prefix + "-" + name + ".scope"
	}
	return path.Join(parent, unit), true
}

// ParentDir is the directory of a pod's cgroup parent relative to the root of a hierarchy: a
// path as it is (the kubelet's systemd parent is the slice's expansion already), a slice's bare
// name expanded. ok is false for "" and for an invalid slice name.
func ParentDir(parent string) (dir string, ok bool) {
	if parent == "" {
		return "", false
	}
	if strings.Contains(parent, "/") || !strings.HasSuffix(parent, ".slice") {
		return parent, true
	}
	expanded, err := ExpandSlice(parent)
	return expanded, err == nil
}

// splitSystemd splits a systemd cgroupsPath, "slice:prefix:name" (no '/': a cgroupfs path may
// hold ':' but is a path).
func splitSystemd(p string) (slice, prefix, name string, ok bool) {
	if strings.Contains(p, "/") {
		return "", "", "", false
	}
	parts := strings.Split(p, ":")
	if len(parts) != 3 {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}
