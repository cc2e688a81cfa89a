package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A container's scope under the systemd driver, and its directory on a v2 host, as runc's systemd
// driver makes them for the kubelet's besteffort pod slice.
const (
	scopePath = "kubepods-besteffort-pod1.slice:cri-shim:ctr1"
	scopeDir  = "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-shim-ctr1.scope"
)

// The runc handlers carry the driver to runc (SystemdCgroup), the binary they name kept; a handler
// of another runtime is left alone, and cgroupfs adds no options where there were none.
func TestRuncHandlerCarriesCgroupDriver(t *testing.T) {
	systemdOf := func(h legacy.RuntimeHandler) (bool, string, bool) {
		o, ok := h.Options.(*runcoptions.Options)
		if !ok {
			return false, "", false
		}
		return o.SystemdCgroup, o.BinaryName, true
	}
	h := withCgroupDriver(RuncHandler("runc", "/opt/runc"), cgroupdriver.Systemd)
	if sd, bin, ok := systemdOf(h); !ok || !sd || bin != "/opt/runc" {
		t.Fatalf("systemd with a binary: SystemdCgroup %v, binary %q (options %v)", sd, bin, ok)
	}
	h = withCgroupDriver(RuncHandler("runc", ""), cgroupdriver.Systemd)
	if sd, _, ok := systemdOf(h); !ok || !sd {
		t.Fatalf("systemd without options: SystemdCgroup %v (options %v)", sd, ok)
	}
	if h := withCgroupDriver(RuncHandler("runc", ""), cgroupdriver.Cgroupfs); h.Options != nil {
		t.Fatalf("cgroupfs made options: %v", h.Options)
	}
	// The driver wins over options that say otherwise, and the caller's options are not changed.
	own := &runcoptions.Options{BinaryName: "/opt/runc", SystemdCgroup: true}
	h = withCgroupDriver(legacy.RuntimeHandler{Name: "x", Type: "io.containerd.runc.v2", Options: own}, cgroupdriver.Cgroupfs)
	if sd, bin, ok := systemdOf(h); !ok || sd || bin != "/opt/runc" || !own.SystemdCgroup {
		t.Fatalf("cgroupfs over SystemdCgroup options: %v %q %v; caller's %v", sd, bin, ok, own.SystemdCgroup)
	}
	kata := legacy.RuntimeHandler{Name: "kata", Type: "io.containerd.kata.v2"}
	if h := withCgroupDriver(kata, cgroupdriver.Systemd); h.Options != nil {
		t.Fatalf("another runtime's handler got runc options: %v", h.Options)
	}
}

// The runtime's handlers, which sandboxes and containers are made with, carry the driver.
func TestRuntimeHandlersCarryCgroupDriver(t *testing.T) {
	opts := Options{CgroupDriver: cgroupdriver.Systemd, RuntimeHandlers: []legacy.RuntimeHandler{
		RuncHandler("runc", "/opt/runc"), {Name: "plain"}}}
	m := runtimeHandlers(opts)
	for _, name := range []string{"", "runc", "plain"} {
		o, ok := m[name].Options.(*runcoptions.Options)
		if !ok || !o.SystemdCgroup || m[name].Type != "io.containerd.runc.v2" {
			t.Errorf("handler %q: %+v, want runc options with SystemdCgroup", name, m[name])
		}
	}
	opts.CgroupDriver = cgroupdriver.Cgroupfs
	if m := runtimeHandlers(opts); m["plain"].Options != nil || m["runc"].Options.(*runcoptions.Options).SystemdCgroup {
		t.Fatalf("cgroupfs handlers: %+v", m)
	}
}

// A pod whose cgroup parent has the other driver's form is refused (InvalidArgument) at
// RunPodSandbox, and a container of such a sandbox (one from a run with the other driver) at
// CreateContainer: not run in a cgroup other than the kubelet's.
func TestWrongFormParentRefused(t *testing.T) {
	for _, c := range []struct {
		driver cgroupdriver.Driver
		parent string
	}{
		{cgroupdriver.Systemd, "/kubepods/besteffort/pod1"},
		{cgroupdriver.Cgroupfs, "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"},
		{"", "kubepods-besteffort-pod1.slice"},
		{cgroupdriver.Systemd, "kubepods--pod1.slice"},
	} {
		r := &ContainerdRuntime{opts: Options{CgroupDriver: c.driver}}
		cfg := &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
			Linux:    &runtime.LinuxPodSandboxConfig{CgroupParent: c.parent},
		}
		_, res := r.RunPodSandbox(context.Background(), cfg, "")
		if err := res.Error(); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "cgroup parent") {
			t.Errorf("RunPodSandbox %q %q: %v, want InvalidArgument about the cgroup parent", c.driver, c.parent, err)
		}
		cc := &containerCreation{r: r, sb: &podSandbox{meta: sandboxMetadata{ID: "sb1"}, config: cfg}}
		if err := cc.buildSpecOpts(context.Background()); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "cgroup parent") {
			t.Errorf("CreateContainer %q %q: %v, want InvalidArgument about the cgroup parent", c.driver, c.parent, err)
		}
	}
	// The parent of the driver's form passes the check (and fails later here: no runtime handler).
	r := &ContainerdRuntime{opts: Options{CgroupDriver: cgroupdriver.Systemd}}
	cfg := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
		Linux:    &runtime.LinuxPodSandboxConfig{CgroupParent: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"},
	}
	if _, res := r.RunPodSandbox(context.Background(), cfg, ""); res.Error() == nil || strings.Contains(res.Error().Error(), "cgroup parent") {
		t.Fatalf("a systemd parent under systemd: %v", res.Error())
	}
}

