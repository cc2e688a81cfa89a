package kuberuntime

import (
	"sync/atomic"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
)

// PodStatusRelistPeriod is how often the runtime's pod status cache is brought up to date as a
// whole (UpdateTime): new pods are read, gone ones dropped, and everything is read again after
// events were lost.
const PodStatusRelistPeriod = time.Second

// podKey names a pod for GetPodStatus.
type podKey struct {
	uid             legacy.UID
	name, namespace string
}

// podChange is a change of a sandbox's state (ready, stopped, removed).
type podChange struct {
	sandboxID string
	pod       podKey
	at        time.Time
}

// podStatusFeeder keeps the runtime's pod status Cache fed: the container events of the hub and
// the sandbox changes Set the pod's status with the event's time, and a periodic relist moves the
// cache's global timestamp.
type podStatusFeeder struct {
	cache legacy.Cache
	// sandboxes carries the sandbox changes; a change that does not fit sets resync.
	sandboxes chan podChange
	resync    atomic.Bool
	period    time.Duration
}

func newPodStatusFeeder() *podStatusFeeder {
	return &podStatusFeeder{cache: legacy.NewCache(), sandboxes: make(chan podChange, legacy.DefaultEventBuffer), period: PodStatusRelistPeriod}
}

// PodStatusCache is the status cache of the runtime's pods, kept up to date by the containers'
// events and the sandboxes' state changes (Set with the time of the change) and relisted every
// PodStatusRelistPeriod (UpdateTime), so that GetNewerThan(uid, t) returns once the pod changed
// after t or once every pod was read after t.
func (r *ContainerdRuntime) PodStatusCache() legacy.Cache {
	if r.podStatus == nil {
		return nil
	}
	return r.podStatus.cache
}

// podSandboxChanged tells the pod status cache that sb changed state; it never blocks.
func (r *ContainerdRuntime) podSandboxChanged(sb *podSandbox, at time.Time) {
	f := r.podStatus
	if f == nil {
		return
	}
	md := sb.config.GetMetadata()
	select {
	case f.sandboxes <- podChange{sandboxID: sb.meta.ID, pod: podKey{legacy.UID(md.GetUid()), md.GetName(), md.GetNamespace()}, at: at}:
	default:
		f.resync.Store(true)
	}
}

// startPodStatusCache fills the pod status cache and keeps it fed until the runtime closes.
func (r *ContainerdRuntime) startPodStatusCache() {
	f := r.podStatus
	events, unsubscribe := r.SubscribeContainerEvents(0)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer unsubscribe()
		r.feedPodStatus(f, events)
	}()
}

// podFeedState is the feeder goroutine's own bookkeeping.
type podFeedState struct {
	// pods maps a sandbox to its pod, also after the sandbox is gone (for the last events).
	pods map[string]podKey
	// cached are the pods that have an entry.
	cached map[legacy.UID]podKey
}

func (r *ContainerdRuntime) feedPodStatus(f *podStatusFeeder, events <-chan legacy.ContainerEvent) {
	s := &podFeedState{pods: map[string]podKey{}, cached: map[legacy.UID]podKey{}}
	t := time.NewTicker(f.period)
	defer t.Stop()
	dropped := r.events().Dropped()
	r.relistPodStatus(f, s, events, true)
	for {
		select {
		case <-r.bg.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			r.podContainerEvent(f, s, ev)
		case ch := <-f.sandboxes:
			r.podSandboxEvent(f, s, ch)
		case <-t.C:
			// Events dropped for any subscriber (perhaps this one), or a sandbox change that did
			// not fit: read every pod again.
			d := r.events().Dropped()
			full := f.resync.Swap(false) || d != dropped
			dropped = d
			r.relistPodStatus(f, s, events, full)
		}
	}
}

func (r *ContainerdRuntime) podContainerEvent(f *podStatusFeeder, s *podFeedState, ev legacy.ContainerEvent) {
	if ev.IsSandbox() {
		return // podSandboxChanged tells the feeder of the sandbox's own changes
	}
	pod, ok := s.pods[ev.SandboxID]
	if !ok {
		sb, err := r.sandboxes.get(ev.SandboxID)
		if err != nil || sb.meta.ID != ev.SandboxID {
			return // a sandbox never seen: the next relist reads its pod
		}
		md := sb.config.GetMetadata()
		pod = podKey{legacy.UID(md.GetUid()), md.GetName(), md.GetNamespace()}
		s.pods[ev.SandboxID] = pod
	}
	r.setPodStatus(f, s, pod, ev.At)
}

func (r *ContainerdRuntime) podSandboxEvent(f *podStatusFeeder, s *podFeedState, ch podChange) {
	s.pods[ch.sandboxID] = ch.pod
	r.setPodStatus(f, s, ch.pod, ch.at)
}

// setPodStatus reads the pod's status from the in-memory stores and caches it as of at.
func (r *ContainerdRuntime) setPodStatus(f *podStatusFeeder, s *podFeedState, pod podKey, at time.Time) {
	if at.IsZero() {
		at = time.Now()
	}
	status, err := r.GetPodStatus(r.bg, pod.uid, pod.name, pod.namespace)
	f.cache.Set(pod.uid, status, err, at)
	s.cached[pod.uid] = pod
}

// relistPodStatus handles the events already queued, caches the pods not cached yet (all of them
// when full), drops the pods that are gone, and moves the global timestamp to the time the relist
// started: every entry is then at least that fresh.
func (r *ContainerdRuntime) relistPodStatus(f *podStatusFeeder, s *podFeedState, events <-chan legacy.ContainerEvent, full bool) {
	now := time.Now()
	for drained := false; !drained; {
		select {
		case ev, ok := <-events:
			if ok {
				r.podContainerEvent(f, s, ev)
			} else {
				drained = true
			}
		case ch := <-f.sandboxes:
			r.podSandboxEvent(f, s, ch)
		default:
			drained = true
		}
	}
	live := map[legacy.UID]bool{}
	sandboxes := map[string]bool{}
	for _, sb := range r.sandboxes.list() {
		md := sb.config.GetMetadata()
		pod := podKey{legacy.UID(md.GetUid()), md.GetName(), md.GetNamespace()}
		sandboxes[sb.meta.ID] = true
		s.pods[sb.meta.ID] = pod
		if live[pod.uid] {
			continue
		}
		live[pod.uid] = true
		if _, ok := s.cached[pod.uid]; full || !ok {
			r.setPodStatus(f, s, pod, now)
		}
	}
	for uid := range s.cached {
		if !live[uid] {
			f.cache.Delete(uid)
			delete(s.cached, uid)
		}
	}
	for id := range s.pods {
		if !sandboxes[id] {
			delete(s.pods, id)
		}
	}
	f.cache.UpdateTime(now)
}
