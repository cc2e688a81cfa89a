package kuberuntime

import (
	"context"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
)

// ContainerStats returns the stats of the container id (or a unique prefix of it).
func (r *ContainerdRuntime) ContainerStats(ctx context.Context, id string) (*legacy.ContainerStats, error) {
	pc, err := r.ctrs().store.get(id)
	if err != nil {
		return nil, err
	}
	c := r.stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.containerStatsLocked(pc, c.now()), nil
}

// ListContainerStats returns the stats of the containers that match filter (nil: all), newest
// first.
func (r *ContainerdRuntime) ListContainerStats(ctx context.Context, filter *legacy.ContainerStatsFilter) ([]*legacy.ContainerStats, error) {
	var cs []*podContainer
	st := r.ctrs().store
	if filter != nil && filter.ID != "" {
		pc, err := st.get(filter.ID)
		if err != nil {
			return nil, nil // unknown or ambiguous: nothing
		}
		cs = []*podContainer{pc}
	} else {
		cs = st.list()
	}
	c := r.stats()
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*legacy.ContainerStats, 0, len(cs))
	for _, pc := range cs {
		if !filter.Match(pc.meta.ID, pc.meta.SandboxID, pc.config.GetLabels()) {
			continue
		}
		out = append(out, c.containerStatsLocked(pc, now))
	}
	return out, nil
}

// PodSandboxStats returns the stats of the sandbox id (or a unique prefix of it); a sandbox that
// is not ready has no usage to report.
func (r *ContainerdRuntime) PodSandboxStats(ctx context.Context, id string) (*legacy.PodStats, error) {
	sb, err := r.sandboxes.get(id)
	if err != nil {
		return nil, err
	}
	ctrs := r.ctrs().store.ofSandbox(sb.meta.ID)
	c := r.stats()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.podStatsLocked(ctx, sb, ctrs, c.now()), nil
}

// ListPodSandboxStats returns the stats of the ready sandboxes that match filter (nil: all).
func (r *ContainerdRuntime) ListPodSandboxStats(ctx context.Context, filter *legacy.SandboxStatsFilter) ([]*legacy.PodStats, error) {
	var sbs []*podSandbox
	if filter != nil && filter.ID != "" {
		sb, err := r.sandboxes.get(filter.ID)
		if err != nil {
			return nil, nil
		}
		sbs = []*podSandbox{sb}
	} else {
		sbs = r.sandboxes.list()
	}
	all := r.ctrs().store.list()
	st := r.ctrs().store
	c := r.stats()
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*legacy.PodStats
	for _, sb := range sbs {
		if filter != nil && !legacy.LabelsMatch(sb.config.GetLabels(), filter.Labels) {
			continue
		}
		if !sb.ready() {
			continue
		}
		out = append(out, c.podStatsLocked(ctx, sb, st.ofSandboxIn(all, sb.meta.ID), now))
	}
	return out, nil
}

// containerStatsLocked builds a container's stats from its (possibly fresh) reading.
func (c *statsCollector) containerStatsLocked(pc *podContainer, now time.Time) *legacy.ContainerStats {
	md := pc.config.GetMetadata()
	out := &legacy.ContainerStats{
		ID: pc.meta.ID, SandboxID: pc.meta.SandboxID, Name: md.GetName(), Attempt: md.GetAttempt(),
		Labels: pc.config.GetLabels(), Annotations: pc.config.GetAnnotations(),
	}
	if s := c.sampleContainerLocked(pc, now); s != nil && s.ok {
		out.CPU, out.Memory, out.Swap, out.Processes = usageOf(s)
	}
	out.WritableLayer = c.layer(pc.meta.ID)
	return out
}

// podStatsLocked builds a pod's stats, its containers' included.
func (c *statsCollector) podStatsLocked(ctx context.Context, sb *podSandbox, ctrs []*podContainer, now time.Time) *legacy.PodStats {
	md := sb.config.GetMetadata()
	out := &legacy.PodStats{
		ID: sb.meta.ID, Name: md.GetName(), Namespace: md.GetNamespace(), UID: md.GetUid(), Attempt: md.GetAttempt(),
		Labels: sb.config.GetLabels(), Annotations: sb.config.GetAnnotations(),
	}
	for _, pc := range ctrs {
		out.Containers = append(out.Containers, c.containerStatsLocked(pc, now))
	}
	if s := c.samplePodLocked(ctx, sb, ctrs, now); s != nil {
		if s.ok {
			out.CPU, out.Memory, out.Swap, out.Processes = usageOf(s)
		}
		out.Network = s.net
	}
	return out
}

// usageOf converts a reading into the model's stats; what the reading lacks stays nil.
func usageOf(s *sampled) (*legacy.CPUStats, *legacy.MemoryStats, *legacy.SwapStats, *legacy.ProcessStats) {
	var cpu *legacy.CPUStats
	var mem *legacy.MemoryStats
	var swap *legacy.SwapStats
	var procs *legacy.ProcessStats
	g := s.cg
	if g.HasCPU {
		cpu = &legacy.CPUStats{At: s.at, UsageCoreNanoSeconds: g.CPUUsageNanos}
		if s.hasNano {
			n := s.nano
			cpu.UsageNanoCores = &n
		}
	}
	if g.HasMemory {
		mem = &legacy.MemoryStats{At: s.at, WorkingSetBytes: g.WorkingSet, UsageBytes: g.MemoryUsage, RSSBytes: g.RSS,
			PageFaults: g.PageFaults, MajorPageFaults: g.MajorPageFaults}
		if g.MemoryLimit > 0 {
			a := cgroupstats.Sub0(g.MemoryLimit, g.WorkingSet)
			mem.AvailableBytes = &a
		}
	}
	if g.HasSwap {
		swap = &legacy.SwapStats{At: s.at, UsageBytes: g.SwapUsage}
		if g.SwapLimit > 0 {
			a := cgroupstats.Sub0(g.SwapLimit, g.SwapUsage)
			swap.AvailableBytes = &a
		}
	}
	if g.HasPids {
		procs = &legacy.ProcessStats{At: s.at, Count: g.Pids}
	}
	return cpu, mem, swap, procs
}
