package kuberuntime

import (
	"context"
	"io"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// GetContainerLogs writes the container's CRI log file by opts (legacy.ReadContainerLogs); a
// follow ends when the container stops running.
func (r *ContainerdRuntime) GetContainerLogs(ctx context.Context, containerID string, opts *legacy.LogOptions, stdout, stderr io.Writer) error {
	status := func(ctx context.Context, id string) (*legacy.ContainerDetails, error) {
		c, err := r.ctrs().store.get(id)
		if err != nil {
			return nil, err
		}
		return r.details(c), nil
	}
	return legacy.ReadContainerLogs(ctx, status, containerID, opts, stdout, stderr)
}

// GarbageCollect runs the model's container GC on the runtime's containers once: the collector the
// daemon runs every gc_interval, with the policy and scope of the call.
func (r *ContainerdRuntime) GarbageCollect(ctx context.Context, gcPolicy legacy.ContainerGCPolicy, allSourcesReady, evictNonDeletedPods bool) error {
	return legacy.GarbageCollect(ctx, r, gcPolicy, allSourcesReady, evictNonDeletedPods)
}

var _ legacy.GCSandboxReadiness = (*ContainerdRuntime)(nil)

// SandboxReady tells whether the sandbox is in the store and ready.
func (r *ContainerdRuntime) SandboxReady(ctx context.Context, sandboxID string) bool {
	sb := r.sandboxes.exact(sandboxID)
	return sb != nil && sb.status().State == legacy.SandboxStateReady
}

// PullImage pulls the image through the runtime's image backend.
func (r *ContainerdRuntime) PullImage(ctx context.Context, image legacy.ImageSpec, auth *runtime.AuthConfig) (string, error) {
	return legacy.BackendImages{Backend: r.images}.PullImage(ctx, image, auth)
}

// IsImagePresent tells whether the runtime's image backend has the image.
func (r *ContainerdRuntime) IsImagePresent(ctx context.Context, image legacy.ImageSpec) (bool, error) {
	return legacy.BackendImages{Backend: r.images}.IsImagePresent(ctx, image)
}

// ListImages returns the images of the runtime's image backend.
func (r *ContainerdRuntime) ListImages(ctx context.Context) ([]legacy.Image, error) {
	return legacy.BackendImages{Backend: r.images}.ListImages(ctx)
}

// RemoveImage removes the image from the runtime's image backend.
func (r *ContainerdRuntime) RemoveImage(ctx context.Context, image legacy.ImageSpec) error {
	return legacy.BackendImages{Backend: r.images}.RemoveImage(ctx, image)
}
