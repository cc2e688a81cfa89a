package legacy

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// MetricType tells how a metric's value behaves.
type MetricType int

const (
	// MetricCounter only grows.
	MetricCounter MetricType = iota
	// MetricGauge goes up and down.
	MetricGauge
)

// MetricDescriptor describes a metric of ListPodSandboxMetrics: its cAdvisor name, help and
// label keys.
type MetricDescriptor struct {
	Name      string
	Help      string
	LabelKeys []string
}

// Metric is one value of a metric, with the values of its descriptor's labels.
type Metric struct {
	Name   string
	At     time.Time
	Type   MetricType
	Labels []string
	Value  uint64
}

// PodMetrics are the metrics of a pod (its network) and of its containers.
type PodMetrics struct {
	SandboxID  string
	Metrics    []Metric
	Containers []ContainerMetrics
}

// ContainerMetrics are the metrics of one container.
type ContainerMetrics struct {
	ContainerID string
	Metrics     []Metric
}

var (
	baseKeys  = []string{"id", "name"}
	ifaceKeys = []string{"id", "name", "interface"}
	devKeys   = []string{"id", "name", "device"}
)

// metricDescriptors are the cAdvisor metrics cri-shim reports (the kubelet's
// /metrics/cadvisor names). Those of block I/O are described but only reported where the
// kernel accounts them.
var metricDescriptors = []MetricDescriptor{
	{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", baseKeys},
	{"container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.", baseKeys},
	{"container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds.", baseKeys},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", baseKeys},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", baseKeys},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", baseKeys},

	{"container_memory_cache", "Number of bytes of page cache memory.", baseKeys},
	{"container_memory_rss", "Size of RSS in bytes.", baseKeys},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", baseKeys},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", baseKeys},
	{"container_memory_swap", "Container swap usage in bytes.", baseKeys},
	{"container_memory_failcnt", "Number of times container memory usage has hit its limit.", baseKeys},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", baseKeys},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", baseKeys},
	{"container_memory_working_set_bytes", "Current working set in bytes.", baseKeys},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", []string{"id", "name", "failure_type", "scope"}},
	{"container_oom_events_total", "Count of out of memory events observed for the container.", baseKeys},

	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", ifaceKeys},
	{"container_network_receive_packets_total", "Cumulative count of packets received.", ifaceKeys},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", ifaceKeys},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", ifaceKeys},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", ifaceKeys},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", ifaceKeys},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", ifaceKeys},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", ifaceKeys},

	{"container_fs_inodes_free", "Number of available Inodes.", devKeys},
	{"container_fs_inodes_total", "Number of Inodes.", devKeys},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", devKeys},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", devKeys},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", devKeys},
	{"container_fs_reads_total", "Cumulative count of reads completed.", devKeys},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", devKeys},
	{"container_fs_writes_total", "Cumulative count of writes completed.", devKeys},
	{"container_blkio_device_usage_total", "Blkio device bytes usage.", []string{"id", "name", "device", "major", "minor", "operation"}},

	{"container_processes", "Number of processes running inside the container.", baseKeys},
	{"container_file_descriptors", "Number of open file descriptors for the container.", baseKeys},
	{"container_sockets", "Number of open sockets for the container.", baseKeys},
	{"container_threads", "Number of threads running inside the container.", baseKeys},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.", baseKeys},

	{"container_last_seen", "Last time a container was seen by the exporter.", baseKeys},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", baseKeys},

	{"container_spec_cpu_period", "CPU period of the container.", baseKeys},
	{"container_spec_cpu_shares", "CPU share of the container.", baseKeys},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", baseKeys},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", baseKeys},
}

// ListMetricDescriptors returns the descriptors of the metrics ListPodSandboxMetrics reports.
func (r *ContainerdRuntime) ListMetricDescriptors(ctx context.Context) ([]MetricDescriptor, error) {
	out := make([]MetricDescriptor, len(metricDescriptors))
	copy(out, metricDescriptors)
	return out, nil
}