// The stats reader finds a container's systemd scope in a v2 hierarchy (and in v1's, per
// controller), as it finds a cgroupfs path.
func TestStatsReadSystemdScope(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		scopeDir + "/cpu.stat":       "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n",
		scopeDir + "/memory.current": "4194304\n",
		scopeDir + "/memory.stat":    "anon 2097152\nfile 1048576\ninactive_file 1048576\npgfault 7\npgmajfault 1\n",
		scopeDir + "/memory.events":  "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n",
		scopeDir + "/pids.current":   "3\n",
		scopeDir + "/pids.max":       "max\n",
		scopeDir + "/cgroup.procs":   "",
	})
	fs := &cgroupstats.CgroupFS{Unified: true, V2Root: root}
	s, err := fs.Reader().Read(scopePath, cgroupstats.ReadOpts{Pids: true})
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasCPU || s.CPUUsageNanos != 1500000000 || !s.HasMemory || s.WorkingSet != 3145728 || !s.HasPids || s.Pids != 3 {
		t.Fatalf("v2 scope sample %+v", s)
	}
	if n, ok := fs.Reader().Pids(scopePath); !ok || n != 3 {
		t.Fatalf("v2 scope pids %d %v", n, ok)
	}
	ms := &legacy.MetricSet{At: time.Now(), Labels: []string{"id", "name"}}
	cgroupMetrics(fs, scopePath, ms)
	got := map[string]uint64{}
	for _, m := range ms.Out {
		got[m.Name] = m.Value
	}
	if got["container_cpu_usage_seconds_total"] != 1 || got["container_memory_usage_bytes"] != 4194304 || got["container_oom_events_total"] != 1 {
		t.Fatalf("v2 scope metrics %v", got)
	}

	v1 := t.TempDir()
	writeFiles(t, v1, map[string]string{
		"cpuacct/" + scopeDir + "/cpuacct.usage":        "2000000000\n",
		"memory/" + scopeDir + "/memory.usage_in_bytes": "8192\n",
		"memory/" + scopeDir + "/memory.stat":           "total_inactive_file 4096\ntotal_rss 4096\n",
		"pids/" + scopeDir + "/pids.current":            "2\n",
	})
	fs1 := &cgroupstats.CgroupFS{V1: map[string]string{"cpuacct": filepath.Join(v1, "cpuacct"), "memory": filepath.Join(v1, "memory"), "pids": filepath.Join(v1, "pids")}}
	s, err = fs1.Reader().Read(scopePath, cgroupstats.ReadOpts{Pids: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.CPUUsageNanos != 2000000000 || s.WorkingSet != 4096 || s.Pids != 2 {
		t.Fatalf("v1 scope sample %+v", s)
	}
}

// The OOM killer's count is read from the scope of a systemd container (the fake tree has the v2
// and the v1 file: the reader picks the one of this host's mode).
func TestOOMKilledFindsSystemdScope(t *testing.T) {
	root := t.TempDir()
	old := cgroupRoot
	cgroupRoot = root
	defer func() { cgroupRoot = old }()
	if cgroupOOMKilled(scopePath) {
		t.Fatal("OOM kill seen in a scope that is not there")
	}
	writeFiles(t, root, map[string]string{
		scopeDir + "/memory.events":                  "low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n",
		"memory/" + scopeDir + "/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
	})
	if !cgroupOOMKilled(scopePath) {
		t.Fatal("OOM kill in the systemd scope not seen")
	}
}

// The empty scope of a task whose create was cut short is removed from each hierarchy, as a
// cgroupfs leftover is.
func TestRemoveCgroupLeftoversSystemdScope(t *testing.T) {
	root := t.TempDir()
	old := cgroupRoot
	cgroupRoot = root
	defer func() { cgroupRoot = old }()
	quietLogs(t)
	for _, d := range []string{scopeDir, "memory/" + scopeDir, "pids/" + scopeDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Not a cgroup (a regular file in it): left in place.
	if err := os.WriteFile(filepath.Join(root, "pids", scopeDir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	removeCgroupLeftovers(scopePath)
	for d, want := range map[string]bool{scopeDir: false, "memory/" + scopeDir: false, "pids/" + scopeDir: true,
		"kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice": true} {
		if _, err := os.Stat(filepath.Join(root, d)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", d, err == nil, want)
		}
	}
}

// A pod's stats are its cgroup parent's under systemd too: the kubelet's pod slice, by its path or
// its bare name.
func TestPodStatsReadSystemdSlice(t *testing.T) {
	_, c, root := statsListRuntime(t)
	slice := "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"
	writeFiles(t, root, map[string]string{
		slice + "/cpu.stat":       "usage_usec 7000000\n",
		slice + "/memory.current": "16777216\n",
		slice + "/memory.stat":    "anon 8388608\ninactive_file 4194304\n",
		slice + "/pids.current":   "9\n",
	})
	for _, parent := range []string{"/" + slice, "kubepods-besteffort-pod1.slice"} {
		sb := &podSandbox{meta: sandboxMetadata{ID: "sb-" + parent}, state: legacy.SandboxStateReady, config: &runtime.PodSandboxConfig{
			Linux: &runtime.LinuxPodSandboxConfig{CgroupParent: parent, SecurityContext: &runtime.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE}}}}}
		e := c.samplePodLocked(context.Background(), sb, nil, time.Now())
		if e == nil || !e.ok || e.cg.CPUUsageNanos != 7e9 || e.cg.WorkingSet != 12582912 || e.cg.Pids != 9 {
			t.Errorf("parent %q: pod reading %+v", parent, e)
		}
	}
}
