//go:build integration

package kuberuntime

import (
	"context"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
)

// waitNewer waits (up to 30s) for a status of the pod newer than since whose container id is in
// state want; nil (and an error reported) when none comes.
func waitNewer(t *testing.T, c legacy.Cache, uid legacy.UID, since time.Time, id string, want legacy.ContainerState) *legacy.PodStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	has := func(ps *legacy.PodStatus) bool {
		for _, cs := range ps.ContainerStatuses {
			if cs.ID.ID == id && cs.State == want {
				return true
			}
		}
		return false
	}
	for {
		ps, err := c.GetNewerThanContext(ctx, uid, since)
		if err != nil {
			t.Errorf("GetNewerThan %s after %v: %v", uid, since, err)
			return nil
		}
		if has(ps) {
			return ps
		}
		// Woken by the periodic UpdateTime before the change: wait for a newer one, and look at
		// what was Set meanwhile.
		since = time.Now()
		if ps, _ := c.Get(uid); has(ps) {
			return ps
		}
	}
}

func TestPodStatusCacheFedByEvents(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	sb, _ := e.podWithLogs("pscache")
	cache := e.rt.PodStatusCache()
	if cache == nil {
		t.Fatal("no pod status cache")
	}

	// The sandbox's start reached the cache.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps, err := cache.Get(sb.UID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ps.SandboxStatuses) == 1 && ps.SandboxStatuses[0].ID == sb.ID && ps.SandboxStatuses[0].State == legacy.SandboxStateReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sandbox not cached: %+v", ps)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// A waiter parked before the container starts is woken with it running.
	before := time.Now()
	id, err := e.rt.CreateContainer(ctx, sb.ID, ctrCfg("short", "sh", "-c", "sleep 1; exit 3"))
	if err != nil {
		t.Fatal(err)
	}
	woken := make(chan *legacy.PodStatus, 1)
	go func() { woken <- waitNewer(t, cache, sb.UID, before, id, legacy.ContainerStateRunning) }()
	time.Sleep(100 * time.Millisecond)
	if err := e.rt.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	tStarted := time.Now()
	select {
	case ps := <-woken:
		if ps == nil {
			t.FailNow()
		}
		t.Logf("running seen %v after StartContainer returned", time.Since(tStarted))
		if ps.ID != sb.UID || ps.Name != sb.Name || ps.Namespace != sb.Namespace {
			t.Fatalf("pod status names %s %s/%s", ps.ID, ps.Namespace, ps.Name)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("GetNewerThan not woken by the start")
	}

	// Its exit wakes a waiter too, with the exit code.
	ps := waitNewer(t, cache, sb.UID, time.Now(), id, legacy.ContainerStateExited)
	if ps == nil {
		t.FailNow()
	}
	for _, cs := range ps.ContainerStatuses {
		if cs.ID.ID == id && cs.ExitCode != 3 {
			t.Fatalf("exit code %d, want 3", cs.ExitCode)
		}
	}

	// The pod's removal drops its entry at the next relist; the global timestamp keeps moving.
	if r := e.rt.StopPodSandbox(ctx, sb.ID); r.Error() != nil {
		t.Fatal(r.Error())
	}
	if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	ps, err = cache.GetNewerThanContext(ctx, sb.UID, after)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.SandboxStatuses) != 0 || len(ps.ContainerStatuses) != 0 {
		t.Fatalf("removed pod still cached: %+v", ps)
	}
}
