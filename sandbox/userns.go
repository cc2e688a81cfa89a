package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/pkg/sys"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A pod with a user namespace (NamespaceMode POD) lives in one user namespace that cri-shim makes
// before anything else of the pod: its network namespace is created inside it (so that the pod's
// root may mount sysfs and set net.* sysctls, which need the network namespace to belong to the
// pod's user namespace), the user namespace is pinned by a bind mount at Files.Userns, the pause
// container joins it by that path and every other container of the pod by /proc/<pause pid>/ns/user.

// NewNetNSInUserns creates a network namespace owned by a new user namespace with the mappings
// uid and gid, and pins it at dir/id like NewNetNS. The user namespace lives as long as the network
// namespace (which holds it); PinUserns gives it a path of its own.
func NewNetNSInUserns(dir, id string, uid, gid runtimespec.LinuxIDMapping) (string, error) {
	return NewNamespacesInUserns(dir, id, uid, gid, "", "")
}

// NewNamespacesInUserns is NewNetNSInUserns that also makes an IPC and a UTS namespace owned by the
// new user namespace and pins them at ipcPath and utsPath (a pod without a pause process: nspin.go);
// an empty path is a namespace not made. On failure nothing is left.
func NewNamespacesInUserns(dir, id string, uid, gid runtimespec.LinuxIDMapping, ipcPath, utsPath string) (string, error) {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	path := filepath.Join(dir, id)
	pins := map[int]string{unix.CLONE_NEWNET: path}
	if ipcPath != "" {
		pins[unix.CLONE_NEWIPC] = ipcPath
	}
	if utsPath != "" {
		pins[unix.CLONE_NEWUTS] = utsPath
	}
	if err := createMountPoints(pins); err != nil {
		return "", err
	}
	var flags uintptr
	for f := range pins {
		flags |= uintptr(f)
	}
	// A short-lived child (stopped before it runs anything) is cloned into a new user namespace
	// with the mappings and unshares the namespaces there, which are pinned from its /proc.
	err := sys.UnshareAfterEnterUserns(mappingString(uid), mappingString(gid), flags, func(pid int) error {
		for f, p := range pins {
			src := fmt.Sprintf("/proc/%d/ns/%s", pid, nsName(f))
			if err := unix.Mount(src, p, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("pin %s namespace at %s: %w", nsName(f), p, err)
			}
		}
		return nil
	})
	if err != nil {
		unpinAll(pins)
		return "", fmt.Errorf("network namespace in a user namespace: %w", err)
	}
	return path, nil
}

func mappingString(m runtimespec.LinuxIDMapping) string {
	return fmt.Sprintf("%d:%d:%d", m.ContainerID, m.HostID, m.Size)
}

// PinUserns bind-mounts the user namespace that owns the network namespace at netnsPath onto path
// (created), so that the pause container can join it by path. Files.Cleanup takes the pin away.
func PinUserns(netnsPath, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create userns mount point: %w", err)
	}
	f.Close()
	netns, err := os.Open(netnsPath)
	if err != nil {
		os.Remove(path)
		return err
	}
	defer netns.Close()
	userns, err := sys.GetUsernsForNamespace(netns.Fd())
	if err != nil {
		os.Remove(path)
		return err
	}
	defer userns.Close()
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", userns.Fd()), path, "none", unix.MS_BIND, ""); err != nil {
		os.Remove(path)
		return fmt.Errorf("pin user namespace at %s: %w", path, err)
	}
	return nil
}

// unpinUserns removes the pin PinUserns made; none is fine.
func unpinUserns(path string) error {
	if path == "" {
		return nil
	}
	for {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unpin user namespace %s: %w", path, err)
		}
		break
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// WithUsernsPath puts the process in the user namespace at path, joined, whose mappings are uid
// and gid. runc needs only the path, but containerd reads the gid mapping to open the task's bundle
// dir to the pod's root group (as its CRI does, the spec carries both; runc checks they agree).
func WithUsernsPath(path string, uid, gid runtimespec.LinuxIDMapping) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		if s.Linux == nil {
			s.Linux = &runtimespec.Linux{}
		}
		s.Linux.UIDMappings = []runtimespec.LinuxIDMapping{uid}
		s.Linux.GIDMappings = []runtimespec.LinuxIDMapping{gid}
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == runtimespec.UserNamespace {
				s.Linux.Namespaces[i].Path = path
				return nil
			}
		}
		s.Linux.Namespaces = append(s.Linux.Namespaces, runtimespec.LinuxNamespace{Type: runtimespec.UserNamespace, Path: path})
		return nil
	}
}
