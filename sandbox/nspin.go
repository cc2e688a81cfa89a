package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"

	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A pod without a pause process ("pause-less") keeps its namespaces by bind mounts of their nsfs
// files, as CRI-O's pinns does: the network namespace as every pod's (NewNetNS), and its IPC and
// UTS namespaces at Files.IPCNS and Files.UTSNS. Its containers join them by those paths.
//
// The namespaces are made by a locked OS thread that unshares them, pins them and goes back to the
// daemon's namespaces before it is unlocked. Should the way back fail, the thread stays locked:
// the Go runtime ends (or, for the main thread, parks) a thread whose goroutine exits locked, so no
// other goroutine ever runs in a pod's namespaces. (Thrown away every time instead, the main
// thread, which any goroutine may run on, would be parked in a pod's namespaces, and
// /proc/<pid>/ns/* would show them.) Unsharing IPC and UTS (and entering them, for the hostname
// and sysctls) is per thread; a user
// namespace is not (a multithreaded process can neither unshare nor enter one), so a pod with a
// user namespace gets its IPC and UTS namespaces from the child that makes its user and network
// namespaces (NewNetNSInUserns).

// PinIPCUTS makes a new IPC and a new UTS namespace and pins them at ipcPath and utsPath; an empty
// path is a namespace not made (the host's is used). On failure nothing is left.
func PinIPCUTS(ipcPath, utsPath string) error {
	pins := map[int]string{}
	if ipcPath != "" {
		pins[unix.CLONE_NEWIPC] = ipcPath
	}
	if utsPath != "" {
		pins[unix.CLONE_NEWUTS] = utsPath
	}
	if len(pins) == 0 {
		return nil
	}
	if err := createMountPoints(pins); err != nil {
		return err
	}
	var flags int
	for f := range pins {
		flags |= f
	}
	err := onThread(pins, func() error {
		if err := unix.Unshare(flags); err != nil {
			return fmt.Errorf("unshare: %w", err)
		}
		for f, p := range pins {
			src := fmt.Sprintf("/proc/thread-self/ns/%s", nsName(f))
			if err := unix.Mount(src, p, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("pin %s namespace at %s: %w", nsName(f), p, err)
			}
		}
		return nil
	})
	if err != nil {
		unpinAll(pins)
		return err
	}
	return nil
}

func nsName(flag int) string {
	switch flag {
	case unix.CLONE_NEWIPC:
		return "ipc"
	case unix.CLONE_NEWUTS:
		return "uts"
	case unix.CLONE_NEWNET:
		return "net"
	}
	return fmt.Sprintf("ns-%#x", flag)
}

// createMountPoint makes the empty file a namespace is pinned on.
func createMountPoint(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create namespace mount point: %w", err)
	}
	return f.Close()
}

// createMountPoints makes the mount points of pins; on failure it removes those it made (a file
// already there is another's, and stays).
func createMountPoints(pins map[int]string) error {
	var made []string
	for _, p := range pins {
		if err := createMountPoint(p); err != nil {
			for _, m := range made {
				os.Remove(m)
			}
			return err
		}
		made = append(made, p)
	}
	return nil
}

func unpinAll(pins map[int]string) {
	for _, p := range pins {
		_ = unpinNS(p)
	}
}

// unpinNS unmounts the namespace pinned at path and removes the file; neither is fine.
func unpinNS(path string) error {
	if path == "" {
		return nil
	}
	for {
		err := unix.Unmount(path, unix.MNT_DETACH)
		if err == nil {
			continue // pinned twice: unmount until none is left
		}
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unpin namespace %s: %w", path, err)
		}
		break
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Pinned tells whether a namespace is mounted at path.
func Pinned(path string) bool { return NetNSPinned(path) }

// onThread runs fn on a locked thread and brings the thread back to the namespaces it was in, of
// the kinds (CLONE_NEW* flags) in kinds, before unlocking it; a thread that cannot get back stays
// locked and is ended.
func onThread(kinds map[int]string, fn func() error) error {
	errCh := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		orig := map[int]int{}
		defer func() {
			back := true
			for f, fd := range orig {
				if unix.Setns(fd, f) != nil {
					back = false
				}
				unix.Close(fd)
			}
			if back {
				goruntime.UnlockOSThread()
			}
		}()
		for f := range kinds {
			fd, err := unix.Open("/proc/thread-self/ns/"+nsName(f), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				errCh <- fmt.Errorf("open the thread's %s namespace: %w", nsName(f), err)
				return
			}
			orig[f] = fd
		}
		errCh <- fn()
	}()
	return <-errCh
}

