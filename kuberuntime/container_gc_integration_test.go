//go:build integration

package kuberuntime

import (
	"context"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
)

// TestContainerGCOrphans: the orphan policy removes the dead containers whose sandbox is gone, and
// keeps the others (dead ones of a live pod, running ones).
func TestContainerGCOrphans(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	live, _ := e.podWithLogs("gc-live")
	gone := e.run(podCfg("gc-gone"))

	keptDead := e.createStart(live.ID, ctrCfg("dead", "true"))
	e.waitExited(e.rt, keptDead)
	keptRunning := e.createStart(live.ID, ctrCfg("sleeper", "sleep", "60"))
	orphan := e.createStart(gone.ID, ctrCfg("orphan", "true"))
	e.waitExited(e.rt, orphan)

	// The sandbox vanishes without its containers (as after a crash between the two).
	sb, err := e.rt.sandboxes.get(gone.ID)
	if err != nil {
		t.Fatal(err)
	}
	e.rt.sandboxes.remove(sb)
	// Back in the store at the end, for the env's cleanup to remove it.
	t.Cleanup(func() { e.rt.sandboxes.add(sb) })

	policy := legacy.OrphanGCPolicy
	policy.MinAge = 0
	gc, err := legacy.NewContainerGC(e.rt, policy)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := gc.Plan(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 1 || plan[0].ID != orphan {
		t.Fatalf("plan %+v, want only %s", plan, orphan)
	}
	time.Sleep(10 * time.Millisecond)
	removed, err := gc.GarbageCollect(ctx)
	if err != nil || len(removed) != 1 || removed[0].ID != orphan {
		t.Fatalf("removed %+v: %v", removed, err)
	}
	if _, err := e.rt.ContainerStatus(ctx, orphan, false); !errdefs.IsNotFound(err) {
		t.Fatalf("orphan still there: %v", err)
	}
	// RemoveContainer answers before the deletion is over (container_remove.go).
	if err := e.rt.removals().wait(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.rt.loadContainer(e.rt.withNS(ctx), orphan); !errdefs.IsNotFound(err) {
		t.Fatalf("orphan's containerd container still there: %v", err)
	}
	for _, id := range []string{keptDead, keptRunning} {
		if _, err := e.rt.ContainerStatus(ctx, id, false); err != nil {
			t.Fatalf("container %s removed: %v", id, err)
		}
	}
}
