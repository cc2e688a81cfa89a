package kuberuntime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkListContainerStats lists the stats of 500 running containers whose cgroups are real
// (empty) cgroups made for the benchmark, on the host's cgroup filesystem: "cold" reads every
// cgroup on each call (no reading is young enough), "cached" is back-to-back calls. Needs root.
func BenchmarkListContainerStats(b *testing.B) {
	const n = 500
	fs := cgroupstats.DetectCgroupFS()
	base := fmt.Sprintf("/crishim-bench-%d", os.Getpid())
	var roots []string
	if fs.Unified {
		roots = []string{fs.V2Root}
	} else {
		for _, c := range []string{"cpuacct", "memory", "pids"} {
			if fs.V1[c] != "" {
				roots = append(roots, fs.V1[c])
			}
		}
	}
	b.Cleanup(func() {
		for _, root := range roots {
			for i := range n {
				os.Remove(filepath.Join(root, base, fmt.Sprint(i)))
			}
			os.Remove(filepath.Join(root, base))
		}
	})
	r := &ContainerdRuntime{sandboxes: newSandboxStore()}
	st := r.ctrs().store
	for i := range n {
		for _, root := range roots {
			if err := os.MkdirAll(filepath.Join(root, base, fmt.Sprint(i)), 0o755); err != nil {
				b.Fatalf("make cgroup (root needed): %v", err)
			}
		}
		id := fmt.Sprintf("%064d", i)
		st.add(&podContainer{
			meta: containerMetadata{ID: id, SandboxID: fmt.Sprintf("sb%d", i/5), CgroupsPath: filepath.Join(base, fmt.Sprint(i)),
				CreatedAt: time.Unix(int64(i), 0)},
			config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: fmt.Sprint("c", i)},
				Labels: map[string]string{"app": "bench"}},
			state: legacy.ContainerStateRunning,
		})
	}
	ctx := context.Background()
	run := func(b *testing.B, maxAge time.Duration) {
		old := statsMaxAge
		statsMaxAge = maxAge
		defer func() { statsMaxAge = old }()
		var ru0, ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		b.ResetTimer()
		for range b.N {
			list, err := r.ListContainerStats(ctx, nil)
			if err != nil || len(list) != n || list[0].CPU == nil || list[0].Memory == nil {
				b.Fatalf("list: %d %v", len(list), err)
			}
		}
		b.StopTimer()
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
	b.Run("cold", func(b *testing.B) { run(b, 0) })
	b.Run("cached", func(b *testing.B) { run(b, time.Hour) })
	// The CRI list from the collector's readings, entries built and encoded (by the sweep or a
	// call less than a second before): what a ListContainerStats call in a burst costs. The
	// clock stands still, so that no reading gets old during the run.
	b.Run("cri-entries", func(b *testing.B) {
		c := r.stats()
		at := time.Now()
		c.clock = func() time.Time { return at }
		defer func() { c.clock = nil }()
		conv := func(st *legacy.ContainerStats) *runtime.ContainerStats {
			return &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{Id: st.ID, Labels: st.Labels},
				Cpu: &runtime.CpuUsage{Timestamp: st.CPU.At.UnixNano(), UsageCoreNanoSeconds: &runtime.UInt64Value{Value: st.CPU.UsageCoreNanoSeconds}}}
		}
		r.ListCRIContainerStats(ctx, nil, conv) // readings and entries at the clock's time
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			list, wire, err := r.ListCRIContainerStats(ctx, nil, conv)
			if err != nil || len(list) != n || len(wire) != n {
				b.Fatalf("list: %d %v", len(list), err)
			}
		}
	})
	// The CRI list when each call comes a second after the previous one (crictl stats, a
	// kubelet's housekeeping): every cgroup is read again and every entry built and encoded again.
	// The conversion fills what the server's does.
	// One clock for every run of it: readings from a run before are never in its future.
	var clk *stepClock
	b.Run("cri-1s-apart", func(b *testing.B) {
		if clk == nil {
			clk = &stepClock{t: time.Now()}
		}
		c := r.stats()
		c.clock = clk.now
		defer func() { c.clock = nil }()
		u := func(v uint64) *runtime.UInt64Value { return &runtime.UInt64Value{Value: v} }
		conv := func(st *legacy.ContainerStats) *runtime.ContainerStats {
			out := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{Id: st.ID,
				Metadata: &runtime.ContainerMetadata{Name: st.Name, Attempt: st.Attempt}, Labels: st.Labels, Annotations: st.Annotations}}
			if st.CPU != nil {
				out.Cpu = &runtime.CpuUsage{Timestamp: st.CPU.At.UnixNano(), UsageCoreNanoSeconds: u(st.CPU.UsageCoreNanoSeconds)}
				if st.CPU.UsageNanoCores != nil {
					out.Cpu.UsageNanoCores = u(*st.CPU.UsageNanoCores)
				}
			}
			if m := st.Memory; m != nil {
				out.Memory = &runtime.MemoryUsage{Timestamp: m.At.UnixNano(), WorkingSetBytes: u(m.WorkingSetBytes), UsageBytes: u(m.UsageBytes),
					RssBytes: u(m.RSSBytes), PageFaults: u(m.PageFaults), MajorPageFaults: u(m.MajorPageFaults)}
			}
			if sw := st.Swap; sw != nil {
				out.Swap = &runtime.SwapUsage{Timestamp: sw.At.UnixNano(), SwapUsageBytes: u(sw.UsageBytes)}
			}
			return out
		}
		var ru0, ru1 syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
		b.ReportAllocs()
		b.ResetTimer()
		var at int64
		for range b.N {
			clk.advance(time.Second)
			list, wire, err := r.ListCRIContainerStats(ctx, nil, conv)
			if err != nil || len(list) != n || len(wire) != n || list[0].Cpu == nil || list[0].Cpu.Timestamp == at {
				b.Fatalf("list: %d %v, the same reading a second later", len(list), err)
			}
			at = list[0].Cpu.Timestamp
		}
		b.StopTimer()
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()) + time.Duration(ru1.Stime.Nano()-ru0.Stime.Nano())
		b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
	})
}
