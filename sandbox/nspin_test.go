package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestClassifySysctl(t *testing.T) {
	for name, want := range map[string]SysctlClass{
		"kernel.shmmax":                       SysctlIPC,
		"kernel.shm_rmid_forced":              SysctlIPC,
		"kernel.msgmnb":                       SysctlIPC,
		"kernel.sem":                          SysctlIPC,
		"fs.mqueue.msg_max":                   SysctlIPC,
		"net.ipv4.ip_forward":                 SysctlNet,
		"net/ipv4/conf/eth0.100/forwarding":   SysctlNet,
		"kernel.domainname":                   SysctlUTS,
		"kernel.hostname":                     SysctlNone, // the pod's hostname field says it
		"kernel.pid_max":                      SysctlNone,
		"vm.overcommit_memory":                SysctlNone,
		"fs.file-max":                         SysctlNone,
		"kernel.shmmaxx":                      SysctlNone,
		"kernel/shm_rmid_forced":              SysctlIPC,
		"net.ipv4.conf.all.route_localnet":    SysctlNet,
		"fs.mqueue":                           SysctlNone,
		"netfilter.nf_conntrack_max":          SysctlNone,
		"kernel.msgmax":                       SysctlIPC,
		"kernel.shmall":                       SysctlIPC,
		"net.core.somaxconn":                  SysctlNet,
		"net.ipv4.ping_group_range":           SysctlNet,
		"net.ipv4.ip_unprivileged_port_start": SysctlNet,
		"user.max_user_namespaces":            SysctlNone,
		// Names that would leave their prefix: the host's core_pattern through a net. name.
		"net/../kernel/core_pattern":           SysctlNone,
		"net/ipv4/../../kernel/core_pattern":   SysctlNone,
		"net/./ipv4/ip_forward":                SysctlNone,
		"net//ipv4/ip_forward":                 SysctlNone,
		"net..ipv4.ip_forward":                 SysctlNone,
		"net.ipv4.ip_forward.":                 SysctlNone,
		"fs/mqueue/../../kernel/core_pattern":  SysctlNone,
		"net.ipv4.ip_forward\x00":              SysctlNone,
		"kernel.sched_child_runs_first":        SysctlNone,
		"kernel.core_pattern":                  SysctlNone,
		"kernel.shmmni":                        SysctlIPC,
		"kernel.msgmni":                        SysctlIPC,
		"fs.mqueue.queues_max":                 SysctlIPC,
		"net.ipv6.conf.default.disable_ipv6":   SysctlNet,
		"net.ipv4.tcp_keepalive_time":          SysctlNet,
		"net.netfilter.nf_conntrack_tcp_loose": SysctlNet,
	} {
		if got := ClassifySysctl(name); got != want {
			t.Errorf("ClassifySysctl(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestSysctlPath(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.ip_forward":               "/proc/sys/net/ipv4/ip_forward",
		"net/ipv4/conf/eth0.100/forwarding": "/proc/sys/net/ipv4/conf/eth0.100/forwarding",
		"kernel.shmmax":                     "/proc/sys/kernel/shmmax",
		"net.ipv4/../../../etc":             "/proc/sys/etc", // cleaned: never out of /proc/sys
	} {
		if got := SysctlPath(name); got != want {
			t.Errorf("SysctlPath(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestCheckSysctls(t *testing.T) {
	all := PodNamespaces{Net: "n", IPC: "i", UTS: "u"}
	if _, err := all.CheckSysctls(map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1", "kernel.domainname": "d"}); err != nil {
		t.Fatalf("namespaced sysctls refused: %v", err)
	}
	for _, c := range []struct {
		ns     PodNamespaces
		sysctl string
	}{
		{all, "kernel.pid_max"},
		{all, "vm.swappiness"},
		{PodNamespaces{IPC: "i"}, "net.ipv4.ip_forward"},     // host network
		{PodNamespaces{Net: "n", UTS: "u"}, "kernel.shmmax"}, // host IPC
		{PodNamespaces{IPC: "i"}, "kernel.domainname"},       // host UTS
	} {
		if _, err := c.ns.CheckSysctls(map[string]string{c.sysctl: "1"}); err == nil || !strings.Contains(err.Error(), c.sysctl) {
			t.Errorf("%+v %s: err %v, want a refusal naming it", c.ns, c.sysctl, err)
		}
	}
}

func TestPodNamespacesOf(t *testing.T) {
	files := PodFiles("/root/p", "/state/p", false)
	pod := func(net, ipc runtime.NamespaceMode) *runtime.PodSandboxConfig {
		return &runtime.PodSandboxConfig{Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Network: net, Ipc: ipc, Pid: runtime.NamespaceMode_CONTAINER}}}}
	}
	if got, want := PodNamespacesOf(pod(runtime.NamespaceMode_POD, runtime.NamespaceMode_POD), files, "/netns/p"),
		(PodNamespaces{Net: "/netns/p", IPC: "/state/p/ipcns", UTS: "/state/p/utsns"}); got != want {
		t.Errorf("own namespaces: %+v, want %+v", got, want)
	}
	if got, want := PodNamespacesOf(pod(runtime.NamespaceMode_NODE, runtime.NamespaceMode_POD), files, ""),
		(PodNamespaces{IPC: "/state/p/ipcns"}); got != want {
		t.Errorf("host network: %+v, want %+v", got, want)
	}
	if got, want := PodNamespacesOf(pod(runtime.NamespaceMode_POD, runtime.NamespaceMode_NODE), files, "/netns/p"),
		(PodNamespaces{Net: "/netns/p", UTS: "/state/p/utsns"}); got != want {
		t.Errorf("host IPC: %+v, want %+v", got, want)
	}
}

// nsIno is the inode of the namespace at path (a pin or a /proc file).
func nsIno(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// inNS runs fn on a thread in the namespaces at paths and returns its output.
func inNS(t *testing.T, paths map[int]string, fn func() (string, error)) string {
	t.Helper()
	var out string
	if err := inNamespaces(paths, func() (err error) { out, err = fn(); return err }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPinIPCUTSAndSetUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (unshare, mount)")
	}
	dir := t.TempDir()
	netns, err := NewNetNS(filepath.Join(dir, "netns"), "p")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNetNS(netns) })
	files := PodFiles(filepath.Join(dir, "root"), filepath.Join(dir, "state"), false)
	t.Cleanup(func() { files.Cleanup() })
	ownIPC, ownUTS := nsIno(t, "/proc/self/ns/ipc"), nsIno(t, "/proc/self/ns/uts")
	if err := PinIPCUTS(files.IPCNS, files.UTSNS); err != nil {
		t.Fatal(err)
	}
	if !Pinned(files.IPCNS) || !Pinned(files.UTSNS) {
		t.Fatal("namespaces not pinned")
	}
	if nsIno(t, files.IPCNS) == ownIPC || nsIno(t, files.UTSNS) == ownUTS {
		t.Fatal("pinned the daemon's own namespaces")
	}
	ns := PodNamespaces{Net: netns, IPC: files.IPCNS, UTS: files.UTSNS}
	err = ns.SetUp("pod-host", map[string]string{"kernel.shmmax": "123456", "net.ipv4.ip_unprivileged_port_start": "80", "kernel.domainname": "pod.dom"})
	if err != nil {
		t.Fatal(err)
	}
	got := inNS(t, map[int]string{unix.CLONE_NEWUTS: files.UTSNS, unix.CLONE_NEWIPC: files.IPCNS, unix.CLONE_NEWNET: netns}, func() (string, error) {
		h, _ := os.Hostname()
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			return "", err
		}
		shm, _ := os.ReadFile("/proc/sys/kernel/shmmax")
		port, _ := os.ReadFile("/proc/sys/net/ipv4/ip_unprivileged_port_start")
		return fmt.Sprintf("%s %s %s %s", string(bytes.TrimRight(u.Nodename[:], "\x00")), string(bytes.TrimRight(u.Domainname[:], "\x00")),
			strings.TrimSpace(string(shm)), strings.TrimSpace(string(port))) + "|" + h, nil
	})
	if !strings.HasPrefix(got, "pod-host pod.dom 123456 80|") {
		t.Fatalf("in the pod's namespaces: %q", got)
	}
	// The daemon's own namespaces are untouched.
	if h, _ := os.Hostname(); h == "pod-host" {
		t.Fatal("the daemon's hostname changed")
	}
	if nsIno(t, fmt.Sprintf("/proc/%d/ns/uts", os.Getpid())) != ownUTS {
		t.Fatal("the daemon's UTS namespace changed")
	}
	// Refused sysctls write nothing.
	if err := ns.SetUp("", map[string]string{"kernel.pid_max": "1"}); err == nil {
		t.Fatal("kernel.pid_max accepted")
	}
	if err := files.Cleanup(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{files.IPCNS, files.UTSNS} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Fatalf("%s left after Cleanup: %v", p, err)
		}
	}
}

