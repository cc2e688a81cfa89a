package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
	"golang.org/x/sys/unix"
)

// ListMetricDescriptors returns the descriptors of the metrics ListPodSandboxMetrics reports.
func (r *ContainerdRuntime) ListMetricDescriptors(ctx context.Context) ([]legacy.MetricDescriptor, error) {
	out := make([]legacy.MetricDescriptor, len(legacy.MetricDescriptors))
	copy(out, legacy.MetricDescriptors)
	return out, nil
}

// ListPodSandboxMetrics returns the metrics of every ready pod and its running containers.
// Metrics are read when asked (the kubelet scrapes them every few seconds at most); what the
// kernel does not account is left out.
func (r *ContainerdRuntime) ListPodSandboxMetrics(ctx context.Context) ([]*legacy.PodMetrics, error) {
	c := r.stats()
	all := r.ctrs().store.list()
	// Writable layers not measured yet are measured now: fs usage is part of the answer.
	var missing []string
	for _, pc := range all {
		if c.layer(pc.meta.ID) == nil {
			missing = append(missing, pc.meta.ID)
		}
	}
	if len(missing) > 0 {
		c.refreshLayers(ctx, missing)
	}
	var out []*legacy.PodMetrics
	for _, sb := range r.sandboxes.list() {
		snap := sb.snapshot()
		ready, pid := snap.state == legacy.SandboxStateReady, snap.pid
		if !ready {
			continue
		}
		pm := &legacy.PodMetrics{SandboxID: sb.meta.ID}
		if n := sb.readNetwork(pid, time.Now()); n != nil {
			ms := &legacy.MetricSet{At: n.At, Labels: []string{sb.meta.ID, sb.config.GetMetadata().GetName()}}
			for _, i := range n.Interfaces {
				ms.Add("container_network_receive_bytes_total", legacy.MetricCounter, i.RxBytes, i.Name)
				ms.Add("container_network_receive_packets_total", legacy.MetricCounter, i.RxPackets, i.Name)
				ms.Add("container_network_receive_packets_dropped_total", legacy.MetricCounter, i.RxDropped, i.Name)
				ms.Add("container_network_receive_errors_total", legacy.MetricCounter, i.RxErrors, i.Name)
				ms.Add("container_network_transmit_bytes_total", legacy.MetricCounter, i.TxBytes, i.Name)
				ms.Add("container_network_transmit_packets_total", legacy.MetricCounter, i.TxPackets, i.Name)
				ms.Add("container_network_transmit_packets_dropped_total", legacy.MetricCounter, i.TxDropped, i.Name)
				ms.Add("container_network_transmit_errors_total", legacy.MetricCounter, i.TxErrors, i.Name)
			}
			pm.Metrics = ms.Out
		}
		for _, pc := range c.r.ctrs().store.ofSandboxIn(all, sb.meta.ID) {
			if cm := c.containerMetrics(pc); cm != nil {
				pm.Containers = append(pm.Containers, *cm)
			}
		}
		out = append(out, pm)
	}
	return out, nil
}

// containerMetrics reads the metrics of a running container; nil when it does not run.
func (c *statsCollector) containerMetrics(pc *podContainer) *legacy.ContainerMetrics {
	snap := pc.snapshot()
	state, startedAt, res := snap.state, snap.rec.StartedAt, snap.resources
	if state != legacy.ContainerStateRunning {
		return nil
	}
	now := time.Now()
	ms := &legacy.MetricSet{At: now, Labels: []string{pc.meta.ID, pc.config.GetMetadata().GetName()}}
	ms.Add("container_last_seen", legacy.MetricGauge, uint64(now.Unix()))
	if !startedAt.IsZero() {
		ms.Add("container_start_time_seconds", legacy.MetricGauge, uint64(startedAt.Unix()))
	}
	if res == nil {
		res = pc.config.GetLinux().GetResources()
	}
	if res.GetCpuPeriod() > 0 {
		ms.Add("container_spec_cpu_period", legacy.MetricGauge, uint64(res.GetCpuPeriod()))
	}
	if res.GetCpuShares() > 0 {
		ms.Add("container_spec_cpu_shares", legacy.MetricGauge, uint64(res.GetCpuShares()))
	}
	// 0 is no limit, as cAdvisor reports it.
	ms.Add("container_spec_memory_limit_bytes", legacy.MetricGauge, uint64(max(res.GetMemoryLimitInBytes(), 0)))
	ms.Add("container_spec_memory_swap_limit_bytes", legacy.MetricGauge, uint64(max(res.GetMemorySwapLimitInBytes(), 0)))

	cgroupMetrics(c.fs, pc.meta.CgroupsPath, ms)

	if l := c.layer(pc.meta.ID); l != nil {
		dev := l.Mountpoint
		ms.Add("container_fs_usage_bytes", legacy.MetricGauge, l.UsedBytes, dev)
		var st unix.Statfs_t
		if dev != "" && unix.Statfs(dev, &st) == nil {
			ms.Add("container_fs_limit_bytes", legacy.MetricGauge, st.Blocks*uint64(st.Bsize), dev)
			ms.Add("container_fs_inodes_total", legacy.MetricGauge, st.Files, dev)
			ms.Add("container_fs_inodes_free", legacy.MetricGauge, st.Ffree, dev)
		}
	}
	return &legacy.ContainerMetrics{ContainerID: pc.meta.ID, Metrics: ms.Out}
}

