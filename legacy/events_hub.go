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