func TestReadNetDev(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (unshare, mount)")
	}
	netns, err := NewNetNS(t.TempDir(), "p")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNetNS(netns) })
	b, err := ReadNetDev(netns)
	if err != nil {
		t.Fatal(err)
	}
	// A new namespace has lo only: the host's interfaces would show another.
	var names []string
	for _, l := range strings.Split(string(b), "\n")[2:] {
		if n, _, ok := strings.Cut(l, ":"); ok {
			names = append(names, strings.TrimSpace(n))
		}
	}
	if fmt.Sprint(names) != "[lo]" {
		t.Fatalf("interfaces %v, want [lo]", names)
	}
}

func TestNamespacesInUsernsPinsIPCUTS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (user namespaces with mappings, mount)")
	}
	dir := t.TempDir()
	files := PodFiles(filepath.Join(dir, "root"), filepath.Join(dir, "state"), false)
	m := runtimespec.LinuxIDMapping{ContainerID: 0, HostID: 400000, Size: 65536}
	p, err := NewNamespacesInUserns(filepath.Join(dir, "netns"), "u", m, m, files.IPCNS, files.UTSNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNetNS(p); files.Cleanup() })
	if err := PinUserns(p, files.Userns); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{files.IPCNS, files.UTSNS} {
		if !Pinned(q) {
			t.Fatalf("%s not pinned", q)
		}
	}
	// Owned by the pod's user namespace: its hostname is set from the host all the same.
	ns := PodNamespaces{Net: p, IPC: files.IPCNS, UTS: files.UTSNS}
	if err := ns.SetUp("userns-pod", map[string]string{"net.ipv4.ping_group_range": "0 2147483647"}); err != nil {
		t.Fatal(err)
	}
	got := inNS(t, map[int]string{unix.CLONE_NEWUTS: files.UTSNS}, func() (string, error) { return os.Hostname() })
	if got != "userns-pod" {
		t.Fatalf("hostname %q", got)
	}
}

func TestHostSysctlValuesMapGroups(t *testing.T) {
	in := map[string]string{"net.ipv4.ping_group_range": "0 1000", "kernel.shmmax": "5"}
	same, err := PodNamespaces{}.hostSysctlValues(in)
	if err != nil || same["net.ipv4.ping_group_range"] != "0 1000" {
		t.Fatalf("without a user namespace: %v %v", same, err)
	}
	ns := PodNamespaces{GIDMap: &runtimespec.LinuxIDMapping{ContainerID: 0, HostID: 300000, Size: 65536}}
	out, err := ns.hostSysctlValues(in)
	if err != nil || out["net.ipv4.ping_group_range"] != "300000 301000" || out["kernel.shmmax"] != "5" {
		t.Fatalf("mapped: %v %v", out, err)
	}
	if _, err := ns.hostSysctlValues(map[string]string{"net/ipv4/ping_group_range": "0 70000"}); err == nil {
		t.Fatal("a group outside the mapping accepted")
	}
}