// kv reads a flat-keyed file into a map; nil when it cannot be read.
func kv(path string) map[string]uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]uint64{}
	cgroupstats.ForEachKV(b, func(k []byte, v uint64) { out[string(k)] = v })
	return out
}

// cgroupMetrics adds the CPU, memory and process metrics of the cgroup at path.
func cgroupMetrics(fs *cgroupstats.CgroupFS, path string, ms *legacy.MetricSet) {
	path, ok := cgroupdriver.Dir(path)
	if !ok {
		return
	}
	var procsFile string
	if fs.Unified {
		procsFile = cgroupV2Metrics(filepath.Join(fs.V2Root, path), ms)
	} else {
		procsFile = cgroupV1Metrics(fs, path, ms)
	}
	if procsFile != "" {
		processMetrics(procsFile, ms)
	}
}

// cgroupV2Metrics adds the metrics of the cgroup v2 directory dir; it returns its procs file.
func cgroupV2Metrics(dir string, ms *legacy.MetricSet) (procsFile string) {
	if cpu := kv(filepath.Join(dir, "cpu.stat")); cpu != nil {
		ms.Add("container_cpu_usage_seconds_total", legacy.MetricCounter, cpu["usage_usec"]/1e6)
		ms.Add("container_cpu_user_seconds_total", legacy.MetricCounter, cpu["user_usec"]/1e6)
		ms.Add("container_cpu_system_seconds_total", legacy.MetricCounter, cpu["system_usec"]/1e6)
		if _, ok := cpu["nr_periods"]; ok {
			ms.Add("container_cpu_cfs_periods_total", legacy.MetricCounter, cpu["nr_periods"])
			ms.Add("container_cpu_cfs_throttled_periods_total", legacy.MetricCounter, cpu["nr_throttled"])
			ms.Add("container_cpu_cfs_throttled_seconds_total", legacy.MetricCounter, cpu["throttled_usec"]/1e6)
		}
	}
	if usage, ok := legacy.Num(filepath.Join(dir, "memory.current")); ok {
		cgroupV2MemoryMetrics(dir, usage, ms)
	}
	pidsMetrics(dir, ms)
	return filepath.Join(dir, "cgroup.procs")
}

// cgroupV2MemoryMetrics adds the memory metrics of the cgroup v2 directory dir, whose usage
// (memory.current) is usage.
func cgroupV2MemoryMetrics(dir string, usage uint64, ms *legacy.MetricSet) {
	ms.Add("container_memory_usage_bytes", legacy.MetricGauge, usage)
	if st := kv(filepath.Join(dir, "memory.stat")); st != nil {
		ms.Add("container_memory_working_set_bytes", legacy.MetricGauge, cgroupstats.Sub0(usage, st["inactive_file"]))
		ms.Add("container_memory_cache", legacy.MetricGauge, st["file"])
		ms.Add("container_memory_rss", legacy.MetricGauge, st["anon"])
		ms.Add("container_memory_mapped_file", legacy.MetricGauge, st["file_mapped"])
		if k, ok := st["kernel"]; ok {
			ms.Add("container_memory_kernel_usage", legacy.MetricGauge, k)
		} else {
			ms.Add("container_memory_kernel_usage", legacy.MetricGauge, st["kernel_stack"]+st["slab"]+st["sock"]+st["pagetables"])
		}
		// memory.stat is hierarchical in v2: the container's scope is its hierarchy.
		for _, scope := range []string{"container", "hierarchy"} {
			ms.Add("container_memory_failures_total", legacy.MetricCounter, st["pgfault"], "pgfault", scope)
			ms.Add("container_memory_failures_total", legacy.MetricCounter, st["pgmajfault"], "pgmajfault", scope)
		}
	}
	if v, ok := legacy.Num(filepath.Join(dir, "memory.peak")); ok {
		ms.Add("container_memory_max_usage_bytes", legacy.MetricGauge, v)
	}
	if v, ok := legacy.Num(filepath.Join(dir, "memory.swap.current")); ok {
		ms.Add("container_memory_swap", legacy.MetricGauge, v)
	}
	if ev := kv(filepath.Join(dir, "memory.events")); ev != nil {
		ms.Add("container_memory_failcnt", legacy.MetricCounter, ev["max"])
		ms.Add("container_oom_events_total", legacy.MetricCounter, ev["oom_kill"])
	}
}

