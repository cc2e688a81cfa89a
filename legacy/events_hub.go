package legacy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
)

// ContainerEventType is what happened to a container.
type ContainerEventType int

// The container events CRI's GetContainerEvents streams.
const (
	ContainerEventCreated ContainerEventType = iota
	ContainerEventStarted
	ContainerEventStopped
	ContainerEventDeleted
)

func (t ContainerEventType) String() string {
	switch t {
	case ContainerEventCreated:
		return "created"
	case ContainerEventStarted:
		return "started"
	case ContainerEventStopped:
		return "stopped"
	case ContainerEventDeleted:
		return "deleted"
	}
	return "unknown"
}

// ContainerEvent is one change of a container's lifecycle, or of a pod sandbox's own: as
// containerd's CRI does, a sandbox's events (created, started, stopped, deleted) have the sandbox's
// ID as ContainerID, and the kubelet's evented PLEG learns of sandbox changes from them.
type ContainerEvent struct {
	Type        ContainerEventType
	ContainerID string
	SandboxID   string
	// At is when the change happened.
	At time.Time
	// SandboxStatus is the sandbox's status when the event was published; nil when it was not
	// known then (a subscriber then reads it when it needs it). It is taken at once because the
	// last events of a pod (its containers' and its own deletion) come when the sandbox is about to
	// leave the store, and a client needs its metadata (the pod's UID) to place them.
	SandboxStatus *SandboxStatus
}

// IsSandbox tells whether the event is about the pod sandbox itself.
func (e ContainerEvent) IsSandbox() bool { return e.ContainerID != "" && e.ContainerID == e.SandboxID }

// DefaultEventBuffer is the number of events a subscriber may lag behind before events are
// dropped for it.
const DefaultEventBuffer = 1024

// EventsDropped counts the container events dropped because a subscriber did not keep up.
var EventsDropped = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "cri_shim",
	Name:      "container_events_dropped_total",
	Help:      "Container events dropped because a GetContainerEvents subscriber was too slow.",
})

// Collectors are the Prometheus collectors of this package, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{EventsDropped, ContainersGarbageCollected, containerdRequestDuration}
}

// EventHub fans container events out to subscribers. Publish never blocks: each subscriber has
// a bounded channel, and an event that does not fit is dropped for that subscriber (counted
// and logged).
type EventHub struct {
	mu      sync.RWMutex
	subs    map[*eventSub]struct{}
	dropped atomic.Uint64
}

type eventSub struct {
	ch      chan ContainerEvent
	dropped atomic.Uint64
}

// NewEventHub returns a hub without subscribers.
func NewEventHub() *EventHub { return &EventHub{subs: map[*eventSub]struct{}{}} }

// Subscribe returns a channel of the events published from now on, holding up to buffer
// (<= 0: DefaultEventBuffer) undelivered ones, and the function that ends the subscription
// (which closes the channel; it may be called more than once).
func (h *EventHub) Subscribe(buffer int) (<-chan ContainerEvent, func()) {
	if buffer <= 0 {
		buffer = DefaultEventBuffer
	}
	s := &eventSub{ch: make(chan ContainerEvent, buffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, s)
			close(s.ch)
			h.mu.Unlock()
		})
	}
}

// Publish hands ev to every subscriber without waiting for any.
func (h *EventHub) Publish(ev ContainerEvent) {
	if ev.At.IsZero() {
		ev.At = time.Now()
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	for s := range h.subs {
		select {
		case s.ch <- ev:
		default:
			n := s.dropped.Add(1)
			h.dropped.Add(1)
			EventsDropped.Inc()
			// Log the first drop of a subscriber and then every 100th, not every one.
			if n == 1 || n%100 == 0 {
				logrus.WithFields(logrus.Fields{
					"container": ev.ContainerID, "event": ev.Type.String(), "dropped": n,
				}).Warn("container event subscriber too slow; dropping events")
			}
		}
	}
}

// Dropped is the number of events dropped so far, over all subscribers.
func (h *EventHub) Dropped() uint64 { return h.dropped.Load() }

// Subscribers is the number of current subscribers.
func (h *EventHub) Subscribers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}

// ContainerEventSource is a runtime that publishes its containers' lifecycle events.
type ContainerEventSource interface {
	// SubscribeContainerEvents is EventHub.Subscribe on the runtime's hub.
	SubscribeContainerEvents(buffer int) (<-chan ContainerEvent, func())
}

var _ ContainerEventSource = (*ContainerdRuntime)(nil)

// events returns the event hub of r.
func (r *ContainerdRuntime) events() *EventHub {
	r.eventsOnce.Do(func() { r.eventHub = NewEventHub() })
	return r.eventHub
}

// SubscribeContainerEvents subscribes to the lifecycle events of the runtime's containers.
func (r *ContainerdRuntime) SubscribeContainerEvents(buffer int) (<-chan ContainerEvent, func()) {
	return r.events().Subscribe(buffer)
}

// emitContainerEvent publishes a lifecycle event of c, with its sandbox's status now; it never
// blocks.
func (r *ContainerdRuntime) emitContainerEvent(typ ContainerEventType, c *podContainer) {
	var st *SandboxStatus
	if sb := r.sandboxes.exact(c.meta.SandboxID); sb != nil {
		st = sb.status()
	}
	r.events().Publish(ContainerEvent{Type: typ, ContainerID: c.meta.ID, SandboxID: c.meta.SandboxID, At: time.Now(), SandboxStatus: st})
	if typ == ContainerEventStopped {
		r.nriContainerExited(c)
	}
}

// emitSandboxEvent publishes a lifecycle event of the sandbox itself, as containerd's CRI does
// (ContainerID = the sandbox's ID), with its status now; it never blocks. Created and started
// come once the sandbox is ready and in the store, stopped once its pause process is gone (stopped,
// or dead on its own), deleted once it has left the store.
func (r *ContainerdRuntime) emitSandboxEvent(typ ContainerEventType, sb *podSandbox) {
	r.events().Publish(ContainerEvent{Type: typ, ContainerID: sb.meta.ID, SandboxID: sb.meta.ID, At: time.Now(), SandboxStatus: sb.status()})
}
