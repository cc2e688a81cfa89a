package legacy

import (
	"context"
	"sync"

	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var fakeEventHubs sync.Map // *FakeRuntime -> *EventHub

// FakeEvents is the fake's event hub: tests publish container events on it.
func (f *FakeRuntime) FakeEvents() *EventHub {
	v, _ := fakeEventHubs.LoadOrStore(f, NewEventHub())
	return v.(*EventHub)
}

var _ ContainerEventSource = (*FakeRuntime)(nil)

// SubscribeContainerEvents subscribes to FakeEvents.
func (f *FakeRuntime) SubscribeContainerEvents(buffer int) (<-chan ContainerEvent, func()) {
	return f.FakeEvents().Subscribe(buffer)
}

var fakeSandboxResources sync.Map // *FakeRuntime -> *sync.Map

var _ SandboxResourceUpdater = (*FakeRuntime)(nil)

// UpdatePodSandboxResources records the resources of a known sandbox.
func (f *FakeRuntime) UpdatePodSandboxResources(ctx context.Context, id string, overhead, resources *runtime.LinuxContainerResources) error {
	f.Lock()
	f.called("UpdatePodSandboxResources")
	st, err := f.getLocked(id)
	f.Unlock()
	if err != nil {
		return err
	}
	pr := podResources{}
	if overhead != nil {
		pr.overhead = proto.Clone(overhead).(*runtime.LinuxContainerResources)
	}
	if resources != nil {
		pr.resources = proto.Clone(resources).(*runtime.LinuxContainerResources)
	}
	v, _ := fakeSandboxResources.LoadOrStore(f, &sync.Map{})
	v.(*sync.Map).Store(st.ID, pr)
	return nil
}

// PodSandboxResources returns what UpdatePodSandboxResources recorded.
func (f *FakeRuntime) PodSandboxResources(id string) (overhead, resources *runtime.LinuxContainerResources) {
	v, _ := fakeSandboxResources.LoadOrStore(f, &sync.Map{})
	p, ok := v.(*sync.Map).Load(id)
	if !ok {
		return nil, nil
	}
	pr := p.(podResources)
	return pr.overhead, pr.resources
}
