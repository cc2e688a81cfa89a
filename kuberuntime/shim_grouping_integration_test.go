//go:build integration

package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/sandbox"
	"github.com/containerd/errdefs"
)

// shimsOf lists the pids of the shims the test containerd started for ids.
func (e *env) shimsOf(ids ...string) []string {
	var pids []string
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") || !strings.Contains(string(b), e.ctrdAddress) {
			continue
		}
		for _, id := range ids {
			if strings.Contains(string(b), id) {
				pids = append(pids, p.Name())
			}
		}
	}
	return pids
}

// A pod on the runc shim is recorded in containerd's sandbox store and its containers name it:
// containerd connects their tasks to the pause task's shim without running the shim binary (the
// bundle's "sandbox" file says it took that path), one shim serves the pod, and the record and
// the shim go with the pod.
func TestContainersJoinThePauseShim(t *testing.T) {
	needsPause(t)
	e := newEnv(t, "")
	ctx := e.rt.withNS(context.Background())
	sb, _ := e.podWithLogs("grouped")
	if _, err := e.client.SandboxStore().Get(ctx, sb.ID); err != nil {
		t.Fatalf("sandbox record: %v", err)
	}
	var ids []string
	for _, name := range []string{"a", "b"} {
		id := e.createStart(sb.ID, ctrCfg(name, "sleep", "600"))
		ids = append(ids, id)
		c, err := e.client.LoadContainer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.SandboxID != sb.ID {
			t.Errorf("container %s: record's sandbox %q, want %q", name, info.SandboxID, sb.ID)
		}
		b, err := os.ReadFile(filepath.Join(e.ctrdState, "io.containerd.runtime.v2.task", e.opts.Namespace, id, "sandbox"))
		if err != nil || string(b) != sb.ID {
			t.Errorf("container %s: task not connected to the sandbox's shim (bundle's sandbox file: %q, %v)", name, b, err)
		}
	}
	if pids := e.shimsOf(append([]string{sb.ID}, ids...)...); len(pids) != 1 {
		t.Errorf("shims of the pod: %v, want one", pids)
	}
	// The containers exit and come back (a kubelet restarting them): still the same shim.
	if err := e.rt.StopContainer(ctx, ids[0], time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemoveContainer(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	again := e.createStart(sb.ID, ctrCfg("a2", "sleep", "600"))
	if pids := e.shimsOf(sb.ID, ids[1], again); len(pids) != 1 {
		t.Errorf("shims of the pod after a container restart: %v, want one", pids)
	}

	late := mustCreate(t, e, sb.ID, "late")
	if res := e.rt.StopPodSandbox(ctx, sb.ID); res.Error() != nil {
		t.Fatal(res.Error())
	}
	if err := e.rt.StartContainer(ctx, late); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("start in a stopped sandbox: %v, want FailedPrecondition", err)
	}
	if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SandboxStore().Get(ctx, sb.ID); !errdefs.IsNotFound(err) {
		t.Errorf("sandbox record after the pod's removal: %v, want NotFound", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(e.shimsOf(sb.ID)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pids := e.shimsOf(sb.ID); len(pids) > 0 {
		t.Errorf("shim left after the pod's removal: %v", pids)
	}
}

func mustCreate(t *testing.T, e *env, sandboxID, name string) string {
	t.Helper()
	id, err := e.rt.CreateContainer(context.Background(), sandboxID, ctrCfg(name, "sleep", "600"))
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return id
}

// A sandbox record that no pause container goes with (a daemon killed between the two) is
// deleted when the daemon starts; records of others' (unlabelled) are left alone.
func TestRecoverDeletesStaleSandboxRecords(t *testing.T) {
	needsPause(t)
	e := newEnv(t, "")
	ctx := e.rt.withNS(context.Background())
	live := e.run(podCfg("live"))
	stale := newID()
	if err := e.rt.createSandboxRecord(ctx, stale, "io.containerd.runc.v2"); err != nil {
		t.Fatal(err)
	}
	foreign := newID()
	now := time.Now()
	if _, err := e.client.SandboxStore().Create(ctx, sandbox.Sandbox{ID: foreign, Runtime: sandbox.RuntimeOpts{Name: "io.containerd.runc.v2"}, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.client.SandboxStore().Delete(ctx, foreign) })
	e.newRuntime() // recover
	if _, err := e.client.SandboxStore().Get(ctx, stale); !errdefs.IsNotFound(err) {
		t.Errorf("stale sandbox record: %v, want NotFound", err)
	}
	for _, id := range []string{live.ID, foreign} {
		if _, err := e.client.SandboxStore().Get(ctx, id); err != nil {
			t.Errorf("sandbox record %s: %v", id, err)
		}
	}
}