// inNamespaces runs fn on a thread that entered the namespaces at paths (by CLONE_NEW* flag), and
// comes back (onThread).
func inNamespaces(paths map[int]string, fn func() error) error {
	return onThread(paths, func() error {
		for flag, p := range paths {
			fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("open %s namespace: %w", nsName(flag), err)
			}
			err = unix.Setns(fd, flag)
			unix.Close(fd)
			if err != nil {
				return fmt.Errorf("enter %s namespace %s: %w", nsName(flag), p, err)
			}
		}
		return fn()
	})
}

// PodNamespaces are the paths of a pause-less pod's pinned namespaces; "" is the host's.
type PodNamespaces struct {
	Net, IPC, UTS string
	// GIDMap is the gid mapping of the pod's user namespace, nil without one: sysctls that hold
	// group IDs are written from the host's user namespace, and the pod's IDs are mapped for them.
	GIDMap *runtimespec.LinuxIDMapping
}

// SetUp sets the pod's hostname in its UTS namespace and its sysctls in the namespaces they
// belong to. Sysctls that belong to no namespace of the pod's own are refused before anything is
// written (CheckSysctls).
func (ns PodNamespaces) SetUp(hostname string, sysctls map[string]string) error {
	classes, err := ns.CheckSysctls(sysctls)
	if err != nil {
		return err
	}
	sysctls, err = ns.hostSysctlValues(sysctls)
	if err != nil {
		return err
	}
	paths := map[int]string{}
	if ns.UTS != "" && hostname != "" {
		paths[unix.CLONE_NEWUTS] = ns.UTS
	}
	if len(classes[SysctlIPC]) > 0 {
		paths[unix.CLONE_NEWIPC] = ns.IPC
	}
	if len(classes[SysctlNet]) > 0 {
		paths[unix.CLONE_NEWNET] = ns.Net
	}
	if len(classes[SysctlUTS]) > 0 {
		paths[unix.CLONE_NEWUTS] = ns.UTS
	}
	if len(paths) == 0 {
		return nil
	}
	return inNamespaces(paths, func() error {
		if ns.UTS != "" && hostname != "" {
			if err := unix.Sethostname([]byte(hostname)); err != nil {
				return fmt.Errorf("set hostname %q: %w", hostname, err)
			}
		}
		names := make([]string, 0, len(sysctls))
		for k := range sysctls {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			if err := os.WriteFile(SysctlPath(k), []byte(sysctls[k]), 0); err != nil {
				return fmt.Errorf("sysctl %s=%s: %w", k, sysctls[k], err)
			}
		}
		return nil
	})
}

