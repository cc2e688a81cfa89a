//go:build integration

package kuberuntime

import (
	"context"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/moby/sys/mountinfo"
)

// Pods without a user namespace share one pause rootfs: no snapshot per pod, one mount, and what
// is left after the pods are gone is that one rootfs (snapshot, lease, mount), found again by a
// restarted runtime.
func TestPauseRootfsIsShared(t *testing.T) {
	needsPause(t)
	e := newEnv(t, "")
	ctx := namespaces.WithNamespace(context.Background(), "crishim-test")
	a := e.run(podCfg("share-a"))
	b := e.run(podCfg("share-b"))

	var roots []string
	for _, id := range []string{a.ID, b.ID} {
		rec, err := e.client.ContainerService().Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if rec.SnapshotKey != "" || rec.Snapshotter != "" {
			t.Fatalf("pause container %s has a snapshot of its own: %s/%s", id, rec.Snapshotter, rec.SnapshotKey)
		}
		c, err := e.client.LoadContainer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		spec, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if spec.Root == nil || !spec.Root.Readonly || !strings.HasPrefix(spec.Root.Path, e.opts.StateDir+"/pause-rootfs/") {
			t.Fatalf("pause root of %s: %+v", id, spec.Root)
		}
		roots = append(roots, spec.Root.Path)
	}
	if roots[0] != roots[1] {
		t.Fatalf("two pause rootfs: %v", roots)
	}
	if ok, err := mountinfo.Mounted(roots[0]); err != nil || !ok {
		t.Fatalf("shared rootfs %s not mounted (%v)", roots[0], err)
	}
	pauseSnapshots := func() (shared, other int) {
		t.Helper()
		err := e.client.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
			switch {
			case strings.HasPrefix(info.Name, "cri-shim-pause-rootfs-"):
				shared++
			case info.Kind == snapshots.KindActive:
				other++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return shared, other
	}
	if shared, other := pauseSnapshots(); shared != 1 || other != 0 {
		t.Fatalf("active snapshots with 2 pods: shared %d, others %d; want 1 and 0", shared, other)
	}

	// A restarted runtime finds the mounted rootfs and uses it for a new pod.
	e.rt.Close()
	e.rt = e.newRuntime()
	c := e.run(podCfg("share-c"))
	cc, err := e.client.LoadContainer(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := cc.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Root.Path != roots[0] {
		t.Fatalf("after restart the pause root is %s, want %s", spec.Root.Path, roots[0])
	}
	for _, id := range []string{a.ID, b.ID, c.ID} {
		if err := e.rt.StopPodSandbox(ctx, id).Error(); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.RemovePodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if shared, other := pauseSnapshots(); shared != 1 || other != 0 {
		t.Fatalf("active snapshots with no pod: shared %d, others %d; want 1 and 0", shared, other)
	}
	ls, err := e.client.LeasesService().List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ls) != 1 || ls[0].ID != pauseRootfsLease {
		t.Fatalf("leases after the pods: %+v, want only %s", ls, pauseRootfsLease)
	}
}
