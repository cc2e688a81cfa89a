//go:build integration

package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/internal/testutil"
	"google.golang.org/protobuf/types/known/anypb"
)

// proc is a process seen by the test: its pid and its start time (field 22 of /proc/pid/stat),
// which tells it apart from a later process given the same pid.
type proc struct {
	what  string
	pid   int
	start string
}

func procOf(t *testing.T, what string, pid int) proc {
	t.Helper()
	start, _, ok := procStat(pid)
	if !ok {
		t.Fatalf("%s (pid %d): no such process", what, pid)
	}
	return proc{what: what, pid: pid, start: start}
}

// procStat reads a process's start time and state.
func procStat(pid int) (start string, state string, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", "", false
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		return "", "", false
	}
	return fields[19], fields[0], true
}

// running: the same process, not exited (a zombie runs nothing).
func (p proc) running() bool {
	start, state, ok := procStat(p.pid)
	return ok && start == p.start && state != "Z"
}

// A pause container whose sandbox metadata this daemon cannot read (written by a daemon of
// another layout, or none: half made) is removed at start with everything of its pod: its
// containers, their processes, the pause, the pod's shim, the sandbox record and the mounts.
func TestRecoverRemovesUnreadableSandboxWithItsContainersAndShim(t *testing.T) {
	needsPause(t)
	e := newEnv(t, "")
	ctx := e.rt.withNS(context.Background())
	sb, _ := e.podWithLogs("unreadable")
	ctrID := e.createStart(sb.ID, ctrCfg("app", "sleep", "600"))
	cst, err := e.rt.ContainerStatus(ctx, ctrID, false)
	if err != nil {
		t.Fatal(err)
	}
	procs := []proc{procOf(t, "pause", int(sb.Pid)), procOf(t, "container", int(cst.Pid))}
	shims := e.shimsOf(sb.ID)
	if len(shims) != 1 {
		t.Fatalf("shims of the pod: %v, want one", shims)
	}
	shimPid, _ := strconv.Atoi(shims[0])
	procs = append(procs, procOf(t, "shim", shimPid))
	e.rt.Close()

	// The metadata as a daemon of another layout leaves it: a type this one does not know.
	c, err := e.client.LoadContainer(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info.Extensions[sandboxExtensionID] = &anypb.Any{TypeUrl: "example.com/other-layout/SandboxMetadata", Value: []byte{0x0a, 0x01, 'x'}}
	if _, err := e.client.ContainerService().Update(ctx, info, "extensions."+sandboxExtensionID); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	rt := e.newRuntime() // recover
	t.Logf("recover: %v", time.Since(t0))

	list, err := rt.ListPodSandbox(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.ID == sb.ID {
			t.Errorf("sandbox %s listed after recovery", sb.ID)
		}
	}
	if _, err := rt.PodSandboxStatus(ctx, sb.ID, false); !errdefs.IsNotFound(err) {
		t.Errorf("sandbox status after recovery: %v, want NotFound", err)
	}
	if _, err := rt.ContainerStatus(ctx, ctrID, false); !errdefs.IsNotFound(err) {
		t.Errorf("container status after recovery: %v, want NotFound", err)
	}
	for _, id := range []string{sb.ID, ctrID} {
		if _, err := e.client.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
			t.Errorf("containerd container %s after recovery: %v, want NotFound", id, err)
		}
	}
	tl, err := e.client.TaskService().List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tl.Tasks {
		if task.ID == sb.ID || task.ID == ctrID {
			t.Errorf("containerd task %s left after recovery", task.ID)
		}
	}
	if _, err := e.client.SandboxStore().Get(ctx, sb.ID); !errdefs.IsNotFound(err) {
		t.Errorf("sandbox record after recovery: %v, want NotFound", err)
	}
	// The shim exits once asked to shut down: give it a bounded moment.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var left []proc
		for _, p := range procs {
			if p.running() {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("processes of the pod left after recovery: %+v", left)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, dir := range []string{e.dir, filepath.Dir(e.ctrdAddress)} {
		if m := testutil.MountsUnder(dir); len(m) > 0 {
			t.Errorf("mounts left under %s: %v", dir, m)
		}
	}
	if _, err := os.Stat(rt.SandboxStateDir(sb.ID)); !os.IsNotExist(err) {
		t.Errorf("sandbox state dir after recovery: %v", err)
	}
}
