//go:build integration

package main

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pauseRootfsMounts lists the mounts of the shared pause rootfs of the daemon whose dirs are under
// dir.
func pauseRootfsMounts(dir string) []string {
	return testutil.MountsUnder(filepath.Join(dir, "state", "pause-rootfs"))
}

// stopDaemon stops d with SIGTERM and waits for its exit.
func stopDaemon(t *testing.T, d *daemon) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, d.out)
	}
}

// TestDaemonLeavesNoMounts: a daemon stopped with no pod left leaves no mount under its dirs (the
// shared pause rootfs included); one stopped under a running pod leaves the shared pause rootfs
// mounted for the pod, and the next start adopts it (no second mount); a start after a kill -9
// with no pod left removes the mount the killed daemon left.
func TestDaemonLeavesNoMounts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir, args := crashEnv(t, ctx, "mounts", "crishimmt0", "10.95.0.0/24")
	bin := buildDaemon(t)
	run := func(c runtime.RuntimeServiceClient, name string) string {
		t.Helper()
		p, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: hostNetPod(name)})
		if err != nil {
			t.Fatalf("run pod %s: %v", name, err)
		}
		return p.PodSandboxId
	}
	remove := func(c runtime.RuntimeServiceClient, id string) {
		t.Helper()
		if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatal(err)
		}
	}
	noMounts := func(when string) {
		t.Helper()
		for _, sub := range []string{"root", "state"} {
			if m := testutil.MountsUnder(filepath.Join(dir, sub)); len(m) != 0 {
				t.Fatalf("%s: mounts left under the daemon's %s dir: %v", when, sub, m)
			}
		}
	}

	// No pod left: no mount left.
	d := startDaemon(t, bin, dir, args...)
	c := criClient(t, d.socket)
	remove(c, run(c, "first"))
	if len(pauseRootfsMounts(dir)) == 0 {
		t.Fatal("the shared pause rootfs was never mounted: the test tests nothing")
	}
	stopDaemon(t, d)
	noMounts("after a stop with no pod")

	// A pod still running: the mount stays, and the next start adopts it.
	d = startDaemon(t, bin, dir, args...)
	c = criClient(t, d.socket)
	kept := run(c, "kept")
	before := pauseRootfsMounts(dir)
	stopDaemon(t, d)
	if after := pauseRootfsMounts(dir); len(after) == 0 || fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("shared pause rootfs mounts with a pod running: %v before the stop, %v after", before, after)
	}
	d = startDaemon(t, bin, dir, args...)
	c = criClient(t, d.socket)
	st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: kept})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("the pod after the restart: %v %v", st, err)
	}
	second := run(c, "second")
	if now := pauseRootfsMounts(dir); fmt.Sprint(now) != fmt.Sprint(before) {
		t.Fatalf("shared pause rootfs mounts after a restart and a new pod: %v, want %v (adopted)", now, before)
	}
	remove(c, kept)
	remove(c, second)
	stopDaemon(t, d)
	noMounts("after a restart and a stop with no pod")

	// Killed with no pod left: the next start removes the mount.
	d = startDaemon(t, bin, dir, args...)
	c = criClient(t, d.socket)
	remove(c, run(c, "killed"))
	d.cmd.Process.Kill()
	d.cmd.Wait()
	// Its managed containerd goes too (parent-death signal): the next daemon starts its own.
	for deadline := time.Now().Add(30 * time.Second); len(managedContainerdPids(dir)) != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed daemon's containerd still runs: %v", managedContainerdPids(dir))
		}
	}
	if len(pauseRootfsMounts(dir)) == 0 {
		t.Fatal("no mount left by a killed daemon: the test tests nothing")
	}
	d = startDaemon(t, bin, dir, args...)
	if m := pauseRootfsMounts(dir); len(m) != 0 {
		t.Fatalf("mounts left by a killed daemon, after a start with no pod: %v", m)
	}
	stopDaemon(t, d)
	noMounts("after the last stop")
}
