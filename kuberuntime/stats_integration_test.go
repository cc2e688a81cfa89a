//go:build integration

package kuberuntime

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
)

// TestStats runs a container that burns a CPU and holds 48 MiB of memory and a 4 MiB file in its
// writable layer, and checks what ContainerStats and PodSandboxStats report against that and
// against the cgroup files.
func TestStats(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	sb, _ := e.podWithLogs("stats")
	cfg := ctrCfg("burn", "sh", "-c",
		"dd if=/dev/zero of=/layer bs=1M count=4 2>/dev/null; dd if=/dev/zero of=/dev/shm/mem bs=1M count=48 2>/dev/null; "+
			"while :; do :; done")
	id := e.createStart(sb.ID, cfg)
	idle := e.createStart(sb.ID, ctrCfg("idle", "sleep", "3600"))

	fs := cgroupstats.DetectCgroupFS()
	t.Logf("cgroups: unified=%v v2=%s v1=%v", fs.Unified, fs.V2Root, fs.V1)
	pc, err := e.rt.ctrs().store.get(id)
	if err != nil {
		t.Fatal(err)
	}
	cgPath := pc.meta.CgroupsPath
	if cgPath == "" {
		t.Fatal("container has no cgroups path")
	}

	// Let it run, and let the first readings be taken.
	time.Sleep(1500 * time.Millisecond)
	if _, err := e.rt.ContainerStats(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.PodSandboxStats(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	// Traffic into the pod's network namespace, for its counters.
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(sb.IP, "9"), time.Second); err == nil {
		c.Close()
	}
	time.Sleep(1200 * time.Millisecond)

	beforeAt, before := time.Now(), cgroupCPU(t, fs, cgPath)
	st, err := e.rt.ContainerStats(ctx, id[:12])
	if err != nil {
		t.Fatal(err)
	}
	after := cgroupCPU(t, fs, cgPath)
	t.Logf("container: cpu %+v nano %v, memory %+v", st.CPU, deref(st.CPU.UsageNanoCores), st.Memory)
	if st.ID != id || st.SandboxID != sb.ID || st.Name != "burn" || st.Labels["ctr"] != "burn" {
		t.Fatalf("attributes %+v", st)
	}
	if st.CPU == nil || st.CPU.At.IsZero() || st.CPU.UsageCoreNanoSeconds > after {
		t.Fatalf("cpu %+v not at most the cgroup's reading %d after it", st.CPU, after)
	}
	// A fresh reading is at least the cgroup's reading before it; one the background sweep took
	// just before that (a stats call within statsMaxAge of a reading gets it) is no older than that.
	if st.CPU.At.Before(beforeAt) {
		if age := beforeAt.Sub(st.CPU.At); age > statsMaxAge {
			t.Fatalf("cpu %+v: a reading %v old, want at most %v", st.CPU, age, statsMaxAge)
		}
	} else if st.CPU.UsageCoreNanoSeconds < before {
		t.Fatalf("cpu %+v below the cgroup's reading %d before it", st.CPU, before)
	}
	// A busy loop: well above a tenth of a core (the node has other work), at most one core.
	if n := st.CPU.UsageNanoCores; n == nil || *n < 1e8 || *n > 1.2e9 {
		t.Fatalf("nano cores %v", deref(n))
	}
	if st.CPU.UsageCoreNanoSeconds < 5e8 {
		t.Fatalf("cpu usage %d after 2.7 s of a busy loop", st.CPU.UsageCoreNanoSeconds)
	}
	if m := st.Memory; m == nil || m.At.IsZero() || m.WorkingSetBytes < 48<<20 || m.UsageBytes < m.WorkingSetBytes || m.PageFaults == 0 || m.AvailableBytes != nil {
		t.Fatalf("memory %+v", st.Memory)
	}

	// The writable layer is measured in the background: it shows up soon.
	deadline := time.Now().Add(10 * time.Second)
	for st.WritableLayer == nil && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		if st, err = e.rt.ContainerStats(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if l := st.WritableLayer; l == nil || l.UsedBytes < 4<<20 || l.InodesUsed == 0 || l.Mountpoint == "" {
		t.Fatalf("writable layer %+v", st.WritableLayer)
	}
	t.Logf("writable layer %+v", st.WritableLayer)

	ps, err := e.rt.PodSandboxStats(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod: cpu %+v nano %v, memory %+v, procs %+v, net %+v", ps.CPU, deref(ps.CPU.UsageNanoCores), ps.Memory, ps.Processes, ps.Network)
	if ps.ID != sb.ID || ps.Name != "stats" || ps.Namespace != "test" || ps.UID != "uid-stats" || len(ps.Containers) != 2 {
		t.Fatalf("pod attributes %+v", ps)
	}
	if ps.CPU == nil || ps.CPU.UsageCoreNanoSeconds < st.CPU.UsageCoreNanoSeconds || ps.CPU.UsageNanoCores == nil || *ps.CPU.UsageNanoCores < 1e8 {
		t.Fatalf("pod cpu %+v", ps.CPU)
	}
	if ps.Memory == nil || ps.Memory.WorkingSetBytes < 48<<20 {
		t.Fatalf("pod memory %+v", ps.Memory)
	}
	c := e.rt.stats()
	c.mu.Lock()
	pauseCg := c.pauseCgroups[sb.ID]
	c.mu.Unlock()
	for _, p := range []string{pauseCg, cgPath} {
		n, _ := fs.Reader().Pids(p)
		t.Logf("cgroup %s: %d tasks", p, n)
	}
	// pause (unless the pod runs pause-less), sh (the loop), sleep.
	if ps.Processes == nil || ps.Processes.Count < 3-pauseLessCount(sb) {
		t.Fatalf("pod processes %+v", ps.Processes)
	}
	if n := ps.Network; n == nil || n.Default == nil || n.Default.Name != "eth0" || n.Default.RxBytes == 0 {
		t.Fatalf("pod network %+v", ps.Network)
	}

	// Filters.
	list, err := e.rt.ListContainerStats(ctx, nil)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	for _, tc := range []struct {
		f    *legacy.ContainerStatsFilter
		want []string
	}{
		{&legacy.ContainerStatsFilter{ID: idle}, []string{idle}},
		{&legacy.ContainerStatsFilter{SandboxID: sb.ID}, []string{id, idle}},
		{&legacy.ContainerStatsFilter{SandboxID: "nope"}, nil},
		{&legacy.ContainerStatsFilter{Labels: map[string]string{"ctr": "burn"}}, []string{id}},
		{&legacy.ContainerStatsFilter{Labels: map[string]string{"ctr": "none"}}, nil},
	} {
		l, err := e.rt.ListContainerStats(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range l {
			got = append(got, s.ID)
		}
		if strings.Join(sortedCopy(got), ",") != strings.Join(sortedCopy(tc.want), ",") {
			t.Fatalf("filter %+v: got %v want %v", tc.f, got, tc.want)
		}
	}
	pl, err := e.rt.ListPodSandboxStats(ctx, &legacy.SandboxStatsFilter{Labels: map[string]string{"pod": "stats"}})
	if err != nil || len(pl) != 1 || pl[0].ID != sb.ID {
		t.Fatalf("list pods: %v %v", pl, err)
	}

	// Metrics: the busy loop's CPU seconds, its memory, the pod's network.
	pms, err := e.rt.ListPodSandboxMetrics(ctx)
	if err != nil || len(pms) != 1 || pms[0].SandboxID != sb.ID || len(pms[0].Containers) != 2 {
		t.Fatalf("metrics: %+v %v", pms, err)
	}
	values := map[string]uint64{}
	for _, cm := range pms[0].Containers {
		if cm.ContainerID != id {
			continue
		}
		for _, m := range cm.Metrics {
			values[m.Name] = m.Value
		}
	}
	for _, m := range pms[0].Metrics {
		if len(m.Labels) == 3 && m.Labels[2] == "eth0" {
			values[m.Name] = m.Value
		}
	}
	t.Logf("metrics of %s: %v", id[:12], values)
	if values["container_cpu_usage_seconds_total"] < 1 || values["container_memory_working_set_bytes"] < 48<<20 ||
		values["container_processes"] != 1 || values["container_fs_usage_bytes"] < 4<<20 ||
		values["container_network_receive_bytes_total"] == 0 || values["container_start_time_seconds"] == 0 {
		t.Fatalf("metrics %v", values)
	}

	// A stopped container keeps its identity but has no usage to report.
	if err := e.rt.StopContainer(ctx, idle, 0); err != nil {
		t.Fatal(err)
	}
	is, err := e.rt.ContainerStats(ctx, idle)
	if err != nil || is.CPU != nil || is.Memory != nil {
		t.Fatalf("stopped container stats %+v %v", is, err)
	}
	// A stopped pod is left out of the list.
	if res := e.rt.StopPodSandbox(ctx, sb.ID); res.Error() != nil {
		t.Fatal(res.Error())
	}
	if pl, err := e.rt.ListPodSandboxStats(ctx, nil); err != nil || len(pl) != 0 {
		t.Fatalf("list pods after stop: %v %v", pl, err)
	}
}

// TestStatsWithCgroupParent runs a pod with a cgroup parent of its own: its stats are its cgroup's.
func TestStatsWithCgroupParent(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	cfg := podCfg("parent")
	var sbID string
	parent := e.cgroupParentFor(t, "stats", func() string { return sbID })
	cfg.Linux.CgroupParent = parent
	sb := e.run(cfg)
	sbID = sb.ID
	if _, err := e.rt.images.PullImage(ctx, legacy.ImageSpec{Image: testBusybox}, nil, nil); err != nil {
		t.Fatal(err)
	}
	id := e.createStart(sb.ID, ctrCfg("burn", "sh", "-c", "while :; do :; done"))
	time.Sleep(1200 * time.Millisecond)
	if _, err := e.rt.PodSandboxStats(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond)
	ps, err := e.rt.PodSandboxStats(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := e.rt.ContainerStats(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod cpu %+v nano %v; container cpu %+v", ps.CPU, deref(ps.CPU.UsageNanoCores), cs.CPU)
	if ps.CPU == nil || ps.CPU.UsageCoreNanoSeconds < 5e8 || ps.CPU.UsageNanoCores == nil || *ps.CPU.UsageNanoCores < 1e8 {
		t.Fatalf("pod cpu %+v", ps.CPU)
	}
	if ps.Processes == nil || ps.Processes.Count < 2-pauseLessCount(sb) || ps.Memory == nil || ps.Memory.UsageBytes == 0 {
		t.Fatalf("pod %+v %+v", ps.Processes, ps.Memory)
	}
	if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
}

func cgroupCPU(t *testing.T, fs *cgroupstats.CgroupFS, path string) uint64 {
	t.Helper()
	s, err := fs.Reader().Read(path, cgroupstats.ReadOpts{})
	if err != nil || !s.HasCPU {
		t.Fatalf("read cgroup %s: %+v %v", path, s, err)
	}
	return s.CPUUsageNanos
}

func deref(p *uint64) string {
	if p == nil {
		return "nil"
	}
	return strconv.FormatUint(*p, 10)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// pauseLessCount is 1 for a sandbox without a pause process (whose process the counts lack), else 0.
func pauseLessCount(sb *legacy.SandboxStatus) uint64 {
	if sb.Pid == 0 {
		return 1
	}
	return 0
}
