package legacytest

import (
	"context"

	"github.com/cri-shim/cri-shim/legacy"
)

var _ legacy.PodSyncRuntime = (*FakeRuntime)(nil)

// SyncPod syncs pod on the fake (PodSyncer.SyncPod without an image puller: images are always
// present) and records the call.
func (f *FakeRuntime) SyncPod(ctx context.Context, pod *legacy.PodSpec, status *legacy.PodStatus, backOff *legacy.Backoff) legacy.PodSyncResult {
	f.record("SyncPod")
	return legacy.NewPodSyncer(f, nil, nil, backOff).SyncPod(ctx, pod, status)
}
