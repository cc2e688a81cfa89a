package legacy

import (
	"context"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// SandboxResourceUpdater takes the resources of a pod (CRI's UpdatePodSandboxResources).
type SandboxResourceUpdater interface {
	// UpdatePodSandboxResources records the pod's overhead and the sum of its containers'
	// resources, and applies their sum to the pod's cgroup (its cgroup parent) when it has a
	// cgroupfs one. An unknown sandbox is NotFound.
	UpdatePodSandboxResources(ctx context.Context, id string, overhead, resources *runtime.LinuxContainerResources) error
	// PodSandboxResources returns what UpdatePodSandboxResources last recorded for the sandbox
	// (nil, nil when nothing was).
	PodSandboxResources(id string) (overhead, resources *runtime.LinuxContainerResources)
}

type PodResources struct {
	Overhead, Resources *runtime.LinuxContainerResources
}

// PodCgroupResources is what a pod's cgroup gets: the containers' resources plus the overhead,
// CPU shares, CFS quota and memory limit (a limit only when the containers have one). nil when
// nothing is to be set.
func PodCgroupResources(overhead, resources *runtime.LinuxContainerResources) *specs.LinuxResources {
	if resources == nil {
		return nil
	}
	var out specs.LinuxResources
	if s := resources.GetCpuShares(); s > 0 {
		shares := uint64(s + max(overhead.GetCpuShares(), 0))
		out.CPU = &specs.LinuxCPU{Shares: &shares}
	}
	if q := resources.GetCpuQuota(); q > 0 {
		period := uint64(resources.GetCpuPeriod())
		if period == 0 {
			period = 100000
		}
		quota := q
		if oq := overhead.GetCpuQuota(); oq > 0 {
			quota += oq
		}
		if out.CPU == nil {
			out.CPU = &specs.LinuxCPU{}
		}
		out.CPU.Quota, out.CPU.Period = &quota, &period
	}
	if m := resources.GetMemoryLimitInBytes(); m > 0 {
		limit := m + max(overhead.GetMemoryLimitInBytes(), 0)
		out.Memory = &specs.LinuxMemory{Limit: &limit}
	}
	if out.CPU == nil && out.Memory == nil {
		return nil
	}
	return &out
}
