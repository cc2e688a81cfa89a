package kuberuntime

import (
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/legacy"
	dto "github.com/prometheus/client_model/go"
)

func TestEventHubDelivers(t *testing.T) {
	h := legacy.NewEventHub()
	a, cancelA := h.Subscribe(4)
	b, cancelB := h.Subscribe(4)
	defer cancelB()
	for i, typ := range []legacy.ContainerEventType{legacy.ContainerEventCreated, legacy.ContainerEventStarted, legacy.ContainerEventStopped, legacy.ContainerEventDeleted} {
		h.Publish(legacy.ContainerEvent{Type: typ, ContainerID: "c", SandboxID: "s"})
		for name, ch := range map[string]<-chan legacy.ContainerEvent{"a": a, "b": b} {
			select {
			case ev := <-ch:
				if ev.Type != typ || ev.ContainerID != "c" || ev.SandboxID != "s" || ev.At.IsZero() {
					t.Fatalf("%s event %d: %+v", name, i, ev)
				}
			case <-time.After(time.Second):
				t.Fatalf("%s: event %d not delivered", name, i)
			}
		}
	}
	cancelA()
	cancelA() // twice is fine
	if _, ok := <-a; ok {
		t.Fatal("channel of a cancelled subscription not closed")
	}
	if n := h.Subscribers(); n != 1 {
		t.Fatalf("subscribers %d, want 1", n)
	}
	h.Publish(legacy.ContainerEvent{Type: legacy.ContainerEventCreated, ContainerID: "d"})
	if ev := <-b; ev.ContainerID != "d" {
		t.Fatalf("got %+v", ev)
	}
	if h.Dropped() != 0 {
		t.Fatalf("dropped %d", h.Dropped())
	}
}

func TestEventHubSlowConsumerNeverBlocks(t *testing.T) {
	h := legacy.NewEventHub()
	slow, cancelSlow := h.Subscribe(2) // never read
	defer cancelSlow()
	fast, cancelFast := h.Subscribe(1000)
	defer cancelFast()
	before := droppedMetric(t)

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 100; i++ {
			h.Publish(legacy.ContainerEvent{Type: legacy.ContainerEventStarted, ContainerID: "c"})
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a slow subscriber")
	}
	if got := h.Dropped(); got != 98 {
		t.Fatalf("dropped %d, want 98", got)
	}
	if got := droppedMetric(t) - before; got != 98 {
		t.Fatalf("metric counted %v drops, want 98", got)
	}
	if len(slow) != 2 {
		t.Fatalf("slow subscriber holds %d events, want 2", len(slow))
	}
	if len(fast) != 100 {
		t.Fatalf("fast subscriber got %d events, want 100", len(fast))
	}
}

func TestEventHubConcurrent(t *testing.T) {
	h := legacy.NewEventHub()
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				h.Publish(legacy.ContainerEvent{Type: legacy.ContainerEventCreated})
			}
		}()
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				ch, cancel := h.Subscribe(8)
				select {
				case <-ch:
				default:
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if h.Subscribers() != 0 {
		t.Fatalf("subscribers left: %d", h.Subscribers())
	}
}

func TestPodCgroupResources(t *testing.T) {
	if legacy.PodCgroupResources(nil, nil) != nil {
		t.Fatal("nil resources must set nothing")
	}
	res := legacy.PodCgroupResources(
		&runtimeapi.LinuxContainerResources{CpuShares: 10, CpuQuota: 5000, MemoryLimitInBytes: 1 << 20},
		&runtimeapi.LinuxContainerResources{CpuShares: 1024, CpuQuota: 50000, CpuPeriod: 100000, MemoryLimitInBytes: 64 << 20},
	)
	if *res.CPU.Shares != 1034 || *res.CPU.Quota != 55000 || *res.CPU.Period != 100000 || *res.Memory.Limit != 65<<20 {
		t.Fatalf("got cpu %+v memory %+v", res.CPU, res.Memory)
	}
	res = legacy.PodCgroupResources(nil, &runtimeapi.LinuxContainerResources{CpuQuota: 20000})
	if res.CPU.Shares != nil || *res.CPU.Quota != 20000 || *res.CPU.Period != 100000 || res.Memory != nil {
		t.Fatalf("got cpu %+v memory %+v", res.CPU, res.Memory)
	}
	if legacy.PodCgroupResources(&runtimeapi.LinuxContainerResources{CpuShares: 2}, &runtimeapi.LinuxContainerResources{}) != nil {
		t.Fatal("no container limits: nothing to set")
	}
	if sharesToWeight(2) != 1 || sharesToWeight(1024) != 39 || sharesToWeight(262144) != 10000 {
		t.Fatalf("weights %d %d %d", sharesToWeight(2), sharesToWeight(1024), sharesToWeight(262144))
	}
}

func droppedMetric(t *testing.T) float64 {
	t.Helper()
	var m dto.Metric
	if err := legacy.EventsDropped.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
