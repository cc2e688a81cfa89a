package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCgroupV1Reader(t *testing.T) {
	root := t.TempDir()
	cg := "/kubepods/pod1/ctr1"
	writeFiles(t, root, map[string]string{
		"cpuacct" + cg + "/cpuacct.usage":              "123456789\n",
		"memory" + cg + "/memory.usage_in_bytes":       "10485760\n",
		"memory" + cg + "/memory.limit_in_bytes":       "67108864\n",
		"memory" + cg + "/memory.memsw.usage_in_bytes": "11534336\n",
		"memory" + cg + "/memory.memsw.limit_in_bytes": "134217728\n",
		"memory" + cg + "/memory.stat": "cache 100\nrss 200\ninactive_file 300\npgfault 5\npgmajfault 1\n" +
			"total_cache 4194304\ntotal_rss 6291456\ntotal_inactive_file 2097152\ntotal_pgfault 1000\ntotal_pgmajfault 7\ntotal_swap 1048576\n",
		"pids" + cg + "/pids.current": "3\n",
	})
	fs := &cgroupstats.CgroupFS{V1: map[string]string{
		"cpu": filepath.Join(root, "cpu"), "cpuacct": filepath.Join(root, "cpuacct"),
		"memory": filepath.Join(root, "memory"), "pids": filepath.Join(root, "pids"),
	}}
	s, err := fs.Reader().Read(cg, cgroupstats.ReadOpts{Pids: true, Limits: true})
	if err != nil {
		t.Fatal(err)
	}
	want := cgroupstats.CgroupSample{
		HasCPU: true, CPUUsageNanos: 123456789,
		HasMemory: true, MemoryUsage: 10485760, WorkingSet: 10485760 - 2097152, RSS: 6291456, PageFaults: 1000, MajorPageFaults: 7,
		MemoryLimit: 67108864,
		HasSwap:     true, SwapUsage: 1048576, SwapLimit: 134217728 - 67108864,
		HasPids: true, Pids: 3,
	}
	if s != want {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}

	// Unlimited memory (the kernel's huge number), no pids controller, no hierarchical totals.
	writeFiles(t, root, map[string]string{
		"memory/other/memory.usage_in_bytes": "4096\n",
		"memory/other/memory.limit_in_bytes": "9223372036854771712\n",
		"memory/other/memory.stat":           "rss 1024\ninactive_file 8192\npgfault 2\npgmajfault 0\n",
	})
	s, err = fs.Reader().Read("/other", cgroupstats.ReadOpts{Limits: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.HasCPU || s.HasPids || !s.HasMemory || s.MemoryLimit != 0 || s.WorkingSet != 0 || s.RSS != 1024 || s.PageFaults != 2 {
		t.Fatalf("got %+v", s)
	}

	if _, err := fs.Reader().Read("/gone", cgroupstats.ReadOpts{}); err != cgroupstats.ErrCgroupGone {
		t.Fatalf("missing cgroup: %v", err)
	}
	if _, err := fs.Reader().Read("system.slice:cri-shim:x", cgroupstats.ReadOpts{}); err != cgroupstats.ErrCgroupGone {
		t.Fatalf("systemd path: %v", err)
	}
}

func TestCgroupV2Reader(t *testing.T) {
	root := t.TempDir()
	cg := "/crishim/ctr2"
	writeFiles(t, root, map[string]string{
		cg + "/cpu.stat":            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
		cg + "/memory.current":      "8388608\n",
		cg + "/memory.max":          "max\n",
		cg + "/memory.swap.current": "4096\n",
		cg + "/memory.swap.max":     "1048576\n",
		cg + "/memory.stat":         "anon 3145728\nfile 4194304\ninactive_file 1048576\nactive_file 100\npgfault 42\npgmajfault 2\n",
		cg + "/pids.current":        "5\n",
	})
	fs := &cgroupstats.CgroupFS{Unified: true, V2Root: root}
	s, err := fs.Reader().Read(cg, cgroupstats.ReadOpts{Pids: true, Limits: true})
	if err != nil {
		t.Fatal(err)
	}
	want := cgroupstats.CgroupSample{
		HasCPU: true, CPUUsageNanos: 2500000000,
		HasMemory: true, MemoryUsage: 8388608, WorkingSet: 8388608 - 1048576, RSS: 3145728, PageFaults: 42, MajorPageFaults: 2,
		HasSwap: true, SwapUsage: 4096, SwapLimit: 1048576,
		HasPids: true, Pids: 5,
	}
	if s != want {
		t.Fatalf("got  %+v\nwant %+v", s, want)
	}
	if _, err := fs.Reader().Read("/gone", cgroupstats.ReadOpts{}); err != cgroupstats.ErrCgroupGone {
		t.Fatalf("missing cgroup: %v", err)
	}
}

func TestParseCgroupMounts(t *testing.T) {
	hybrid := `25 31 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
29 25 0:26 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu
30 25 0:27 / /sys/fs/cgroup/cpuacct rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,pids
`
	fs := cgroupstats.ParseCgroupMounts(strings.NewReader(hybrid))
	if fs.Unified || fs.V1["cpuacct"] != "/sys/fs/cgroup/cpuacct" || fs.V1["memory"] != "/sys/fs/cgroup/memory" || fs.V1["pids"] != "/sys/fs/cgroup/pids" {
		t.Fatalf("hybrid: %+v", fs)
	}
	joined := `30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw shared:16 - cgroup cgroup rw,memory
`
	fs = cgroupstats.ParseCgroupMounts(strings.NewReader(joined))
	if fs.Unified || fs.V1["cpuacct"] != "/sys/fs/cgroup/cpu,cpuacct" {
		t.Fatalf("joined: %+v", fs)
	}
	v2 := `26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
`
	fs = cgroupstats.ParseCgroupMounts(strings.NewReader(v2))
	if !fs.Unified || fs.V2Root != "/sys/fs/cgroup" {
		t.Fatalf("v2: %+v", fs)
	}
}

func TestCPUWindow(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var w legacy.CpuWindow
	if _, ok := w.Add(legacy.CpuPoint{At: t0, Usage: 0}, time.Second); ok {
		t.Fatal("rate from one reading")
	}
	// Too close to the first reading: noise, not a rate.
	if _, ok := w.Add(legacy.CpuPoint{At: at(10 * time.Millisecond), Usage: 1000}, time.Second); ok {
		t.Fatal("rate over 10ms")
	}
	// Half a core over 0.5 s: a short first window is still a measure.
	if n, ok := w.Add(legacy.CpuPoint{At: at(500 * time.Millisecond), Usage: 250e6}, time.Second); !ok || n != 500e6 {
		t.Fatalf("first window: %d %v", n, ok)
	}
	// 2 s after the first checkpoint, one core busy since 0.5 s: 1.75e9 ns over 2 s.
	if n, ok := w.Add(legacy.CpuPoint{At: at(2 * time.Second), Usage: 1.75e9}, time.Second); !ok || n != 875e6 {
		t.Fatalf("window: %d %v", n, ok)
	}
	// Frequent readings afterwards: the window runs from the older checkpoint (t=0 then t=2 s).
	if n, ok := w.Add(legacy.CpuPoint{At: at(2100 * time.Millisecond), Usage: 1.85e9}, time.Second); !ok || n != 880952380 {
		t.Fatalf("frequent: %d %v", n, ok)
	}
	if n, ok := w.Add(legacy.CpuPoint{At: at(3 * time.Second), Usage: 2.0e9}, time.Second); !ok || n != uint64(0.25e9/1.0) {
		t.Fatalf("advance: %d %v", n, ok)
	}
	// Two cores for 10 s: a rare reading spans the time since the last one.
	if n, ok := w.Add(legacy.CpuPoint{At: at(13 * time.Second), Usage: 22e9}, time.Second); !ok || n != 2e9 {
		t.Fatalf("rare: %d %v", n, ok)
	}
	// The counter went back (a new cgroup): start over.
	if _, ok := w.Add(legacy.CpuPoint{At: at(14 * time.Second), Usage: 5}, time.Second); ok {
		t.Fatal("rate across a counter reset")
	}
}

func TestParseNetDev(t *testing.T) {
	b := []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1000      10    0    0    0     0          0         0     1000      10    0    0    0     0       0          0
  eth0:  123456     100    1    2    0     0          0         0    65432      50    3    4    0     0       0          0
`)
	got := cgroupstats.ParseNetDev(b)
	want := []legacy.InterfaceStats{{Name: "eth0", RxBytes: 123456, RxPackets: 100, RxErrors: 1, RxDropped: 2, TxBytes: 65432, TxPackets: 50, TxErrors: 3, TxDropped: 4}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("got %+v", got)
	}
}

func TestFakeStats(t *testing.T) {
	ctx := context.Background()
	f := legacytest.NewFakeRuntime()
	id, res := f.RunPodSandbox(ctx, &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}, Labels: map[string]string{"app": "p"},
	}, "")
	if res.Error() != nil {
		t.Fatal(res.Error())
	}
	cid, err := f.CreateContainer(ctx, id, &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "c"}, Image: &runtime.ImageSpec{Image: "busybox"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.StartContainer(ctx, cid); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f.SetFakeUsage(cid, &legacy.CPUStats{At: now, UsageCoreNanoSeconds: 5}, &legacy.MemoryStats{At: now, WorkingSetBytes: 7})
	cs, err := f.ContainerStats(ctx, cid)
	if err != nil || cs.CPU.UsageCoreNanoSeconds != 5 || cs.Memory.WorkingSetBytes != 7 {
		t.Fatalf("%+v %v", cs, err)
	}
	ps, err := f.ListPodSandboxStats(ctx, &legacy.SandboxStatsFilter{Labels: map[string]string{"app": "p"}})
	if err != nil || len(ps) != 1 || len(ps[0].Containers) != 1 || ps[0].CPU.UsageCoreNanoSeconds != 5 {
		t.Fatalf("%+v %v", ps, err)
	}
	list, _ := f.ListContainerStats(ctx, &legacy.ContainerStatsFilter{Labels: map[string]string{"no": "such"}})
	if len(list) != 0 {
		t.Fatalf("%+v", list)
	}
}

func TestCgroupMetrics(t *testing.T) {
	names := func(ms *legacy.MetricSet) map[string]int {
		out := map[string]int{}
		for _, m := range ms.Out {
			out[m.Name]++
			var desc *legacy.MetricDescriptor
			for i := range legacy.MetricDescriptors {
				if legacy.MetricDescriptors[i].Name == m.Name {
					desc = &legacy.MetricDescriptors[i]
				}
			}
			if desc == nil || len(desc.LabelKeys) != len(m.Labels) {
				t.Fatalf("%s: labels %v, descriptor %+v", m.Name, m.Labels, desc)
			}
		}
		return out
	}
	want := []string{"container_cpu_usage_seconds_total", "container_cpu_user_seconds_total", "container_cpu_system_seconds_total",
		"container_cpu_cfs_periods_total", "container_cpu_cfs_throttled_seconds_total", "container_memory_usage_bytes",
		"container_memory_working_set_bytes", "container_memory_cache", "container_memory_rss", "container_memory_swap",
		"container_memory_failcnt", "container_memory_max_usage_bytes", "container_oom_events_total", "container_threads",
		"container_threads_max", "container_processes", "container_file_descriptors", "container_sockets"}

	root := t.TempDir()
	cg := "/pod/ctr"
	writeFiles(t, root, map[string]string{
		"cpuacct" + cg + "/cpuacct.usage":             "3000000000\n",
		"cpuacct" + cg + "/cpuacct.stat":              "user 200\nsystem 100\n",
		"cpu" + cg + "/cpu.stat":                      "nr_periods 10\nnr_throttled 2\nthrottled_time 2000000000\n",
		"memory" + cg + "/memory.usage_in_bytes":      "4096\n",
		"memory" + cg + "/memory.max_usage_in_bytes":  "8192\n",
		"memory" + cg + "/memory.failcnt":             "1\n",
		"memory" + cg + "/memory.kmem.usage_in_bytes": "512\n",
		"memory" + cg + "/memory.oom_control":         "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
		"memory" + cg + "/memory.stat":                "pgfault 1\npgmajfault 0\ntotal_cache 1024\ntotal_rss 2048\ntotal_inactive_file 1024\ntotal_swap 0\ntotal_pgfault 3\ntotal_pgmajfault 1\n",
		"memory" + cg + "/cgroup.procs":               "",
		"pids" + cg + "/pids.current":                 "2\n",
		"pids" + cg + "/pids.max":                     "max\n",
	})
	fs := &cgroupstats.CgroupFS{V1: map[string]string{"cpu": filepath.Join(root, "cpu"), "cpuacct": filepath.Join(root, "cpuacct"),
		"memory": filepath.Join(root, "memory"), "pids": filepath.Join(root, "pids")}}
	ms := &legacy.MetricSet{At: time.Now(), Labels: []string{"id", "name"}}
	cgroupMetrics(fs, cg, ms)
	got := names(ms)
	for _, n := range want {
		if got[n] == 0 {
			t.Errorf("v1: %s missing", n)
		}
	}
	if got["container_memory_failures_total"] != 4 {
		t.Errorf("v1 failures: %d", got["container_memory_failures_total"])
	}
	for _, m := range ms.Out {
		if m.Name == "container_cpu_usage_seconds_total" && m.Value != 3 || m.Name == "container_cpu_user_seconds_total" && m.Value != 2 ||
			m.Name == "container_memory_working_set_bytes" && m.Value != 3072 || m.Name == "container_threads_max" && m.Value != 0 {
			t.Errorf("v1 %s = %d", m.Name, m.Value)
		}
	}

	root2 := t.TempDir()
	writeFiles(t, root2, map[string]string{
		cg + "/cpu.stat":            "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\nnr_periods 4\nnr_throttled 1\nthrottled_usec 1000000\n",
		cg + "/memory.current":      "4096\n",
		cg + "/memory.peak":         "8192\n",
		cg + "/memory.swap.current": "0\n",
		cg + "/memory.events":       "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
		cg + "/memory.stat":         "anon 2048\nfile 1024\nfile_mapped 512\ninactive_file 1024\nkernel 256\npgfault 3\npgmajfault 1\n",
		cg + "/pids.current":        "2\n",
		cg + "/pids.max":            "100\n",
		cg + "/cgroup.procs":        "",
	})
	ms = &legacy.MetricSet{At: time.Now(), Labels: []string{"id", "name"}}
	cgroupMetrics(&cgroupstats.CgroupFS{Unified: true, V2Root: root2}, cg, ms)
	got = names(ms)
	for _, n := range append(want, "container_memory_kernel_usage", "container_memory_mapped_file") {
		if got[n] == 0 {
			t.Errorf("v2: %s missing", n)
		}
	}
}
