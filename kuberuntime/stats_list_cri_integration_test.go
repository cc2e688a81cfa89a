//go:build integration

package kuberuntime

import (
	"context"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestListCRIContainerStatsServed: a container that starts is read by the collector on its own
// (no stats call); the CRI list serves that reading (timestamped, younger than statsMaxAge) and
// moves on with the sweep.
func TestListCRIContainerStatsServed(t *testing.T) {
	old := statsInterval
	statsInterval = time.Second // the collector started with the runtime keeps its ticker: set before
	t.Cleanup(func() { statsInterval = old })
	e := newEnv(t, "")
	ctx := context.Background()
	sb, _ := e.podWithLogs("statslist")
	id := e.createStart(sb.ID, ctrCfg("burn", "sh", "-c", "while :; do :; done"))
	c := e.rt.stats()

	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		s := c.ctrs[id]
		c.mu.Unlock()
		if s != nil && s.ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the started container was not read by the collector")
		}
		time.Sleep(50 * time.Millisecond)
	}
	conv := func(st *legacy.ContainerStats) *runtime.ContainerStats {
		out := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{Id: st.ID}}
		if st.CPU != nil {
			out.Cpu = &runtime.CpuUsage{Timestamp: st.CPU.At.UnixNano(), UsageCoreNanoSeconds: &runtime.UInt64Value{Value: st.CPU.UsageCoreNanoSeconds}}
		}
		if st.Memory != nil {
			out.Memory = &runtime.MemoryUsage{Timestamp: st.Memory.At.UnixNano(), WorkingSetBytes: &runtime.UInt64Value{Value: st.Memory.WorkingSetBytes}}
		}
		return out
	}
	read := func() (uint64, time.Time) {
		t.Helper()
		list, wire, err := e.rt.ListCRIContainerStats(ctx, &legacy.ContainerStatsFilter{ID: id}, conv)
		if err != nil || len(list) != 1 || len(wire) != 1 || list[0].Cpu == nil || list[0].Memory == nil {
			t.Fatalf("list: %v %v", list, err)
		}
		at := time.Unix(0, list[0].Cpu.Timestamp)
		if age := time.Since(at); age > statsMaxAge {
			t.Fatalf("reading %v old, served up to %v", age, statsMaxAge)
		}
		return list[0].Cpu.UsageCoreNanoSeconds.Value, at
	}
	u1, at1 := read()
	// The sweep (every second here) reads again: the busy loop's CPU time grows.
	time.Sleep(2500 * time.Millisecond)
	u2, at2 := read()
	if !at2.After(at1) || u2 <= u1 {
		t.Fatalf("no newer reading after two sweeps: %d at %v, then %d at %v", u1, at1, u2, at2)
	}
}
