package legacy

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Checkpointer is the checkpoint/restore part of a runtime (kuberuntime.ContainerdRuntime implements
// it with CRIU).
type Checkpointer interface {
	// CheckpointContainer writes a checkpoint archive of the running container id to location
	// (an absolute path; its directory must exist); the container keeps running. timeout 0 is
	// the default (DefaultCheckpointTimeout).
	CheckpointContainer(ctx context.Context, id, location string, timeout time.Duration) error
	// CheckpointPod checkpoints the given running containers of sandboxID, all paused together,
	// into the empty directory outputPath.
	CheckpointPod(ctx context.Context, sandboxID, outputPath string, containerIDs []string, opts map[string]string) error
	// RestorePod restores a pod checkpoint into a new sandbox; it returns the sandbox ID and the
	// ID of each container by name, every one created and not started.
	RestorePod(ctx context.Context, req RestorePodRequest) (string, map[string]string, error)
}

// RestorePodRequest is CRI's RestorePodRequest.
type RestorePodRequest struct {
	CheckpointPath   string
	Config           *runtime.PodSandboxConfig
	RuntimeHandler   string
	Options          map[string]string
	ContainerConfigs []*runtime.ContainerConfig
}
