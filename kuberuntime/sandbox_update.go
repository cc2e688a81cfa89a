package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/legacy"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var _ legacy.SandboxResourceUpdater = (*ContainerdRuntime)(nil)

func (r *ContainerdRuntime) podResources() *sync.Map { return &r.podResourceMap }

// UpdatePodSandboxResources implements SandboxResourceUpdater.
func (r *ContainerdRuntime) UpdatePodSandboxResources(ctx context.Context, id string, overhead, resources *runtime.LinuxContainerResources) error {
	sb, err := r.sandboxes.get(id)
	if err != nil {
		return err
	}
	if err := r.nriUpdatePodSandbox(ctx, sb, overhead, resources); err != nil {
		return err
	}
	if parent, ok := cgroupdriver.ParentDir(sb.config.GetLinux().GetCgroupParent()); ok {
		if err := applyPodCgroup(parent, legacy.PodCgroupResources(overhead, resources)); err != nil {
			return fmt.Errorf("update the pod's cgroup %s: %w", parent, err)
		}
	}
	pr := legacy.PodResources{}
	if overhead != nil {
		pr.Overhead = proto.Clone(overhead).(*runtime.LinuxContainerResources)
	}
	if resources != nil {
		pr.Resources = proto.Clone(resources).(*runtime.LinuxContainerResources)
	}
	m := r.podResources()
	m.Store(sb.meta.ID, pr)
	// Forget the records of sandboxes removed since (there is no removal hook here).
	m.Range(func(k, _ any) bool {
		if _, err := r.sandboxes.get(k.(string)); errdefs.IsNotFound(err) {
			m.Delete(k)
		}
		return true
	})
	r.nriPostUpdatePodSandbox(ctx, sb)
	return nil
}

// PodSandboxResources implements SandboxResourceUpdater.
func (r *ContainerdRuntime) PodSandboxResources(id string) (overhead, resources *runtime.LinuxContainerResources) {
	v, ok := r.podResources().Load(id)
	if !ok {
		return nil, nil
	}
	pr := v.(legacy.PodResources)
	return pr.Overhead, pr.Resources
}

// applyPodCgroup writes res into the cgroupfs cgroup at parent (cgroup v1 or v2); a cgroup that
// does not exist is left alone (nothing to limit).
func applyPodCgroup(parent string, res *specs.LinuxResources) error {
	if res == nil {
		return nil
	}
	type write struct{ file, value string }
	var writes []write
	if cgroups.Mode() == cgroups.Unified {
		dir := filepath.Join("/sys/fs/cgroup", parent)
		if c := res.CPU; c != nil {
			if c.Shares != nil {
				writes = append(writes, write{filepath.Join(dir, "cpu.weight"), strconv.FormatUint(sharesToWeight(*c.Shares), 10)})
			}
			if c.Quota != nil && c.Period != nil {
				writes = append(writes, write{filepath.Join(dir, "cpu.max"), fmt.Sprintf("%d %d", *c.Quota, *c.Period)})
			}
		}
		if m := res.Memory; m != nil && m.Limit != nil {
			writes = append(writes, write{filepath.Join(dir, "memory.max"), strconv.FormatInt(*m.Limit, 10)})
		}
	} else {
		cpu, mem := filepath.Join("/sys/fs/cgroup/cpu", parent), filepath.Join("/sys/fs/cgroup/memory", parent)
		if c := res.CPU; c != nil {
			if c.Shares != nil {
				writes = append(writes, write{filepath.Join(cpu, "cpu.shares"), strconv.FormatUint(*c.Shares, 10)})
			}
			if c.Quota != nil && c.Period != nil {
				writes = append(writes,
					write{filepath.Join(cpu, "cpu.cfs_period_us"), strconv.FormatUint(*c.Period, 10)},
					write{filepath.Join(cpu, "cpu.cfs_quota_us"), strconv.FormatInt(*c.Quota, 10)})
			}
		}
		if m := res.Memory; m != nil && m.Limit != nil {
			writes = append(writes, write{filepath.Join(mem, "memory.limit_in_bytes"), strconv.FormatInt(*m.Limit, 10)})
		}
	}
	var errs []error
	for _, w := range writes {
		if _, err := os.Stat(filepath.Dir(w.file)); errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err := os.WriteFile(w.file, []byte(w.value), 0); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// sharesToWeight converts cgroup v1 CPU shares to a cgroup v2 weight (as runc does).
func sharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((max(shares, 2)-2)*9999)/262142
}
