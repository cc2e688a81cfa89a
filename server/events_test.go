package server

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestGetContainerEvents(t *testing.T) {
	c, fake := sandboxClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pod, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("p")})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: containerConfig("c"), SandboxConfig: podConfig("p")})
	if err != nil {
		t.Fatal(err)
	}
	stream, err := c.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	hub := fake.FakeEvents()
	for hub.Subscribers() == 0 {
		if ctx.Err() != nil {
			t.Fatal("no subscriber")
		}
		time.Sleep(5 * time.Millisecond)
	}
	at := time.Unix(100, 5)
	types := []legacy.ContainerEventType{legacy.ContainerEventCreated, legacy.ContainerEventStarted, legacy.ContainerEventStopped, legacy.ContainerEventDeleted}
	want := []runtime.ContainerEventType{
		runtime.ContainerEventType_CONTAINER_CREATED_EVENT, runtime.ContainerEventType_CONTAINER_STARTED_EVENT,
		runtime.ContainerEventType_CONTAINER_STOPPED_EVENT, runtime.ContainerEventType_CONTAINER_DELETED_EVENT,
	}
	for _, typ := range types {
		hub.Publish(legacy.ContainerEvent{Type: typ, ContainerID: cr.ContainerId, SandboxID: pod.PodSandboxId, At: at})
	}
	for i := range types {
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if ev.ContainerEventType != want[i] || ev.ContainerId != cr.ContainerId || ev.CreatedAt != at.UnixNano() {
			t.Fatalf("event %d: %v", i, ev)
		}
		ps := ev.GetPodSandboxStatus()
		if ps.GetId() != pod.PodSandboxId || ps.GetState() != runtime.PodSandboxState_SANDBOX_READY || ps.GetMetadata().GetName() != "p" {
			t.Fatalf("event %d: pod status %v", i, ps)
		}
		if len(ev.ContainersStatuses) != 1 || ev.ContainersStatuses[0].GetId() != cr.ContainerId {
			t.Fatalf("event %d: container statuses %v", i, ev.ContainersStatuses)
		}
	}

	// A sandbox that is gone: its ID, not ready, no containers.
	hub.Publish(legacy.ContainerEvent{Type: legacy.ContainerEventDeleted, ContainerID: "gone", SandboxID: "nosuchpod"})
	ev, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ev.GetPodSandboxStatus().GetId() != "nosuchpod" || ev.GetPodSandboxStatus().GetState() != runtime.PodSandboxState_SANDBOX_NOTREADY || len(ev.ContainersStatuses) != 0 {
		t.Fatalf("event of a gone pod: %v", ev)
	}

	// The subscription ends with the client's stream.
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for hub.Subscribers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("subscription outlived the stream")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestGetContainerEventsSandbox: the sandbox's own events (ContainerID = the sandbox's ID) carry
// its status with its metadata; a status taken when the event was published is sent as it is, so
// that the sandbox's deletion still names its pod once the sandbox has left the store. The stream's
// header comes once the subscription is in place: a client that waits for it misses no event.
func TestGetContainerEventsSandbox(t *testing.T) {
	c, fake := sandboxClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pod, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("p")})
	if err != nil {
		t.Fatal(err)
	}
	id := pod.PodSandboxId
	stream, err := c.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatalf("header: %v", err)
	}
	hub := fake.FakeEvents()
	if n := hub.Subscribers(); n != 1 {
		t.Fatalf("%d subscribers once the header came, want 1", n)
	}

	// Read when sent (no status in the event): the sandbox as it is.
	hub.Publish(legacy.ContainerEvent{Type: legacy.ContainerEventStarted, ContainerID: id, SandboxID: id})
	ev, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if ev.ContainerId != id || ev.ContainerEventType != runtime.ContainerEventType_CONTAINER_STARTED_EVENT ||
		ev.GetPodSandboxStatus().GetId() != id || ev.GetPodSandboxStatus().GetMetadata().GetUid() != "uid-p" ||
		ev.GetPodSandboxStatus().GetState() != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("sandbox started: %v", ev)
	}

	// The status taken at publication, the sandbox gone since.
	st, err := fake.PodSandboxStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	st.State = legacy.SandboxStateNotReady
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		t.Fatal(err)
	}
	hub.Publish(legacy.ContainerEvent{Type: legacy.ContainerEventDeleted, ContainerID: id, SandboxID: id, SandboxStatus: st})
	ev, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	ps := ev.GetPodSandboxStatus()
	if ev.ContainerId != id || ev.ContainerEventType != runtime.ContainerEventType_CONTAINER_DELETED_EVENT ||
		ps.GetId() != id || ps.GetMetadata().GetUid() != "uid-p" || ps.GetMetadata().GetName() != "p" ||
		ps.GetState() != runtime.PodSandboxState_SANDBOX_NOTREADY || len(ev.ContainersStatuses) != 0 {
		t.Fatalf("sandbox deleted: %v", ev)
	}
}

