package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cri-shim/cri-shim/legacy"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultShmSize is the size of a pod's /dev/shm (as containerd and Docker give it).
const DefaultShmSize = 64 << 20

// Host files copied when the pod does not say otherwise.
var (
	HostResolvConf = "/etc/resolv.conf"
	HostHosts      = "/etc/hosts"
)

// Files are the per-pod files the pod's containers mount: hostname, hosts and resolv.conf under the
// pod's dir in the root dir, and the /dev/shm tmpfs under its dir in the state dir.
type Files struct {
	Hostname   string
	Hosts      string
	ResolvConf string
	// Shm is the tmpfs mounted as the pod's /dev/shm; "/dev/shm" with host IPC.
	Shm string
	// Userns is where the pod's user namespace is pinned when it has one (userns.go).
	Userns string
	// IPCNS and UTSNS are where a pod without a pause process pins its IPC and UTS namespaces
	// (nspin.go).
	IPCNS, UTSNS string
}

// PodFiles returns where the files of pod id live.
func PodFiles(rootDir, stateDir string, hostIPC bool) Files {
	f := Files{
		Hostname:   filepath.Join(rootDir, "hostname"),
		Hosts:      filepath.Join(rootDir, "hosts"),
		ResolvConf: filepath.Join(rootDir, "resolv.conf"),
		Shm:        filepath.Join(stateDir, "shm"),
		Userns:     filepath.Join(stateDir, "userns"),
		IPCNS:      filepath.Join(stateDir, "ipcns"),
		UTSNS:      filepath.Join(stateDir, "utsns"),
	}
	if hostIPC {
		f.Shm = "/dev/shm"
	}
	return f
}

// Write writes hostname, hosts and resolv.conf for the pod, and mounts its /dev/shm (sized
// shmSize, DefaultShmSize when 0) unless it uses the host's IPC namespace.
func (f Files) Write(config *runtime.PodSandboxConfig, shmSize int64) (retErr error) {
	for _, p := range []string{f.Hostname, f.Hosts, f.ResolvConf} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
	}
	hostname := config.GetHostname()
	if hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
		hostname = h
	}
	if err := writeFileAtomic(f.Hostname, []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	hosts, err := os.ReadFile(HostHosts)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read %s: %w", HostHosts, err)
	}
	if err := writeFileAtomic(f.Hosts, hosts, 0o644); err != nil {
		return err
	}
	var resolv []byte
	if dns := config.GetDnsConfig(); dns != nil {
		content, err := ResolvConf(dns)
		if err != nil {
			return err
		}
		resolv = []byte(content)
	} else {
		resolv, err = os.ReadFile(HostResolvConf)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("read %s: %w", HostResolvConf, err)
		}
	}
	if err := writeFileAtomic(f.ResolvConf, resolv, 0o644); err != nil {
		return err
	}
	if config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE {
		return nil
	}
	if shmSize <= 0 {
		shmSize = DefaultShmSize
	}
	if err := os.MkdirAll(f.Shm, 0o700); err != nil {
		return fmt.Errorf("create pod shm: %w", err)
	}
	if err := unix.Mount("shm", f.Shm, "tmpfs", unix.MS_NOEXEC|unix.MS_NOSUID|unix.MS_NODEV,
		fmt.Sprintf("mode=1777,size=%d", shmSize)); err != nil {
		return fmt.Errorf("mount pod shm: %w", err)
	}
	return nil
}

// Cleanup unmounts the pod's /dev/shm and unpins its user, IPC and UTS namespaces; removing the
// dirs is the caller's. Not mounted is fine.
func (f Files) Cleanup() error {
	return errors.Join(unpinUserns(f.Userns), unpinNS(f.IPCNS), unpinNS(f.UTSNS), f.unmountShm())
}

func (f Files) unmountShm() error {
	if f.Shm == "" || f.Shm == "/dev/shm" {
		return nil
	}
	for {
		err := unix.Unmount(f.Shm, unix.MNT_DETACH)
		if err == nil {
			continue // stacked mounts: unmount until none is left
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		return fmt.Errorf("unmount pod shm %s: %w", f.Shm, err)
	}
}

// ResolvConf renders a DNSConfig as resolv.conf content, after validating it.
func ResolvConf(dns *runtime.DNSConfig) (string, error) {
	if err := legacy.ValidateDNS(dns); err != nil {
		return "", err
	}
	var b strings.Builder
	if len(dns.GetSearches()) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.GetSearches(), " "))
	}
	for _, s := range dns.GetServers() {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.GetOptions()) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.GetOptions(), " "))
	}
	return b.String(), nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
