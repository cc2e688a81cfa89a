//go:build integration

package main

import (
	"context"
	"encoding/json"
	"syscall"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// hostNetPod is the config of a pod on the host's network (no CNI involved).
func hostNetPod(name string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "events", Uid: name + "-uid"},
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE},
		}},
	}
}

// eventStream reads GetContainerEvents.
type eventStream struct {
	t   *testing.T
	ch  chan *runtime.ContainerEventResponse
	err chan error
}

// watchEvents opens the events stream and returns once the daemon has subscribed (the stream's
// header has come): no later event is missed.
func watchEvents(t *testing.T, ctx context.Context, c runtime.RuntimeServiceClient) *eventStream {
	t.Helper()
	stream, err := c.GetContainerEvents(ctx, &runtime.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil {
		t.Fatalf("events stream header: %v", err)
	}
	s := &eventStream{t: t, ch: make(chan *runtime.ContainerEventResponse, 100), err: make(chan error, 1)}
	go func() {
		for {
			ev, err := stream.Recv()
			if err != nil {
				s.err <- err
				return
			}
			s.ch <- ev
		}
	}()
	return s
}

// expect reads the next event and checks it is typ about id (the sandbox's own when id is the
// sandbox's ID), with the pod's status in state, and n container statuses.
func (s *eventStream) expect(typ runtime.ContainerEventType, id, podID, uid string, state runtime.PodSandboxState, n int) {
	s.t.Helper()
	select {
	case ev := <-s.ch:
		ps := ev.GetPodSandboxStatus()
		if ev.ContainerEventType != typ || ev.ContainerId != id || ps.GetId() != podID || ps.GetMetadata().GetUid() != uid ||
			ps.GetState() != state || len(ev.ContainersStatuses) != n || ev.CreatedAt == 0 {
			s.t.Fatalf("event %v about %s (pod %s, state %v, %d container statuses); want %v about %s (pod %s, uid %s, state %v, %d container statuses)",
				ev.ContainerEventType, ev.ContainerId, ps.GetId(), ps.GetState(), len(ev.ContainersStatuses), typ, id, podID, uid, state, n)
		}
	case err := <-s.err:
		s.t.Fatalf("events stream: %v (waiting for %v about %s)", err, typ, id)
	case <-time.After(30 * time.Second):
		s.t.Fatalf("no %v event about %s", typ, id)
	}
}

// none checks that no event comes within d.
func (s *eventStream) none(d time.Duration) {
	s.t.Helper()
	select {
	case ev := <-s.ch:
		s.t.Fatalf("unexpected event %v about %s", ev.ContainerEventType, ev.ContainerId)
	case <-time.After(d):
	}
}

// TestDaemonSandboxEvents: GetContainerEvents carries the pod sandbox's own lifecycle as
// containerd's CRI does (ContainerId = the sandbox's ID, with its status), in order with its
// containers' events: runp → sandbox created, started; stopp → container stopped, then sandbox
// stopped; rmp → container deleted, then sandbox deleted. A pause process that dies on its own
// makes a sandbox stopped event, and the stop that follows makes no second one.
func TestDaemonSandboxEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, args := crashEnv(t, ctx, "events", "crishimev0", "10.96.0.0/24")
	d := startDaemon(t, buildDaemon(t), dir, args...)
	c := criClient(t, d.socket)
	const image = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	if _, err := criImageClient(t, d.socket).PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}
	ev := watchEvents(t, ctx, c)
	const (
		created = runtime.ContainerEventType_CONTAINER_CREATED_EVENT
		started = runtime.ContainerEventType_CONTAINER_STARTED_EVENT
		stopped = runtime.ContainerEventType_CONTAINER_STOPPED_EVENT
		deleted = runtime.ContainerEventType_CONTAINER_DELETED_EVENT
		ready   = runtime.PodSandboxState_SANDBOX_READY
		down    = runtime.PodSandboxState_SANDBOX_NOTREADY
	)

	cfg := hostNetPod("evpod")
	p, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	pod := p.PodSandboxId
	t.Cleanup(func() { c.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: pod}) })
	ev.expect(created, pod, pod, "evpod-uid", ready, 0)
	ev.expect(started, pod, pod, "evpod-uid", ready, 0)

	cr, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod, SandboxConfig: cfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "sleeper"},
		Image:    &runtime.ImageSpec{Image: image},
		Command:  []string{"sleep", "600"},
		Linux:    &runtime.LinuxContainerConfig{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctr := cr.ContainerId
	ev.expect(created, ctr, pod, "evpod-uid", ready, 1)
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctr}); err != nil {
		t.Fatal(err)
	}
	ev.expect(started, ctr, pod, "evpod-uid", ready, 1)

	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	ev.expect(stopped, ctr, pod, "evpod-uid", ready, 1)
	ev.expect(stopped, pod, pod, "evpod-uid", down, 1)
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod}); err != nil {
		t.Fatal(err)
	}
	// As containerd's: the container's deleted event comes once it has left the store (no
	// container statuses left); the sandbox's comes with the pod's status (it names the pod).
	ev.expect(deleted, ctr, pod, "evpod-uid", down, 0)
	ev.expect(deleted, pod, pod, "evpod-uid", down, 0)

	// The pause process dies on its own: the sandbox's stopped event; the stop that follows
	// sends none, the removal the deleted one.
	p, err = c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: hostNetPod("evdies")})
	if err != nil {
		t.Fatal(err)
	}
	pod2 := p.PodSandboxId
	t.Cleanup(func() { c.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: pod2}) })
	ev.expect(created, pod2, pod2, "evdies-uid", ready, 0)
	ev.expect(started, pod2, pod2, "evdies-uid", ready, 0)
	st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: pod2, Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Pid int `json:"pid"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.Pid <= 0 {
		t.Fatalf("pause pid from the verbose status: %v %q", err, st.Info["info"])
	}
	if err := syscall.Kill(info.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ev.expect(stopped, pod2, pod2, "evdies-uid", down, 0)
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: pod2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: pod2}); err != nil {
		t.Fatal(err)
	}
	ev.expect(deleted, pod2, pod2, "evdies-uid", down, 0)
	ev.none(500 * time.Millisecond)
}
