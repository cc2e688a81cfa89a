//go:build integration

package kuberuntime

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/kmsgoom/kmsgoomtest"

	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/legacy"
)

// TestKernelLogOOMKill: an OOM kill the kernel logs in a container's cgroup makes its exit reason
// OOMKilled, although neither its cgroup's count nor containerd said so (under the systemd driver
// the scope can be gone before either is read); a kill logged in another cgroup changes nothing.
// A FIFO stands in for /dev/kmsg.
func TestKernelLogOOMKill(t *testing.T) {
	fifo, w := kmsgoomtest.FakeLog(t)
	old := kmsgPath
	kmsgPath = fifo
	defer func() { kmsgPath = old }()

	e := newEnv(t, "")
	sb, _ := e.podWithLogs("kmsg-oom")
	victim := e.createStart(sb.ID, ctrCfg("victim", "sleep", "600"))
	other := e.createStart(sb.ID, ctrCfg("other", "sleep", "600"))
	pc, err := e.rt.ctrs().store.get(victim)
	if err != nil {
		t.Fatal(err)
	}
	dir, ok := cgroupdriver.Dir(pc.meta.CgroupsPath)
	if !ok {
		t.Fatalf("no cgroup dir for %q", pc.meta.CgroupsPath)
	}
	// A kill below the container's cgroup (a process in a sub-cgroup it made) counts as its own;
	// one in an unrelated cgroup does not.
	fmt.Fprintf(w, "6,100,200,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s/sub,task=sleep,pid=1,uid=0\n", dir, dir)
	fmt.Fprintf(w, "6,101,201,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/elsewhere,task_memcg=/elsewhere/x,task=sleep,pid=2,uid=0\n")
	time.Sleep(500 * time.Millisecond) // the watcher reads it

	ctx := context.Background()
	for _, id := range []string{victim, other} {
		if err := e.rt.StopContainer(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{victim: legacy.ReasonOOMKilled, other: "Error"} {
		st, err := e.rt.ContainerStatus(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Reason != want {
			t.Errorf("%s: reason %q (exit %d), want %q", id[:12], st.Reason, st.ExitCode, want)
		}
	}
}
