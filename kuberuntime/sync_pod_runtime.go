package kuberuntime

import (
	"context"

	"github.com/cri-shim/cri-shim/legacy"
)

var _ legacy.PodSyncRuntime = (*ContainerdRuntime)(nil)

// SyncPod syncs pod on r (PodSyncer.SyncPod) with the backoff given (nil: a new crash-loop
// backoff), pulling through r's image backend; no events are recorded (use a PodSyncer with a
// recorder for them).
func (r *ContainerdRuntime) SyncPod(ctx context.Context, pod *legacy.PodSpec, status *legacy.PodStatus, backOff *legacy.Backoff) legacy.PodSyncResult {
	r.pullerOnce.Do(func() { r.puller = legacy.NewImagePuller(nil, r.images, nil) })
	return legacy.NewPodSyncer(r, r.puller, nil, backOff).SyncPod(ctx, pod, status)
}