// hostSysctlValues are the sysctls' values as the host's user namespace writes them: the group
// range of net.ipv4.ping_group_range mapped to the host's IDs in a pod with a user namespace (the
// kernel reads it in the writer's user namespace; runc writes it from the container's).
func (ns PodNamespaces) hostSysctlValues(sysctls map[string]string) (map[string]string, error) {
	if ns.GIDMap == nil {
		return sysctls, nil
	}
	out := make(map[string]string, len(sysctls))
	for k, v := range sysctls {
		out[k] = v
		if normalSysctlName(k) != "net.ipv4.ping_group_range" {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 {
			return nil, fmt.Errorf("sysctl %s=%q: two group IDs expected", k, v)
		}
		var mapped []string
		for _, g := range f {
			n, err := strconv.ParseUint(g, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("sysctl %s=%q: %w", k, v, err)
			}
			m := ns.GIDMap
			if n < uint64(m.ContainerID) || n >= uint64(m.ContainerID)+uint64(m.Size) {
				return nil, fmt.Errorf("sysctl %s=%q: group %d is not mapped in the pod's user namespace", k, v, n)
			}
			mapped = append(mapped, strconv.FormatUint(uint64(m.HostID)+n-uint64(m.ContainerID), 10))
		}
		out[k] = strings.Join(mapped, " ")
	}
	return out, nil
}

// SysctlClass is the namespace a sysctl belongs to.
type SysctlClass int

const (
	SysctlNone SysctlClass = iota // the host's: not settable for a pod
	SysctlIPC
	SysctlNet
	SysctlUTS
)

// ipcSysctls are the IPC namespace's sysctls besides fs.mqueue.* (as runc's list).
var ipcSysctls = map[string]bool{
	"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true, "kernel.sem": true,
	"kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true, "kernel.shm_rmid_forced": true,
}

// ClassifySysctl tells which namespace the sysctl name (dots or slashes between its segments)
// belongs to, as runc decides which sysctls a container may set.
func ClassifySysctl(name string) SysctlClass {
	if !wellFormedSysctl(name) {
		return SysctlNone
	}
	n := normalSysctlName(name)
	switch {
	case ipcSysctls[n] || strings.HasPrefix(n, "fs.mqueue."):
		return SysctlIPC
	case strings.HasPrefix(n, "net."):
		return SysctlNet
	case n == "kernel.domainname":
		return SysctlUTS
	}
	return SysctlNone
}

// wellFormedSysctl tells whether name is a sysctl name that names a file below its own prefix:
// no empty, "." or ".." segment (net/../kernel/core_pattern would be the host's core_pattern, written
// by the daemon), no NUL.
func wellFormedSysctl(name string) bool {
	if name == "" || strings.ContainsRune(name, 0) {
		return false
	}
	sep := "."
	if strings.Contains(name, "/") {
		sep = "/"
	}
	for _, seg := range strings.Split(name, sep) {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// normalSysctlName is the name with dots between its segments: a name with slashes has slashes as
// separators and dots inside segments (net/ipv4/conf/eth0.100/forwarding), which become slashes.
func normalSysctlName(name string) string {
	if !strings.Contains(name, "/") {
		return name
	}
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = strings.ReplaceAll(s, ".", "/")
	}
	return strings.Join(segs, ".")
}

// SysctlPath is the file under /proc/sys of a sysctl name.
func SysctlPath(name string) string {
	if strings.Contains(name, "/") {
		return filepath.Join("/proc/sys", filepath.Clean("/"+name))
	}
	return filepath.Join("/proc/sys", filepath.Clean("/"+strings.ReplaceAll(name, ".", "/")))
}

// CheckSysctls sorts the sysctls by namespace, refusing one that is not namespaced or whose
// namespace the pod does not have of its own (the host's network or IPC).
func (ns PodNamespaces) CheckSysctls(sysctls map[string]string) (map[SysctlClass][]string, error) {
	out := map[SysctlClass][]string{}
	for k := range sysctls {
		c := ClassifySysctl(k)
		var have bool
		switch c {
		case SysctlIPC:
			have = ns.IPC != ""
		case SysctlNet:
			have = ns.Net != ""
		case SysctlUTS:
			have = ns.UTS != ""
		}
		if !wellFormedSysctl(k) {
			return nil, fmt.Errorf("sysctl %q is not a sysctl name (an empty, \".\" or \"..\" segment)", k)
		}
		if !have {
			return nil, fmt.Errorf("sysctl %q is not in a namespace of the pod's own", k)
		}
		out[c] = append(out[c], k)
	}
	return out, nil
}

// ReadNetDev reads /proc/net/dev as seen in the network namespace at path.
func ReadNetDev(netnsPath string) ([]byte, error) {
	var b []byte
	err := inNamespaces(map[int]string{unix.CLONE_NEWNET: netnsPath}, func() (err error) {
		b, err = os.ReadFile("/proc/thread-self/net/dev")
		return err
	})
	return b, err
}

// PodNamespacesOf are the namespaces a pause-less pod of config pins, at the paths of files and
// netnsPath: none for what the pod takes from the host (network, IPC; the UTS namespace goes with
// the network, as for the pause container).
func PodNamespacesOf(config *runtime.PodSandboxConfig, files Files, netnsPath string) PodNamespaces {
	nsOpts := config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	var ns PodNamespaces
	if nsOpts.GetNetwork() != runtime.NamespaceMode_NODE {
		ns.Net, ns.UTS = netnsPath, files.UTSNS
	}
	if nsOpts.GetIpc() != runtime.NamespaceMode_NODE {
		ns.IPC = files.IPCNS
	}
	return ns
}
