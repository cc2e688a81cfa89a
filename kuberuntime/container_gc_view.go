package kuberuntime

import (
	"context"
	"errors"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
)

// ContainerdGCView is a read-only GCRuntime over containerd's records (the labels cri-shim puts on
// its containers), for planning a collection without a runtime: `cri-shim gc --dry-run` uses it
// next to a running daemon, whose stores it must not rebuild or clean. It cannot remove anything.
type ContainerdGCView struct {
	client    *containerd.Client
	namespace string
	sandboxes map[string]bool
}

// NewContainerdGCView reads the sandboxes of namespace; GCContainers reads the containers.
func NewContainerdGCView(ctx context.Context, client *containerd.Client, namespace string) (*ContainerdGCView, error) {
	v := &ContainerdGCView{client: client, namespace: namespace, sandboxes: map[string]bool{}}
	ctx = namespaces.WithNamespace(ctx, namespace)
	sbs, err := client.Containers(ctx, fmt.Sprintf(`labels.%q==%q`, LabelKind, KindSandbox))
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	for _, c := range sbs {
		v.sandboxes[c.ID()] = true
	}
	return v, nil
}

// GCContainers lists the pod containers containerd holds, with their task's state.
func (v *ContainerdGCView) GCContainers(ctx context.Context) ([]legacy.GCContainer, error) {
	ctx = namespaces.WithNamespace(ctx, v.namespace)
	cs, err := v.client.Containers(ctx, fmt.Sprintf(`labels.%q==%q`, LabelKind, KindContainer))
	if err != nil {
		return nil, err
	}
	out := make([]legacy.GCContainer, 0, len(cs))
	for _, c := range cs {
		info, err := c.Info(ctx, containerd.WithoutRefreshedMetadata)
		if errdefs.IsNotFound(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", c.ID(), err)
		}
		gc := legacy.GCContainer{
			ID: c.ID(), Name: info.Labels[LabelContainerName], PodUID: legacy.UID(info.Labels[LabelPodUID]),
			SandboxID: info.Labels[LabelSandboxID], CreatedAt: info.CreatedAt,
		}
		if task, err := c.Task(ctx, nil); err == nil {
			if st, err := task.Status(ctx); err == nil {
				gc.Running = st.Status != containerd.Stopped
			} else {
				gc.Running = true // unknown: keep it
			}
		}
		out = append(out, gc)
	}
	return out, nil
}

// SandboxExists tells whether containerd holds the sandbox's pause container.
func (v *ContainerdGCView) SandboxExists(ctx context.Context, sandboxID string) bool {
	return v.sandboxes[sandboxID]
}

// ErrReadOnlyGCView is what RemoveGCContainer of a ContainerdGCView returns.
var ErrReadOnlyGCView = errors.New("read-only GC view: cannot remove containers")

// RemoveGCContainer refuses: the view only plans.
func (v *ContainerdGCView) RemoveGCContainer(ctx context.Context, c legacy.GCContainer) error {
	return ErrReadOnlyGCView
}
