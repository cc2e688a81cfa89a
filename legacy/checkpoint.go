package legacy

import (
	"context"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Checkpoint/restore of containers with CRIU, through containerd's task Checkpoint (runc
// checkpoint). A container checkpoint is an uncompressed tar archive:
//
//	checkpoint/   the CRIU images of the container's processes
//	config.dump   checkpointConfig (JSON): the container, its pod, its image, the CRI config
//	spec.dump     the container's OCI runtime spec (JSON)
//	dump.log      CRIU's log of the dump
//	rootfs-diff.tar  the container's file-system changes (an OCI layer tar)
//
// A pod checkpoint (CheckpointPod) is a directory with pod.dump (the sandbox config and the
// containers) and one such tree per container, under its name. Restore: checkpoint_restore.go.
//
// Everything starts with the probe of the host's CRIU (criu_probe.go, once per daemon): when it
// does not work, every checkpoint and restore request answers FailedPrecondition with the reason.

// Checkpointer is the checkpoint/restore part of a runtime (ContainerdRuntime implements it).
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
