package legacy

import (
	"context"
)

// PodSyncRuntime is a Runtime with the old kubelet Runtime's SyncPod: it brings a pod to its
// spec given the pod's status and the crash-loop backoff to use.
type PodSyncRuntime interface {
	SyncPod(ctx context.Context, pod *PodSpec, status *PodStatus, backOff *Backoff) PodSyncResult
}
