package kuberuntime

import (
	"time"

	"github.com/cri-shim/cri-shim/legacy"
)

var _ legacy.ContainerEventSource = (*ContainerdRuntime)(nil)

// events returns the event hub of r.
func (r *ContainerdRuntime) events() *legacy.EventHub {
	r.eventsOnce.Do(func() { r.eventHub = legacy.NewEventHub() })
	return r.eventHub
}

// SubscribeContainerEvents subscribes to the lifecycle events of the runtime's containers.
func (r *ContainerdRuntime) SubscribeContainerEvents(buffer int) (<-chan legacy.ContainerEvent, func()) {
	return r.events().Subscribe(buffer)
}

// emitContainerEvent publishes a lifecycle event of c, with its sandbox's status now; it never
// blocks.
func (r *ContainerdRuntime) emitContainerEvent(typ legacy.ContainerEventType, c *podContainer) {
	var st *legacy.SandboxStatus
	if sb := r.sandboxes.exact(c.meta.SandboxID); sb != nil {
		st = sb.status()
	}
	r.events().Publish(legacy.ContainerEvent{Type: typ, ContainerID: c.meta.ID, SandboxID: c.meta.SandboxID, At: time.Now(), SandboxStatus: st})
	if typ == legacy.ContainerEventStopped {
		r.nriContainerExited(c)
	}
}

// emitSandboxEvent publishes a lifecycle event of the sandbox itself, as containerd's CRI does
// (ContainerID = the sandbox's ID), with its status now; it never blocks. Created and started
// come once the sandbox is ready and in the store, stopped once its pause process is gone (stopped,
// or dead on its own), deleted once it has left the store.
func (r *ContainerdRuntime) emitSandboxEvent(typ legacy.ContainerEventType, sb *podSandbox) {
	r.events().Publish(legacy.ContainerEvent{Type: typ, ContainerID: sb.meta.ID, SandboxID: sb.meta.ID, At: time.Now(), SandboxStatus: sb.status()})
}
