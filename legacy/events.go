package legacy

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"
)

// Event reasons, as the kubelet records them.
const (
	// Container event reasons.
	CreatedContainer        = "Created"
	StartedContainer        = "Started"
	FailedToCreateContainer = "Failed"
	FailedToStartContainer  = "Failed"
	KillingContainer        = "Killing"
	BackOffStartContainer   = "BackOff"
	ExceededGracePeriod     = "ExceededGracePeriod"

	// Image event reasons.
	PullingImage            = "Pulling"
	PulledImage             = "Pulled"
	FailedToPullImage       = "Failed"
	FailedToInspectImage    = "InspectFailed"
	ErrImageNeverPullPolicy = "ErrImageNeverPull"
	BackOffPullImage        = "BackOff"

	// Probe event reasons.
	ContainerUnhealthy = "Unhealthy"

	// Config event reasons.
	FailedValidation = "FailedValidation"

	// Lifecycle hook event reasons.
	FailedPostStartHook = "FailedPostStartHook"
	FailedPreStopHook   = "FailedPreStopHook"

	// Sandbox event reasons.
	SandboxChanged         = "SandboxChanged"
	FailedCreatePodSandBox = "FailedCreatePodSandBox"
	FailedKillPod          = "FailedKillPod"
)

// Event types.
const (
	EventTypeNormal  = "Normal"
	EventTypeWarning = "Warning"
)

// ImplicitContainerPrefix starts the object name of containers the runtime adds by itself (the
// sandbox's infra container); FilterEventRecorder drops their events.
const ImplicitContainerPrefix = "implicitly required container "

// Event is one recorded event.
type Event struct {
	// Object names what the event concerns ("pod/ns/name", "image/registry.k8s.io/pause:3.9").
	Object  string
	Type    string
	Reason  string
	Message string
	Time    time.Time
}

func (e Event) String() string {
	return fmt.Sprintf("%s %s %s %s: %s", e.Time.Format(time.RFC3339), e.Type, e.Object, e.Reason, e.Message)
}

// EventRecorder records events about objects.
type EventRecorder interface {
	Eventf(object, eventType, reason, messageFmt string, args ...any)
}

// DefaultEventCapacity is the number of events a MemoryRecorder keeps by default.
const DefaultEventCapacity = 1024

// MemoryRecorder keeps the newest events in memory (a ring of fixed capacity) and logs each at
// debug level.
type MemoryRecorder struct {
	clock clock.PassiveClock

	mu     sync.Mutex
	ring   []Event
	next   int
	full   bool
	total  uint64
	logger *logrus.Entry
}

// NewMemoryRecorder returns a recorder keeping the newest capacity events (capacity <= 0:
// DefaultEventCapacity). A nil clock is the real one.
func NewMemoryRecorder(capacity int, clk clock.PassiveClock) *MemoryRecorder {
	if capacity <= 0 {
		capacity = DefaultEventCapacity
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &MemoryRecorder{clock: clk, ring: make([]Event, capacity), logger: logrus.WithField("component", "events")}
}

// Eventf records an event.
func (r *MemoryRecorder) Eventf(object, eventType, reason, messageFmt string, args ...any) {
	msg := messageFmt
	if len(args) > 0 {
		msg = fmt.Sprintf(messageFmt, args...)
	}
	ev := Event{Object: object, Type: eventType, Reason: reason, Message: msg, Time: r.clock.Now()}
	r.mu.Lock()
	r.ring[r.next] = ev
	r.next = (r.next + 1) % len(r.ring)
	if r.next == 0 {
		r.full = true
	}
	r.total++
	r.mu.Unlock()
	r.logger.WithFields(logrus.Fields{"object": object, "type": eventType, "reason": reason}).Debug(msg)
}

// Events returns the kept events, oldest first.
func (r *MemoryRecorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]Event(nil), r.ring[:r.next]...)
	}
	out := make([]Event, 0, len(r.ring))
	out = append(out, r.ring[r.next:]...)
	return append(out, r.ring[:r.next]...)
}

// EventsFor returns the kept events about object, oldest first.
func (r *MemoryRecorder) EventsFor(object string) []Event {
	var out []Event
	for _, e := range r.Events() {
		if e.Object == object {
			out = append(out, e)
		}
	}
	return out
}

// Total is the number of events ever recorded, dropped ones included.
func (r *MemoryRecorder) Total() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// FilterEventRecorder returns a recorder that passes every event to recorder except those about
// implicitly required containers (objects containing ImplicitContainerPrefix).
func FilterEventRecorder(recorder EventRecorder) EventRecorder {
	return filteredRecorder{recorder}
}

type filteredRecorder struct{ EventRecorder }

func (f filteredRecorder) Eventf(object, eventType, reason, messageFmt string, args ...any) {
	if strings.Contains(object, ImplicitContainerPrefix) {
		return
	}
	f.EventRecorder.Eventf(object, eventType, reason, messageFmt, args...)
}

// NopRecorder drops every event.
type NopRecorder struct{}

func (NopRecorder) Eventf(string, string, string, string, ...any) {}
