//go:build integration

package kuberuntime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// eventQueue hands out the events of one container at a time, in order, keeping those of other
// containers for later (the containers of a pod are stopped and removed concurrently, so their
// events interleave in any order).
type eventQueue struct {
	ch      <-chan legacy.ContainerEvent
	pending map[string][]legacy.ContainerEvent
}

// next returns the next event of container id.
func (q *eventQueue) next(t *testing.T, id string) legacy.ContainerEvent {
	t.Helper()
	if evs := q.pending[id]; len(evs) > 0 {
		q.pending[id] = evs[1:]
		return evs[0]
	}
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev, ok := <-q.ch:
			if !ok {
				t.Fatal("event channel closed")
			}
			if ev.ContainerID == id {
				return ev
			}
			q.pending[ev.ContainerID] = append(q.pending[ev.ContainerID], ev)
		case <-timeout:
			t.Fatalf("no event for container %s", id)
		}
	}
}

func TestContainerEvents(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	sb, _ := e.podWithLogs("events")
	ch, cancel := e.rt.SubscribeContainerEvents(0)
	defer cancel()
	q := &eventQueue{ch: ch, pending: map[string][]legacy.ContainerEvent{}}

	expect := func(id string, want ...legacy.ContainerEventType) {
		t.Helper()
		for _, w := range want {
			ev := q.next(t, id)
			if ev.Type != w || ev.SandboxID != sb.ID || ev.At.IsZero() {
				t.Fatalf("event %+v, want %s", ev, w)
			}
		}
	}

	// Stopped by StopContainer, then removed.
	id, err := e.rt.CreateContainer(ctx, sb.ID, ctrCfg("sleeper", "sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	expect(id, legacy.ContainerEventCreated)
	if err := e.rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	expect(id, legacy.ContainerEventStarted)
	if err := e.rt.StopContainer(ctx, id, time.Second); err != nil {
		t.Fatal(err)
	}
	expect(id, legacy.ContainerEventStopped)
	if st, err := e.rt.ContainerStatus(ctx, id, false); err != nil || st.State != legacy.ContainerStateExited {
		t.Fatalf("status after the stopped event: %+v %v", st, err)
	}
	if err := e.rt.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	expect(id, legacy.ContainerEventDeleted)

	// Exits on its own: the exit monitor reports it.
	id = e.createStart(sb.ID, ctrCfg("quick", "true"))
	expect(id, legacy.ContainerEventCreated, legacy.ContainerEventStarted, legacy.ContainerEventStopped)

	// Removed with its sandbox.
	id2 := e.createStart(sb.ID, ctrCfg("long", "sleep", "60"))
	expect(id2, legacy.ContainerEventCreated, legacy.ContainerEventStarted)
	if err := e.rt.StopPodSandbox(ctx, sb.ID).Error(); err != nil {
		t.Fatal(err)
	}
	expect(id2, legacy.ContainerEventStopped)
	if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	expect(id, legacy.ContainerEventDeleted)
	expect(id2, legacy.ContainerEventDeleted)
	if n := e.rt.events().Dropped(); n != 0 {
		t.Fatalf("%d events dropped", n)
	}
}

func TestUpdatePodSandboxResourcesCgroup(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	cfg := podCfg("resources")
	var sbID string
	parent := e.cgroupParentFor(t, "res", func() string { return sbID })
	cfg.Linux.CgroupParent = parent
	sb := e.run(cfg)
	sbID = sb.ID
	fs := cgroupstats.DetectCgroupFS()
	res := &runtime.LinuxContainerResources{MemoryLimitInBytes: 200 << 20, CpuQuota: 50000, CpuPeriod: 100000}
	over := &runtime.LinuxContainerResources{MemoryLimitInBytes: 56 << 20}
	if err := e.rt.UpdatePodSandboxResources(ctx, sb.ID, over, res); err != nil {
		t.Fatal(err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if fs.Unified {
		if got := read(filepath.Join(fs.V2Root, parent, "memory.max")); got != fmt.Sprint(256<<20) {
			t.Fatalf("memory.max %s", got)
		}
		if got := read(filepath.Join(fs.V2Root, parent, "cpu.max")); got != "50000 100000" {
			t.Fatalf("cpu.max %s", got)
		}
	} else {
		if got := read(filepath.Join("/sys/fs/cgroup/memory", parent, "memory.limit_in_bytes")); got != fmt.Sprint(256<<20) {
			t.Fatalf("memory.limit_in_bytes %s", got)
		}
		if got := read(filepath.Join("/sys/fs/cgroup/cpu", parent, "cpu.cfs_quota_us")); got != "50000" {
			t.Fatalf("cpu.cfs_quota_us %s", got)
		}
	}
	st, err := e.rt.PodSandboxStatus(ctx, sb.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Info["info"], `"podResources"`) {
		t.Fatalf("verbose status without the pod's resources: %s", st.Info["info"])
	}
	if err := e.rt.UpdatePodSandboxResources(ctx, "nosuchpod", nil, res); err == nil {
		t.Fatal("unknown sandbox: no error")
	}
}