// metricSet collects the metrics of one object.
type metricSet struct {
	at     time.Time
	labels []string
	out    []Metric
}

func (m *metricSet) add(name string, t MetricType, v uint64, extra ...string) {
	labels := m.labels
	if len(extra) > 0 {
		labels = append(append([]string(nil), m.labels...), extra...)
	}
	m.out = append(m.out, Metric{Name: name, At: m.at, Type: t, Labels: labels, Value: v})
}

// ListPodSandboxMetrics returns the metrics of every ready pod and its running containers.
// Metrics are read when asked (the kubelet scrapes them every few seconds at most); what the
// kernel does not account is left out.
func (r *ContainerdRuntime) ListPodSandboxMetrics(ctx context.Context) ([]*PodMetrics, error) {
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
	var out []*PodMetrics
	for _, sb := range r.sandboxes.list() {
		sb.mu.RLock()
		ready, pid := sb.state == SandboxStateReady, sb.pid
		sb.mu.RUnlock()
		if !ready {
			continue
		}
		pm := &PodMetrics{SandboxID: sb.meta.ID}
		if pid != 0 && !sb.hostNetwork() {
			if n := readPodNetwork(pid, time.Now()); n != nil {
				ms := &metricSet{at: n.At, labels: []string{sb.meta.ID, sb.config.GetMetadata().GetName()}}
				for _, i := range n.Interfaces {
					ms.add("container_network_receive_bytes_total", MetricCounter, i.RxBytes, i.Name)
					ms.add("container_network_receive_packets_total", MetricCounter, i.RxPackets, i.Name)
					ms.add("container_network_receive_packets_dropped_total", MetricCounter, i.RxDropped, i.Name)
					ms.add("container_network_receive_errors_total", MetricCounter, i.RxErrors, i.Name)
					ms.add("container_network_transmit_bytes_total", MetricCounter, i.TxBytes, i.Name)
					ms.add("container_network_transmit_packets_total", MetricCounter, i.TxPackets, i.Name)
					ms.add("container_network_transmit_packets_dropped_total", MetricCounter, i.TxDropped, i.Name)
					ms.add("container_network_transmit_errors_total", MetricCounter, i.TxErrors, i.Name)
				}
				pm.Metrics = ms.out
			}
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
func (c *statsCollector) containerMetrics(pc *podContainer) *ContainerMetrics {
	pc.mu.RLock()
	state, startedAt, res := pc.state, pc.rec.StartedAt, pc.resources
	pc.mu.RUnlock()
	if state != ContainerStateRunning {
		return nil
	}
	now := time.Now()
	ms := &metricSet{at: now, labels: []string{pc.meta.ID, pc.config.GetMetadata().GetName()}}
	ms.add("container_last_seen", MetricGauge, uint64(now.Unix()))
	if !startedAt.IsZero() {
		ms.add("container_start_time_seconds", MetricGauge, uint64(startedAt.Unix()))
	}
	if res == nil {
		res = pc.config.GetLinux().GetResources()
	}
	if res.GetCpuPeriod() > 0 {
		ms.add("container_spec_cpu_period", MetricGauge, uint64(res.GetCpuPeriod()))
	}
	if res.GetCpuShares() > 0 {
		ms.add("container_spec_cpu_shares", MetricGauge, uint64(res.GetCpuShares()))
	}
	// 0 is no limit, as cAdvisor reports it.
	ms.add("container_spec_memory_limit_bytes", MetricGauge, uint64(max(res.GetMemoryLimitInBytes(), 0)))
	ms.add("container_spec_memory_swap_limit_bytes", MetricGauge, uint64(max(res.GetMemorySwapLimitInBytes(), 0)))

	cgroupMetrics(c.fs, pc.meta.CgroupsPath, ms)

	if l := c.layer(pc.meta.ID); l != nil {
		dev := l.Mountpoint
		ms.add("container_fs_usage_bytes", MetricGauge, l.UsedBytes, dev)
		var st unix.Statfs_t
		if dev != "" && unix.Statfs(dev, &st) == nil {
			ms.add("container_fs_limit_bytes", MetricGauge, st.Blocks*uint64(st.Bsize), dev)
			ms.add("container_fs_inodes_total", MetricGauge, st.Files, dev)
			ms.add("container_fs_inodes_free", MetricGauge, st.Ffree, dev)
		}
	}
	return &ContainerMetrics{ContainerID: pc.meta.ID, Metrics: ms.out}
}

// kv reads a flat-keyed file into a map; nil when it cannot be read.
func kv(path string) map[string]uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]uint64{}
	forEachKV(b, func(k []byte, v uint64) { out[string(k)] = v })
	return out
}

// num reads a file holding one number ("max" reads as 0).
func num(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, true
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// cgroupMetrics adds the CPU, memory and process metrics of the cgroup at path.
func cgroupMetrics(fs *cgroupFS, path string, ms *metricSet) {
	if path == "" || strings.Contains(path, ":") {
		return
	}
	const userHZ = 100 // cpuacct.stat counts in USER_HZ ticks
	var procsFile string
	if fs.unified {
		dir := filepath.Join(fs.v2Root, path)
		if cpu := kv(filepath.Join(dir, "cpu.stat")); cpu != nil {
			ms.add("container_cpu_usage_seconds_total", MetricCounter, cpu["usage_usec"]/1e6)
			ms.add("container_cpu_user_seconds_total", MetricCounter, cpu["user_usec"]/1e6)
			ms.add("container_cpu_system_seconds_total", MetricCounter, cpu["system_usec"]/1e6)
			if _, ok := cpu["nr_periods"]; ok {
				ms.add("container_cpu_cfs_periods_total", MetricCounter, cpu["nr_periods"])
				ms.add("container_cpu_cfs_throttled_periods_total", MetricCounter, cpu["nr_throttled"])
				ms.add("container_cpu_cfs_throttled_seconds_total", MetricCounter, cpu["throttled_usec"]/1e6)
			}
		}
		if usage, ok := num(filepath.Join(dir, "memory.current")); ok {
			ms.add("container_memory_usage_bytes", MetricGauge, usage)
			if st := kv(filepath.Join(dir, "memory.stat")); st != nil {
				ms.add("container_memory_working_set_bytes", MetricGauge, sub0(usage, st["inactive_file"]))
				ms.add("container_memory_cache", MetricGauge, st["file"])
				ms.add("container_memory_rss", MetricGauge, st["anon"])
				ms.add("container_memory_mapped_file", MetricGauge, st["file_mapped"])
				if k, ok := st["kernel"]; ok {
					ms.add("container_memory_kernel_usage", MetricGauge, k)
				} else {
					ms.add("container_memory_kernel_usage", MetricGauge, st["kernel_stack"]+st["slab"]+st["sock"]+st["pagetables"])
				}
				// memory.stat is hierarchical in v2: the container's scope is its hierarchy.
				for _, scope := range []string{"container", "hierarchy"} {
					ms.add("container_memory_failures_total", MetricCounter, st["pgfault"], "pgfault", scope)
					ms.add("container_memory_failures_total", MetricCounter, st["pgmajfault"], "pgmajfault", scope)
				}
			}
			if v, ok := num(filepath.Join(dir, "memory.peak")); ok {
				ms.add("container_memory_max_usage_bytes", MetricGauge, v)
			}
			if v, ok := num(filepath.Join(dir, "memory.swap.current")); ok {
				ms.add("container_memory_swap", MetricGauge, v)
			}
			if ev := kv(filepath.Join(dir, "memory.events")); ev != nil {
				ms.add("container_memory_failcnt", MetricCounter, ev["max"])
				ms.add("container_oom_events_total", MetricCounter, ev["oom_kill"])
			}
		}
		if v, ok := num(filepath.Join(dir, "pids.current")); ok {
			ms.add("container_threads", MetricGauge, v)
		}
		if v, ok := num(filepath.Join(dir, "pids.max")); ok {
			ms.add("container_threads_max", MetricGauge, v)
		}
		procsFile = filepath.Join(dir, "cgroup.procs")
	} else {
		if root := fs.v1["cpuacct"]; root != "" {
			dir := filepath.Join(root, path)
			if v, ok := num(filepath.Join(dir, "cpuacct.usage")); ok {
				ms.add("container_cpu_usage_seconds_total", MetricCounter, v/1e9)
			}
			if st := kv(filepath.Join(dir, "cpuacct.stat")); st != nil {
				ms.add("container_cpu_user_seconds_total", MetricCounter, st["user"]/userHZ)
				ms.add("container_cpu_system_seconds_total", MetricCounter, st["system"]/userHZ)
			}
		}
		if root := fs.v1["cpu"]; root != "" {
			if st := kv(filepath.Join(root, path, "cpu.stat")); st != nil {
				ms.add("container_cpu_cfs_periods_total", MetricCounter, st["nr_periods"])
				ms.add("container_cpu_cfs_throttled_periods_total", MetricCounter, st["nr_throttled"])
				ms.add("container_cpu_cfs_throttled_seconds_total", MetricCounter, st["throttled_time"]/1e9)
			}
		}
		if root := fs.v1["memory"]; root != "" {
			dir := filepath.Join(root, path)
			if usage, ok := num(filepath.Join(dir, "memory.usage_in_bytes")); ok {
				ms.add("container_memory_usage_bytes", MetricGauge, usage)
				if st := kv(filepath.Join(dir, "memory.stat")); st != nil {
					ms.add("container_memory_working_set_bytes", MetricGauge, sub0(usage, st["total_inactive_file"]))
					ms.add("container_memory_cache", MetricGauge, st["total_cache"])
					ms.add("container_memory_rss", MetricGauge, st["total_rss"])
					ms.add("container_memory_mapped_file", MetricGauge, st["total_mapped_file"])
					if v, ok := st["total_swap"]; ok {
						ms.add("container_memory_swap", MetricGauge, v)
					}
					ms.add("container_memory_failures_total", MetricCounter, st["pgfault"], "pgfault", "container")
					ms.add("container_memory_failures_total", MetricCounter, st["pgmajfault"], "pgmajfault", "container")
					ms.add("container_memory_failures_total", MetricCounter, st["total_pgfault"], "pgfault", "hierarchy")
					ms.add("container_memory_failures_total", MetricCounter, st["total_pgmajfault"], "pgmajfault", "hierarchy")
				}
				if v, ok := num(filepath.Join(dir, "memory.max_usage_in_bytes")); ok {
					ms.add("container_memory_max_usage_bytes", MetricGauge, v)
				}
				if v, ok := num(filepath.Join(dir, "memory.failcnt")); ok {
					ms.add("container_memory_failcnt", MetricCounter, v)
				}
				if v, ok := num(filepath.Join(dir, "memory.kmem.usage_in_bytes")); ok {
					ms.add("container_memory_kernel_usage", MetricGauge, v)
				}
				if st := kv(filepath.Join(dir, "memory.oom_control")); st != nil {
					if v, ok := st["oom_kill"]; ok {
						ms.add("container_oom_events_total", MetricCounter, v)
					}
				}
			}
			procsFile = filepath.Join(dir, "cgroup.procs")
		}
		if root := fs.v1["pids"]; root != "" {
			dir := filepath.Join(root, path)
			if v, ok := num(filepath.Join(dir, "pids.current")); ok {
				ms.add("container_threads", MetricGauge, v)
			}
			if v, ok := num(filepath.Join(dir, "pids.max")); ok {
				ms.add("container_threads_max", MetricGauge, v)
			}
		}
	}
	if procsFile == "" {
		return
	}
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
	ms.add("container_processes", MetricGauge, procs)
	ms.add("container_file_descriptors", MetricGauge, fds)
	ms.add("container_sockets", MetricGauge, sockets)
}