// cgroupV1Metrics adds the metrics of the cgroup v1 path, from each controller's hierarchy; it
// returns the memory hierarchy's procs file ("" when there is none).
func cgroupV1Metrics(fs *cgroupstats.CgroupFS, path string, ms *legacy.MetricSet) (procsFile string) {
	const userHZ = 100 // cpuacct.stat counts in USER_HZ ticks
	if root := fs.V1["cpuacct"]; root != "" {
		dir := filepath.Join(root, path)
		if v, ok := legacy.Num(filepath.Join(dir, "cpuacct.usage")); ok {
			ms.Add("container_cpu_usage_seconds_total", legacy.MetricCounter, v/1e9)
		}
		if st := kv(filepath.Join(dir, "cpuacct.stat")); st != nil {
			ms.Add("container_cpu_user_seconds_total", legacy.MetricCounter, st["user"]/userHZ)
			ms.Add("container_cpu_system_seconds_total", legacy.MetricCounter, st["system"]/userHZ)
		}
	}
	if root := fs.V1["cpu"]; root != "" {
		if st := kv(filepath.Join(root, path, "cpu.stat")); st != nil {
			ms.Add("container_cpu_cfs_periods_total", legacy.MetricCounter, st["nr_periods"])
			ms.Add("container_cpu_cfs_throttled_periods_total", legacy.MetricCounter, st["nr_throttled"])
			ms.Add("container_cpu_cfs_throttled_seconds_total", legacy.MetricCounter, st["throttled_time"]/1e9)
		}
	}
	if root := fs.V1["memory"]; root != "" {
		dir := filepath.Join(root, path)
		if usage, ok := legacy.Num(filepath.Join(dir, "memory.usage_in_bytes")); ok {
			cgroupV1MemoryMetrics(dir, usage, ms)
		}
		procsFile = filepath.Join(dir, "cgroup.procs")
	}
	if root := fs.V1["pids"]; root != "" {
		pidsMetrics(filepath.Join(root, path), ms)
	}
	return procsFile
}

// pidsMetrics adds the thread count and limit of the pids controller's directory dir (the same
// files in cgroup v1 and v2).
func pidsMetrics(dir string, ms *legacy.MetricSet) {
	if v, ok := legacy.Num(filepath.Join(dir, "pids.current")); ok {
		ms.Add("container_threads", legacy.MetricGauge, v)
	}
	if v, ok := legacy.Num(filepath.Join(dir, "pids.max")); ok {
		ms.Add("container_threads_max", legacy.MetricGauge, v)
	}
}

// cgroupV1MemoryMetrics adds the memory metrics of the cgroup v1 memory directory dir, whose
// usage (memory.usage_in_bytes) is usage.
func cgroupV1MemoryMetrics(dir string, usage uint64, ms *legacy.MetricSet) {
	ms.Add("container_memory_usage_bytes", legacy.MetricGauge, usage)
	if st := kv(filepath.Join(dir, "memory.stat")); st != nil {
		ms.Add("container_memory_working_set_bytes", legacy.MetricGauge, cgroupstats.Sub0(usage, st["total_inactive_file"]))
		ms.Add("container_memory_cache", legacy.MetricGauge, st["total_cache"])
		ms.Add("container_memory_rss", legacy.MetricGauge, st["total_rss"])
		ms.Add("container_memory_mapped_file", legacy.MetricGauge, st["total_mapped_file"])
		if v, ok := st["total_swap"]; ok {
			ms.Add("container_memory_swap", legacy.MetricGauge, v)
		}
		ms.Add("container_memory_failures_total", legacy.MetricCounter, st["pgfault"], "pgfault", "container")
		ms.Add("container_memory_failures_total", legacy.MetricCounter, st["pgmajfault"], "pgmajfault", "container")
		ms.Add("container_memory_failures_total", legacy.MetricCounter, st["total_pgfault"], "pgfault", "hierarchy")
		ms.Add("container_memory_failures_total", legacy.MetricCounter, st["total_pgmajfault"], "pgmajfault", "hierarchy")
	}
	if v, ok := legacy.Num(filepath.Join(dir, "memory.max_usage_in_bytes")); ok {
		ms.Add("container_memory_max_usage_bytes", legacy.MetricGauge, v)
	}
	if v, ok := legacy.Num(filepath.Join(dir, "memory.failcnt")); ok {
		ms.Add("container_memory_failcnt", legacy.MetricCounter, v)
	}
	if v, ok := legacy.Num(filepath.Join(dir, "memory.kmem.usage_in_bytes")); ok {
		ms.Add("container_memory_kernel_usage", legacy.MetricGauge, v)
	}
	if st := kv(filepath.Join(dir, "memory.oom_control")); st != nil {
		if v, ok := st["oom_kill"]; ok {
			ms.Add("container_oom_events_total", legacy.MetricCounter, v)
		}
	}
}

// processMetrics adds the count of the processes listed in procsFile, of their open files and of
// their sockets.
func processMetrics(procsFile string, ms *legacy.MetricSet) {
	b, err := os.ReadFile(procsFile)
	if err != nil {
		return
	}
	var procs, fds, sockets uint64
	for _, p := range strings.Fields(string(b)) {
		procs++
		dir := "/proc/" + p + "/fd"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			fds++
			if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
				sockets++
			}
		}
	}
	ms.Add("container_processes", legacy.MetricGauge, procs)
	ms.Add("container_file_descriptors", legacy.MetricGauge, fds)
	ms.Add("container_sockets", legacy.MetricGauge, sockets)
}
