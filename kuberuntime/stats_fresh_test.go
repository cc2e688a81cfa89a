package kuberuntime

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// stepClock is a fake clock that moves a microsecond at each reading (a call's readings are
// taken after it starts, as on a real clock) and by whole steps when the test says so.
type stepClock struct {
	mu sync.Mutex
	t  time.Time
}

func (k *stepClock) now() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.t = k.t.Add(time.Microsecond)
	return k.t
}

func (k *stepClock) advance(d time.Duration) {
	k.mu.Lock()
	k.t = k.t.Add(d)
	k.mu.Unlock()
}

// observed is one entity's CPU and memory as a stats answer gave them.
type observed struct {
	at, memAt time.Time
	usage     uint64
	nano      *uint64
	ws        uint64
}

// TestStatsNewerEverySecond: every ContainerStats, ListContainerStats (the CRI list and the
// model's), PodSandboxStats and ListPodSandboxStats answer given one second or more after the
// previous one carries, for each container and pod, a newer CPU timestamp than any answer before,
// with the cgroup's current values and nano cores computed between two real readings; crictl stats
// lists twice one second apart and refuses two readings with the same CPU timestamp. Calls closer
// together may be served the same reading (the cache that keeps a 500-container list cheap).
func TestStatsNewerEverySecond(t *testing.T) {
	r, c, root := statsListRuntime(t)
	clk := &stepClock{t: time.Unix(1_700_000_000, 0)}
	c.clock = clk.now
	start := clk.t
	ctx := context.Background()

	// c1 (statsListRuntime's) is in sb1, a pod with a cgroup of its own; c3 in sb2, a pod
	// without one (its usage is the sum of its pause container's and containers' cgroups).
	r.ctrs().store.add(&podContainer{
		meta:   containerMetadata{ID: "c3", SandboxID: "sb2", CgroupsPath: "/crishim/c3", CreatedAt: time.Unix(3, 0)},
		config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "c3"}},
		state:  legacy.ContainerStateRunning,
	})
	for _, sb := range []struct{ id, parent string }{{"sb1", "/crishim/sb1"}, {"sb2", ""}} {
		r.sandboxes.add(&podSandbox{
			meta: sandboxMetadata{ID: sb.id},
			config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: sb.id, Namespace: "ns", Uid: sb.id},
				Linux: &runtime.LinuxPodSandboxConfig{CgroupParent: sb.parent}},
			state: legacy.SandboxStateReady,
		})
	}
	c.pauseCgroups["sb2"] = "/crishim/pause2"

	// Each cgroup burns a constant share of a core; its files say what it used up to the
	// current step and a memory figure that changes at each step.
	rates := map[string]uint64{"c1": 500e6, "c3": 250e6, "pause2": 125e6, "sb1": 750e6}
	step := 0
	var stepAt time.Time // when the files were last written
	// usage is the CPU time in ns up to the last write (the files have microseconds).
	usage := func(cg string) uint64 {
		return rates[cg] * uint64(stepAt.Sub(start)/time.Microsecond) / 1e6 / 1000 * 1000
	}
	ws := func(cg string) uint64 { return uint64(len(cg))<<20 + uint64(step)*4096 }
	write := func() {
		stepAt = clk.now()
		files := map[string]string{}
		for cg := range rates {
			files["/crishim/"+cg+"/cpu.stat"] = "usage_usec " + strconv.FormatUint(usage(cg)/1000, 10) + "\n"
			files["/crishim/"+cg+"/memory.current"] = strconv.FormatUint(ws(cg), 10) + "\n"
			files["/crishim/"+cg+"/memory.max"] = "max\n"
			files["/crishim/"+cg+"/memory.stat"] = "anon 4096\ninactive_file 0\n"
		}
		writeFiles(t, root, files)
	}
	// want is what a fresh reading of an entity shows: its usage (a pod without a cgroup: the
	// sum of its parts') and its rate.
	want := func(id string) (usage0, ws0, rate uint64) {
		if id == "sb2" {
			return usage("pause2") + usage("c3"), ws("pause2") + ws("c3"), rates["pause2"] + rates["c3"]
		}
		return usage(id), ws(id), rates[id]
	}

	fromModel := func(cpu *legacy.CPUStats, mem *legacy.MemoryStats) observed {
		if cpu == nil || mem == nil {
			t.Fatalf("step %d: no CPU or memory: %+v %+v", step, cpu, mem)
		}
		return observed{at: cpu.At, usage: cpu.UsageCoreNanoSeconds, nano: cpu.UsageNanoCores, memAt: mem.At, ws: mem.WorkingSetBytes}
	}
	conv := func(st *legacy.ContainerStats) *runtime.ContainerStats {
		out := &runtime.ContainerStats{Attributes: &runtime.ContainerAttributes{Id: st.ID}}
		if st.CPU != nil {
			out.Cpu = &runtime.CpuUsage{Timestamp: st.CPU.At.UnixNano(), UsageCoreNanoSeconds: &runtime.UInt64Value{Value: st.CPU.UsageCoreNanoSeconds}}
			if st.CPU.UsageNanoCores != nil {
				out.Cpu.UsageNanoCores = &runtime.UInt64Value{Value: *st.CPU.UsageNanoCores}
			}
		}
		if st.Memory != nil {
			out.Memory = &runtime.MemoryUsage{Timestamp: st.Memory.At.UnixNano(), WorkingSetBytes: &runtime.UInt64Value{Value: st.Memory.WorkingSetBytes}}
		}
		return out
	}
	fromCRI := func(s *runtime.ContainerStats) observed {
		if s.Cpu == nil || s.Memory == nil {
			t.Fatalf("step %d: no CPU or memory: %v", step, s)
		}
		o := observed{at: time.Unix(0, s.Cpu.Timestamp), usage: s.Cpu.UsageCoreNanoSeconds.GetValue(), memAt: time.Unix(0, s.Memory.Timestamp),
			ws: s.Memory.WorkingSetBytes.GetValue()}
		if s.Cpu.UsageNanoCores != nil {
			n := s.Cpu.UsageNanoCores.Value
			o.nano = &n
		}
		return o
	}
	ctrs := func(list []*legacy.ContainerStats) map[string]observed {
		out := map[string]observed{}
		for _, s := range list {
			if s.ID != "c2" { // created, not running: no usage
				out[s.ID] = fromModel(s.CPU, s.Memory)
			}
		}
		return out
	}
	pods := func(list ...*legacy.PodStats) map[string]observed {
		out := map[string]observed{}
		for _, p := range list {
			out[p.ID] = fromModel(p.CPU, p.Memory)
			for id, o := range ctrs(p.Containers) {
				out[id] = o
			}
		}
		return out
	}
	criList := func(f *legacy.ContainerStatsFilter) map[string]observed {
		list, wire, err := r.ListCRIContainerStats(ctx, f, conv)
		if err != nil || len(wire) != len(list) {
			t.Fatalf("step %d: list: %v %v", step, list, err)
		}
		out := map[string]observed{}
		for _, s := range list {
			if s.Attributes.Id != "c2" {
				out[s.Attributes.Id] = fromCRI(s)
			}
		}
		return out
	}
	calls := []struct {
		name string
		call func() map[string]observed
		ids  int // entities the answer must have
	}{
		{"ListContainerStats (CRI)", func() map[string]observed { return criList(nil) }, 2},
		{"ContainerStats c1", func() map[string]observed {
			s, err := r.ContainerStats(ctx, "c1")
			if err != nil {
				t.Fatal(err)
			}
			return ctrs([]*legacy.ContainerStats{s})
		}, 1},
		{"PodSandboxStats sb2", func() map[string]observed {
			p, err := r.PodSandboxStats(ctx, "sb2")
			if err != nil {
				t.Fatal(err)
			}
			return pods(p)
		}, 2},
		{"ListPodSandboxStats", func() map[string]observed {
			list, err := r.ListPodSandboxStats(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			return pods(list...)
		}, 4},
		{"ListContainerStats (model)", func() map[string]observed {
			list, err := r.ListContainerStats(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			return ctrs(list)
		}, 2},
		{"PodSandboxStats sb1", func() map[string]observed {
			p, err := r.PodSandboxStats(ctx, "sb1")
			if err != nil {
				t.Fatal(err)
			}
			return pods(p)
		}, 2},
		{"ContainerStats c3", func() map[string]observed {
			s, err := r.ContainerStats(ctx, "c3")
			if err != nil {
				t.Fatal(err)
			}
			return ctrs([]*legacy.ContainerStats{s})
		}, 1},
		{"ListContainerStats (CRI) c3", func() map[string]observed { return criList(&legacy.ContainerStatsFilter{ID: "c3"}) }, 1},
	}
	// crictl stats first (three table calls: two lists one second apart each), then every call
	// in turn, twice, one second apart.
	var seq []int
	for range 3 {
		seq = append(seq, 0, 0)
	}
	for range 2 {
		for i := range calls {
			seq = append(seq, i)
		}
	}
	last := map[string]observed{}
	for _, k := range seq {
		step++
		clk.advance(time.Second)
		write()
		call := calls[k]
		got := call.call()
		if len(got) != call.ids {
			t.Fatalf("step %d, %s: %d entities with usage, want %d: %v", step, call.name, len(got), call.ids, got)
		}
		for id, o := range got {
			where := fmt.Sprintf("step %d, %s, %s", step, call.name, id)
			prev, seen := last[id]
			if seen && !o.at.After(prev.at) {
				t.Fatalf("%s: CPU timestamp %v not newer than the previous answer's %v, one second before", where, o.at.Sub(start), prev.at.Sub(start))
			}
			if !o.memAt.Equal(o.at) {
				t.Errorf("%s: memory read at %v, CPU at %v", where, o.memAt.Sub(start), o.at.Sub(start))
			}
			u, w, rate := want(id)
			if o.usage != u || o.ws != w {
				t.Errorf("%s: usage %d, working set %d; the cgroups say %d, %d", where, o.usage, o.ws, u, w)
			}
			if seen {
				// Two real readings at least a second apart: the rate the cgroups burn at.
				if o.nano == nil || *o.nano < rate*99/100 || *o.nano > rate*101/100 {
					t.Errorf("%s: nano cores %v, want about %d", where, showNano(o.nano), rate)
				}
			}
			last[id] = o
		}
	}

	// The background sweep sums a pod's parts after reading them: the sum is not stamped older
	// than the readings it adds up (the sweep's start).
	clk.advance(time.Second)
	write()
	c.sweep(ctx)
	c.mu.Lock()
	pod, pause, c3 := c.pods["sb2"].at, c.pauses["sb2"].at, c.ctrs["c3"].at
	c.mu.Unlock()
	if pod.Before(pause) || pod.Before(c3) {
		t.Fatalf("the sweep stamped sb2's sum %v, its parts were read at %v and %v", pod.Sub(start), pause.Sub(start), c3.Sub(start))
	}

	// Closer together than a second, a list may serve the readings it has: no cgroup is read.
	clk.advance(time.Second)
	first := criList(nil)
	clk.advance(500 * time.Millisecond)
	write()
	if again := criList(nil); again["c1"].at != first["c1"].at || again["c3"].at != first["c3"].at {
		t.Fatalf("a list 0.5 s after another read the cgroups again: %v, then %v", first, again)
	}
}

func showNano(p *uint64) any {
	if p == nil {
		return nil
	}
	return *p
}
