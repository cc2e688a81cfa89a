package legacytest

import (
	"context"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FakeEvents is the fake's event hub: tests publish container events on it.
func (f *FakeRuntime) FakeEvents() *legacy.EventHub {
	f.eventsOnce.Do(func() { f.eventHub = legacy.NewEventHub() })
	return f.eventHub
}

var _ legacy.ContainerEventSource = (*FakeRuntime)(nil)

// SubscribeContainerEvents subscribes to FakeEvents.
func (f *FakeRuntime) SubscribeContainerEvents(buffer int) (<-chan legacy.ContainerEvent, func()) {
	return f.FakeEvents().Subscribe(buffer)
}

var _ legacy.SandboxResourceUpdater = (*FakeRuntime)(nil)

// UpdatePodSandboxResources records the resources of a known sandbox.
func (f *FakeRuntime) UpdatePodSandboxResources(ctx context.Context, id string, overhead, resources *runtime.LinuxContainerResources) error {
	f.Lock()
	f.called("UpdatePodSandboxResources")
	st, err := f.getLocked(id)
	f.Unlock()
	if err != nil {
		return err
	}
	pr := legacy.PodResources{}
	if overhead != nil {
		pr.Overhead = proto.Clone(overhead).(*runtime.LinuxContainerResources)
	}
	if resources != nil {
		pr.Resources = proto.Clone(resources).(*runtime.LinuxContainerResources)
	}
	f.resources.Store(st.ID, pr)
	return nil
}

// PodSandboxResources returns what UpdatePodSandboxResources recorded.
func (f *FakeRuntime) PodSandboxResources(id string) (overhead, resources *runtime.LinuxContainerResources) {
	p, ok := f.resources.Load(id)
	if !ok {
		return nil, nil
	}
	pr := p.(legacy.PodResources)
	return pr.Overhead, pr.Resources
}
