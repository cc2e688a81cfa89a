package kuberuntime

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// statsListRuntime is a runtime without containerd whose collector reads a fake cgroup v2 tree;
// it has one running container (cgroup /crishim/c1) and one created one.
func statsListRuntime(t *testing.T) (*ContainerdRuntime, *statsCollector, string) {
	root := t.TempDir()
	r := &ContainerdRuntime{sandboxes: newSandboxStore()}
	fs := &cgroupstats.CgroupFS{Unified: true, V2Root: root}
	c := &statsCollector{r: r, fs: fs, rd: fs.Reader(),
		ctrs: map[string]*sampled{}, pods: map[string]*sampled{}, pauses: map[string]*sampled{}, pauseCgroups: map[string]string{},
		entries: map[string]*criStatsEntry{}, layers: map[string]*layerUsage{}, snRoots: map[string]string{}, layerReq: make(chan string, 256)}
	r.statsOnce.Do(func() { r.statsState = c })
	st := r.ctrs().store
	for i, s := range []legacy.ContainerState{legacy.ContainerStateRunning, legacy.ContainerStateCreated} {
		id := []string{"c1", "c2"}[i]
		st.add(&podContainer{
			meta:   containerMetadata{ID: id, SandboxID: "sb1", CgroupsPath: "/crishim/" + id, CreatedAt: time.Unix(int64(i), 0)},
			config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: id}, Labels: map[string]string{"n": id}},
			state:  s,
		})
	}
	setUsage(t, root, 2500000)
	return r, c, root
}

// setUsage writes the cgroup files of c1, its CPU usage in µs.
func setUsage(t *testing.T, root string, usec int) {
	writeFiles(t, root, map[string]string{
		"/crishim/c1/cpu.stat":       "usage_usec " + strconv.Itoa(usec) + "\n",
		"/crishim/c1/memory.current": "8388608\n",
		"/crishim/c1/memory.max":     "max\n",
		"/crishim/c1/memory.stat":    "anon 3145728\ninactive_file 1048576\npgfault 42\npgmajfault 2\n",
	})
}

func TestListCRIContainerStatsFromCollector(t *testing.T) {
	r, c, root := statsListRuntime(t)
	ctx := context.Background()
	built := 0
	conv := func(st *legacy.ContainerStats) *runtime.ContainerStats {
		built++
		out := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{Id: st.ID}}
		if st.CPU != nil {
			out.Cpu = &runtime.CpuUsage{Timestamp: st.CPU.At.UnixNano(), UsageCoreNanoSeconds: &runtime.UInt64Value{Value: st.CPU.UsageCoreNanoSeconds}}
		}
		if st.Memory != nil {
			out.Memory = &runtime.MemoryUsage{Timestamp: st.Memory.At.UnixNano(), WorkingSetBytes: &runtime.UInt64Value{Value: st.Memory.WorkingSetBytes}}
		}
		return out
	}
	cpu := func(list []*runtime.ContainerStats) (uint64, time.Time) {
		for _, s := range list {
			if s.Attributes.Id == "c1" && s.Cpu != nil {
				return s.Cpu.UsageCoreNanoSeconds.Value, time.Unix(0, s.Cpu.Timestamp)
			}
		}
		t.Fatalf("no CPU for c1 in %v", list)
		return 0, time.Time{}
	}
	t0 := time.Now()
	list, wire, err := r.ListCRIContainerStats(ctx, nil, conv)
	if err != nil || len(list) != 2 || len(wire) != 2 || built != 2 {
		t.Fatalf("first list: %v %d encoded, %d built, %v", list, len(wire), built, err)
	}
	for i, e := range list {
		var got runtime.ContainerStats
		if err := proto.Unmarshal(wire[i], &got); err != nil || !proto.Equal(&got, e) {
			t.Fatalf("entry %d encoded as %v, want %v", i, &got, e)
		}
		if e.Attributes.Id == "c2" && e.Cpu != nil {
			t.Fatalf("created container with usage: %v", e)
		}
	}
	if v, at := cpu(list); v != 2500000000 || at.Before(t0) || time.Since(at) > time.Second {
		t.Fatalf("first reading: %d at %v", v, at)
	}

	// The cgroup moves on; a list soon after serves the reading (not read again, nothing built).
	setUsage(t, root, 3500000)
	again, _, _ := r.ListCRIContainerStats(ctx, nil, conv)
	if v, _ := cpu(again); v != 2500000000 || built != 2 {
		t.Fatalf("second list: %d, %d built (want the reading served)", v, built-2)
	}
	// A ContainerStats as soon serves the same reading.
	if st, err := r.ContainerStats(ctx, "c1"); err != nil || st.CPU == nil || st.CPU.UsageCoreNanoSeconds != 2500000000 {
		t.Fatalf("container stats soon after the list: %+v %v", st, err)
	}

	// The sweep reads again (the reading is older than statsMaxAge) and builds the entry: the
	// next list builds nothing and has the new value.
	c.mu.Lock()
	c.ctrs["c1"].at = time.Now().Add(-2 * statsMaxAge)
	c.mu.Unlock()
	c.sweep(ctx)
	n := built
	list, _, _ = r.ListCRIContainerStats(ctx, nil, conv)
	if v, at := cpu(list); v != 3500000000 || built != n || time.Since(at) > time.Second {
		t.Fatalf("after the sweep: %d at %v, %d built by the list", v, at, built-n)
	}

	// A reading statsMaxAge old (no sweep came) is read again by the list.
	setUsage(t, root, 4500000)
	c.mu.Lock()
	c.ctrs["c1"].at = time.Now().Add(-statsMaxAge)
	c.mu.Unlock()
	list, _, _ = r.ListCRIContainerStats(ctx, &legacy.ContainerStatsFilter{ID: "c1"}, conv)
	if v, at := cpu(list); len(list) != 1 || v != 4500000000 || time.Since(at) > time.Second {
		t.Fatalf("stale reading: %d at %v", v, at)
	}

	// A container that starts is read by sampleStarted, before any list.
	c.mu.Lock()
	delete(c.ctrs, "c1")
	delete(c.entries, "c1")
	c.mu.Unlock()
	c.sampleStarted([]string{"c1", "gone"})
	c.mu.Lock()
	s := c.ctrs["c1"]
	c.mu.Unlock()
	if s == nil || !s.ok || s.cg.CPUUsageNanos != 4500000000 {
		t.Fatalf("started container not read: %+v", s)
	}
	if got, _, _ := r.ListCRIContainerStats(ctx, &legacy.ContainerStatsFilter{Labels: map[string]string{"n": "c2"}}, conv); len(got) != 1 || got[0].Attributes.Id != "c2" {
		t.Fatalf("label filter: %v", got)
	}
}
