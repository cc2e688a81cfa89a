package legacytest

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
)

// fakeUsage is what FakeRuntime reports for its running containers.
type fakeUsage struct {
	mu    sync.Mutex
	usage map[string]*legacy.ContainerStats // by container ID: the CPU and Memory to report
}

func (f *FakeRuntime) usage() *fakeUsage {
	f.usageOnce.Do(func() { f.usageSet = &fakeUsage{usage: map[string]*legacy.ContainerStats{}} })
	return f.usageSet
}

var _ legacy.StatsProvider = (*FakeRuntime)(nil)

// SetFakeUsage sets the CPU and memory the fake reports for the container id while it runs.
func (f *FakeRuntime) SetFakeUsage(id string, cpu *legacy.CPUStats, mem *legacy.MemoryStats) {
	u := f.usage()
	u.mu.Lock()
	u.usage[id] = &legacy.ContainerStats{CPU: cpu, Memory: mem}
	u.mu.Unlock()
}

func (f *FakeRuntime) fakeContainerStats(d *legacy.ContainerDetails) *legacy.ContainerStats {
	out := &legacy.ContainerStats{
		ID: d.ID.ID, SandboxID: d.SandboxID, Name: d.Name, Attempt: d.Attempt,
		Labels: d.Config.GetLabels(), Annotations: d.Config.GetAnnotations(),
	}
	if d.State == legacy.ContainerStateRunning {
		u := f.usage()
		u.mu.Lock()
		if s := u.usage[d.ID.ID]; s != nil {
			out.CPU, out.Memory = s.CPU, s.Memory
		}
		u.mu.Unlock()
	}
	return out
}

// ContainerStats returns the fake usage of a container.
func (f *FakeRuntime) ContainerStats(ctx context.Context, id string) (*legacy.ContainerStats, error) {
	f.record("ContainerStats")
	fc := f.containers()
	fc.mu.Lock()
	d, err := fc.getLocked(id)
	var cp legacy.ContainerDetails
	if err == nil {
		cp = *d
	}
	fc.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.fakeContainerStats(&cp), nil
}

// ListContainerStats returns the fake usage of the containers that match filter.
func (f *FakeRuntime) ListContainerStats(ctx context.Context, filter *legacy.ContainerStatsFilter) ([]*legacy.ContainerStats, error) {
	f.record("ListContainerStats")
	var out []*legacy.ContainerStats
	for _, d := range f.FakeContainers() {
		if filter != nil {
			if (filter.ID != "" && !strings.HasPrefix(d.ID.ID, filter.ID)) || (filter.SandboxID != "" && !strings.HasPrefix(d.SandboxID, filter.SandboxID)) ||
				!legacy.LabelsMatch(d.Config.GetLabels(), filter.Labels) {
				continue
			}
		}
		out = append(out, f.fakeContainerStats(d))
	}
	return out, nil
}

func (f *FakeRuntime) fakePodStats(s *legacy.SandboxStatus) *legacy.PodStats {
	out := &legacy.PodStats{ID: s.ID, Name: s.Name, Namespace: s.Namespace, UID: string(s.UID), Attempt: s.Attempt,
		Labels: s.Labels, Annotations: s.Annotations}
	var cpu legacy.CPUStats
	var mem legacy.MemoryStats
	var haveCPU, haveMem bool
	for _, d := range f.FakeContainers() {
		if d.SandboxID != s.ID {
			continue
		}
		cs := f.fakeContainerStats(d)
		out.Containers = append(out.Containers, cs)
		if cs.CPU != nil {
			haveCPU = true
			cpu.At = cs.CPU.At
			cpu.UsageCoreNanoSeconds += cs.CPU.UsageCoreNanoSeconds
		}
		if cs.Memory != nil {
			haveMem = true
			mem.At = cs.Memory.At
			mem.WorkingSetBytes += cs.Memory.WorkingSetBytes
			mem.UsageBytes += cs.Memory.UsageBytes
		}
	}
	if haveCPU {
		out.CPU = &cpu
	}
	if haveMem {
		out.Memory = &mem
	}
	if out.CPU != nil && out.CPU.At.IsZero() {
		out.CPU.At = time.Now()
	}
	return out
}

// PodSandboxStats returns the fake usage of a sandbox: the sum of its containers'.
func (f *FakeRuntime) PodSandboxStats(ctx context.Context, id string) (*legacy.PodStats, error) {
	s, err := f.PodSandboxStatus(ctx, id, false)
	if err != nil {
		return nil, err
	}
	return f.fakePodStats(s), nil
}

// ListPodSandboxStats returns the fake usage of the ready sandboxes that match filter.
func (f *FakeRuntime) ListPodSandboxStats(ctx context.Context, filter *legacy.SandboxStatsFilter) ([]*legacy.PodStats, error) {
	var sf *legacy.SandboxFilter
	if filter != nil {
		sf = &legacy.SandboxFilter{ID: filter.ID, Labels: filter.Labels}
	}
	ready := legacy.SandboxStateReady
	if sf == nil {
		sf = &legacy.SandboxFilter{}
	}
	sf.State = &ready
	list, err := f.ListPodSandbox(ctx, sf)
	if err != nil {
		return nil, err
	}
	var out []*legacy.PodStats
	for _, s := range list {
		out = append(out, f.fakePodStats(s))
	}
	return out, nil
}

// ListMetricDescriptors is not implemented by the fake.
func (f *FakeRuntime) ListMetricDescriptors(ctx context.Context) ([]legacy.MetricDescriptor, error) {
	return nil, errdefs.ErrNotImplemented
}

// ListPodSandboxMetrics is not implemented by the fake.
func (f *FakeRuntime) ListPodSandboxMetrics(ctx context.Context) ([]*legacy.PodMetrics, error) {
	return nil, errdefs.ErrNotImplemented
}
