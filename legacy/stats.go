package legacy

import (
	"context"
	"strings"
	"time"
)

// StatsProvider reports the resource usage of containers and pods: CPU, memory, swap, writable
// layer, network and process count. What cannot be measured is left nil, never made up.
type StatsProvider interface {
	// ContainerStats returns the stats of the container id (or a unique prefix of it).
	ContainerStats(ctx context.Context, id string) (*ContainerStats, error)
	// ListContainerStats returns the stats of the containers that match filter (nil: all).
	ListContainerStats(ctx context.Context, filter *ContainerStatsFilter) ([]*ContainerStats, error)
	// PodSandboxStats returns the stats of the sandbox id (or a unique prefix of it).
	PodSandboxStats(ctx context.Context, id string) (*PodStats, error)
	// ListPodSandboxStats returns the stats of the ready sandboxes that match filter (nil: all).
	ListPodSandboxStats(ctx context.Context, filter *SandboxStatsFilter) ([]*PodStats, error)
	// ListMetricDescriptors describes the metrics ListPodSandboxMetrics reports.
	ListMetricDescriptors(ctx context.Context) ([]MetricDescriptor, error)
	// ListPodSandboxMetrics returns the cAdvisor-style metrics of the ready pods and their
	// running containers.
	ListPodSandboxMetrics(ctx context.Context) ([]*PodMetrics, error)
}

// ContainerStatsFilter selects containers: every set field must match.
type ContainerStatsFilter struct {
	// ID is a container ID or a prefix of one.
	ID string
	// SandboxID is a sandbox ID or a prefix of one.
	SandboxID string
	// Labels must all be present with these values.
	Labels map[string]string
}

// SandboxStatsFilter selects sandboxes: every set field must match.
type SandboxStatsFilter struct {
	// ID is a sandbox ID or a prefix of one.
	ID string
	// Labels must all be present with these values.
	Labels map[string]string
}

// CPUStats is the CPU usage of a cgroup at a time.
type CPUStats struct {
	At time.Time
	// UsageCoreNanoSeconds is the cumulative CPU time.
	UsageCoreNanoSeconds uint64
	// UsageNanoCores is the mean usage over the last sampling window; nil until two samples
	// far enough apart exist.
	UsageNanoCores *uint64
}

// MemoryStats is the memory usage of a cgroup at a time.
type MemoryStats struct {
	At              time.Time
	WorkingSetBytes uint64
	UsageBytes      uint64
	RSSBytes        uint64
	PageFaults      uint64
	MajorPageFaults uint64
	// AvailableBytes is the limit less the working set; nil without a limit.
	AvailableBytes *uint64
}

// SwapStats is the swap usage of a cgroup at a time.
type SwapStats struct {
	At         time.Time
	UsageBytes uint64
	// AvailableBytes is the swap limit less the usage; nil without a limit.
	AvailableBytes *uint64
}

// FsStats is the usage of a filesystem (a container's writable layer).
type FsStats struct {
	At time.Time
	// Mountpoint is the directory of the filesystem (the snapshotter's root).
	Mountpoint string
	UsedBytes  uint64
	InodesUsed uint64
}

// InterfaceStats are the counters of a network interface.
type InterfaceStats struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// NetworkStats are the counters of a pod's network namespace.
type NetworkStats struct {
	At time.Time
	// Default is eth0 (else the first interface); Interfaces are all but the loopback.
	Default    *InterfaceStats
	Interfaces []InterfaceStats
}

// ProcessStats counts the processes of a pod.
type ProcessStats struct {
	At    time.Time
	Count uint64
}

// ContainerStats are a container's identity and usage.
type ContainerStats struct {
	ID          string
	SandboxID   string
	Name        string
	Attempt     uint32
	Labels      map[string]string
	Annotations map[string]string

	CPU           *CPUStats
	Memory        *MemoryStats
	Swap          *SwapStats
	WritableLayer *FsStats
	// Processes is the number of processes (pids.current) of a running container.
	Processes *ProcessStats
}

// PodStats are a pod's identity and usage: its cgroup (or the sum of its pause container's and
// containers' cgroups), its network namespace, and its containers.
type PodStats struct {
	ID          string
	Name        string
	Namespace   string
	UID         string
	Attempt     uint32
	Labels      map[string]string
	Annotations map[string]string

	CPU        *CPUStats
	Memory     *MemoryStats
	Swap       *SwapStats
	Network    *NetworkStats
	Processes  *ProcessStats
	Containers []*ContainerStats
}

// cpuPoint is one reading of a cumulative CPU counter.
type CpuPoint struct {
	At    time.Time
	Usage uint64
}

// cpuWindow turns readings of a cumulative CPU counter into nano cores. It keeps two
// checkpoints at least minWindow apart; the rate is taken from the older one to the newest
// reading, so that the window stays between minWindow and twice that when readings come often,
// and spans the time since the last reading when they come rarely.
type CpuWindow struct {
	older, newer       CpuPoint
	hasOlder, hasNewer bool
}

// shortestWindow is the shortest window a rate is computed over: shorter ones are noise.
const shortestWindow = 100 * time.Millisecond

// add records p and returns the nano cores over the window ending at p, when it can be known.
func (w *CpuWindow) Add(p CpuPoint, minWindow time.Duration) (uint64, bool) {
	if w.hasNewer && (p.Usage < w.newer.Usage || p.At.Before(w.newer.At)) {
		*w = CpuWindow{} // the counter restarted (a new cgroup): start over
	}
	if !w.hasNewer {
		w.newer, w.hasNewer = p, true
		return 0, false
	}
	if p.At.Sub(w.newer.At) >= minWindow {
		w.older, w.hasOlder = w.newer, true
		w.newer = p
		return cpuRate(w.older, p)
	}
	if w.hasOlder {
		return cpuRate(w.older, p)
	}
	return cpuRate(w.newer, p)
}

// cpuRate is the CPU nanoseconds used per second (nano cores) from a to b.
func cpuRate(a, b CpuPoint) (uint64, bool) {
	dt := b.At.Sub(a.At)
	if dt < shortestWindow || b.Usage < a.Usage {
		return 0, false
	}
	return uint64(float64(b.Usage-a.Usage) / dt.Seconds()), true
}

// Match tells whether the container with that ID, sandbox ID and labels passes the filter.
func (f *ContainerStatsFilter) Match(id, sandboxID string, labels map[string]string) bool {
	if f == nil {
		return true
	}
	if f.ID != "" && !strings.HasPrefix(id, f.ID) {
		return false
	}
	if f.SandboxID != "" && !strings.HasPrefix(sandboxID, f.SandboxID) {
		return false
	}
	return LabelsMatch(labels, f.Labels)
}

func LabelsMatch(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}
