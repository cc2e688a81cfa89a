package legacy

import (
	"context"
)

// PodSyncRuntime is a Runtime with the old kubelet Runtime's SyncPod: it brings a pod to its
// spec given the pod's status and the crash-loop backoff to use.
type PodSyncRuntime interface {
	SyncPod(ctx context.Context, pod *PodSpec, status *PodStatus, backOff *Backoff) PodSyncResult
}

var _ PodSyncRuntime = (*ContainerdRuntime)(nil)

// SyncPod syncs pod on r (PodSyncer.SyncPod) with the backoff given (nil: a new crash-loop
// backoff), pulling through r's image backend; no events are recorded (use a PodSyncer with a
// recorder for them).
func (r *ContainerdRuntime) SyncPod(ctx context.Context, pod *PodSpec, status *PodStatus, backOff *Backoff) PodSyncResult {
	r.pullerOnce.Do(func() { r.puller = NewImagePuller(nil, r.images, nil) })
	return NewPodSyncer(r, r.puller, nil, backOff).SyncPod(ctx, pod, status)
}

var _ PodSyncRuntime = (*FakeRuntime)(nil)

// SyncPod syncs pod on the fake (PodSyncer.SyncPod without an image puller: images are always
// present) and records the call.
func (f *FakeRuntime) SyncPod(ctx context.Context, pod *PodSpec, status *PodStatus, backOff *Backoff) PodSyncResult {
	f.record("SyncPod")
	return NewPodSyncer(f, nil, nil, backOff).SyncPod(ctx, pod, status)
}
