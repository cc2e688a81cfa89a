package kuberuntime

import (
	"context"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
)

var _ legacy.GCRuntime = (*ContainerdRuntime)(nil)

// GCContainers lists the containers of the store for the garbage collector. Containers that
// containerd holds but the store does not are left out: at start-up every container with
// metadata enters the store (the others are removed), so those are being created right now.
func (r *ContainerdRuntime) GCContainers(ctx context.Context) ([]legacy.GCContainer, error) {
	cs := r.ctrs().store.list()
	out := make([]legacy.GCContainer, 0, len(cs))
	for _, c := range cs {
		state := c.snapshot().state
		gc := legacy.GCContainer{
			ID: c.meta.ID, Name: c.config.GetMetadata().GetName(), SandboxID: c.meta.SandboxID,
			CreatedAt: c.meta.CreatedAt, Running: state == legacy.ContainerStateRunning,
		}
		if sb, err := r.sandboxes.get(c.meta.SandboxID); err == nil {
			gc.PodUID = legacy.UID(sb.config.GetMetadata().GetUid())
		} else {
			// The pod is gone with its sandbox; the sandbox stands for it.
			gc.PodUID = legacy.UID("sandbox:" + c.meta.SandboxID)
		}
		out = append(out, gc)
	}
	return out, nil
}

// SandboxExists tells whether the sandbox is in the store.
func (r *ContainerdRuntime) SandboxExists(ctx context.Context, sandboxID string) bool {
	sb, err := r.sandboxes.get(sandboxID)
	if errdefs.IsNotFound(err) {
		return false
	}
	// Any other error (an ambiguous prefix cannot happen with a full ID): keep the containers.
	return err != nil || sb.meta.ID == sandboxID
}

// RemoveGCContainer removes the container as RemoveContainer does.
func (r *ContainerdRuntime) RemoveGCContainer(ctx context.Context, c legacy.GCContainer) error {
	return r.RemoveContainer(ctx, c.ID)
}