func collect[T any](t *testing.T, recv func() (T, error)) []T {
	t.Helper()
	var out []T
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

func TestStreamListsMatchUnary(t *testing.T) {
	c, _ := sandboxClient(t)
	ctx := context.Background()
	var pods []string
	for _, name := range []string{"a", "b", "c"} {
		pod, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig(name)})
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, pod.PodSandboxId)
		if _, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: containerConfig("c" + name), SandboxConfig: podConfig(name)}); err != nil {
			t.Fatal(err)
		}
	}

	// Sandboxes, all and filtered.
	for _, f := range []*runtime.PodSandboxFilter{nil, {Id: pods[1]}, {LabelSelector: map[string]string{"app": "c"}}, {Id: "none"}} {
		list, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.StreamPodSandboxes(ctx, &runtime.StreamPodSandboxesRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var got []*runtime.PodSandbox
		for _, m := range collect(t, st.Recv) {
			if len(m.PodSandboxes) == 0 {
				t.Fatal("empty message")
			}
			got = append(got, m.PodSandboxes...)
		}
		if !proto.Equal(&runtime.ListPodSandboxResponse{Items: got}, list) {
			t.Fatalf("filter %v: stream %v, list %v", f, got, list.Items)
		}
	}

	// Containers.
	for _, f := range []*runtime.ContainerFilter{nil, {PodSandboxId: pods[0]}} {
		list, err := c.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		st, err := c.StreamContainers(ctx, &runtime.StreamContainersRequest{Filter: f})
		if err != nil {
			t.Fatal(err)
		}
		var got []*runtime.Container
		for _, m := range collect(t, st.Recv) {
			got = append(got, m.Containers...)
		}
		if !proto.Equal(&runtime.ListContainersResponse{Containers: got}, list) {
			t.Fatalf("filter %v: stream %v, list %v", f, got, list.Containers)
		}
	}

	// Stats and metrics: the same items as the unary RPCs (timestamps aside, counted by ID).
	cs, err := c.StreamContainerStats(ctx, &runtime.StreamContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for _, m := range collect(t, cs.Recv) {
		n += len(m.ContainerStats)
	}
	lcs, err := c.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(lcs.Stats) {
		t.Fatalf("stream container stats %d, list %d", n, len(lcs.Stats))
	}
	ps, err := c.StreamPodSandboxStats(ctx, &runtime.StreamPodSandboxStatsRequest{Filter: &runtime.PodSandboxStatsFilter{Id: pods[2]}})
	if err != nil {
		t.Fatal(err)
	}
	got := collect(t, ps.Recv)
	if len(got) != 1 || len(got[0].PodSandboxStats) != 1 || got[0].PodSandboxStats[0].GetAttributes().GetId() != pods[2] {
		t.Fatalf("stream pod stats %v", got)
	}
	lm, lerr := c.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{})
	pm, err := c.StreamPodSandboxMetrics(ctx, &runtime.StreamPodSandboxMetricsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	n = 0
	for {
		m, err := pm.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if status.Code(err) != status.Code(lerr) {
				t.Fatalf("stream metrics: %v, list: %v", err, lerr)
			}
			break
		}
		n += len(m.PodSandboxMetrics)
	}
	if lerr == nil && n != len(lm.PodMetrics) {
		t.Fatalf("stream pod metrics %d, list %d", n, len(lm.PodMetrics))
	}
}

func TestSendChunks(t *testing.T) {
	items := make([]*runtime.PodSandbox, 1201)
	for i := range items {
		items[i] = &runtime.PodSandbox{Id: strings.Repeat("x", 10)}
	}
	var sizes []int
	if err := sendChunks(items, func(c []*runtime.PodSandbox) error { sizes = append(sizes, len(c)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 3 || sizes[0] != streamChunkItems || sizes[1] != streamChunkItems || sizes[2] != 201 {
		t.Fatalf("chunks %v", sizes)
	}
	// Big items: split by bytes, at least one item per message even when it alone is too big.
	big := []*runtime.PodSandbox{
		{Id: strings.Repeat("a", streamChunkBytes/2)}, {Id: strings.Repeat("b", streamChunkBytes/2)},
		{Id: strings.Repeat("c", streamChunkBytes+1)}, {Id: "d"},
	}
	sizes = nil
	if err := sendChunks(big, func(c []*runtime.PodSandbox) error { sizes = append(sizes, len(c)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(sizes) != 4 || sizes[0] != 1 || sizes[1] != 1 || sizes[2] != 1 || sizes[3] != 1 {
		t.Fatalf("byte chunks %v", sizes)
	}
	if err := sendChunks([]*runtime.PodSandbox{}, func([]*runtime.PodSandbox) error { t.Fatal("sent an empty chunk"); return nil }); err != nil {
		t.Fatal(err)
	}
	wantErr := errors.New("boom")
	if err := sendChunks(items, func([]*runtime.PodSandbox) error { return wantErr }); err != wantErr {
		t.Fatalf("send error: %v", err)
	}
}

func TestUpdatePodSandboxResources(t *testing.T) {
	c, fake := sandboxClient(t)
	ctx := context.Background()
	_, err := c.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no id: %v", err)
	}
	_, err = c.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown pod: %v", err)
	}
	pod, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("p")})
	if err != nil {
		t.Fatal(err)
	}
	res := &runtime.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 1 << 26}
	over := &runtime.LinuxContainerResources{CpuShares: 10}
	if _, err := c.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: pod.PodSandboxId, Overhead: over, Resources: res}); err != nil {
		t.Fatal(err)
	}
	gotOver, gotRes := fake.PodSandboxResources(pod.PodSandboxId)
	if !proto.Equal(gotOver, over) || !proto.Equal(gotRes, res) {
		t.Fatalf("recorded %v %v", gotOver, gotRes)
	}
}
