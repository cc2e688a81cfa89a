//go:build integration

package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRestoreHelperHangs checks that StartContainer of a container created from a checkpoint
// archive ends at its request's deadline when CRIU hangs in the restore, with the restore's
// error, killing the CRIU and the runc of the restore; the container is then exited, with the
// reason, and can be removed. The checkpoint is made by the host's CRIU; the restore goes to a
// pod whose runtime handler's runc finds a stand-in criu first on its PATH, one that never
// answers (runc talks to it as "criu swrk <fd>", and waits for its answer).
func TestRestoreHelperHangs(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	requireCRIU(t, ctx)
	runc := ResolveRuncBinary("")
	if runc == "" {
		runc = "runc"
	}
	bin := t.TempDir()
	standIn := filepath.Join(bin, "hangs")
	if err := os.MkdirAll(standIn, 0o755); err != nil {
		t.Fatal(err)
	}
	// A process named .../criu (as CRIU is) that never answers.
	if err := os.WriteFile(filepath.Join(standIn, "criu"), []byte("#!/bin/bash\nexec -a \"$0\" sleep 3600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := filepath.Join(bin, "runc-hangs")
	if err := os.WriteFile(wrapper, []byte(fmt.Sprintf("#!/bin/sh\nPATH=%s:$PATH exec %s \"$@\"\n", standIn, runc)), 0o755); err != nil {
		t.Fatal(err)
	}
	e.rt.Close()
	e.opts.RuntimeHandlers = []legacy.RuntimeHandler{RuncHandler("runc", ResolveRuncBinary("")), RuncHandler("criu-hangs-restore", wrapper)}
	e.rt = e.newRuntime()
	left := func(pattern string) []int {
		out, _ := exec.Command("pgrep", "-f", pattern).Output()
		var pids []int
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return pids
	}
	standIns := func() []int { return left("^" + standIn + "/criu ") }
	t.Cleanup(func() {
		for _, pid := range standIns() {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	})

	// The checkpoint, by the host's CRIU.
	src, _ := e.podWithLogs("rh-src")
	id := e.createStart(src.ID, ownPid(ctrCfg("counter", "sh", "-c", printCounter)))
	loc := filepath.Join(t.TempDir(), "counter.tar")
	if err := e.rt.CheckpointContainer(ctx, id, loc, 0); err != nil {
		t.Fatal(err)
	}

	// The restore, by the stand-in.
	pcfg := podCfg("rh-dst")
	pcfg.LogDirectory = filepath.Join(e.dir, "logs", "rh-dst")
	dst, res := e.rt.RunPodSandbox(ctx, pcfg, "criu-hangs-restore")
	if err := res.Error(); err != nil {
		t.Fatal(err)
	}
	savedTimeout := restoreTimeout
	t.Cleanup(func() { restoreTimeout = savedTimeout })
	for _, tc := range []struct {
		name string
		// deadline: the request's; else restoreTimeout bounds the restore.
		deadline, restoreTimeout time.Duration
	}{
		{name: "request-deadline", deadline: 5 * time.Second, restoreTimeout: time.Hour},
		{name: "no-deadline", restoreTimeout: 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restoreTimeout = tc.restoreTimeout
			rid, err := e.rt.CreateContainer(ctx, dst, ownPid(&runtime.ContainerConfig{
				Metadata: &runtime.ContainerMetadata{Name: "counter-restored"},
				Image:    &runtime.ImageSpec{Image: loc},
				LogPath:  "counter.log",
			}))
			if err != nil {
				t.Fatal(err)
			}
			timeout, sctx, cancel := tc.restoreTimeout, ctx, context.CancelFunc(func() {})
			if tc.deadline > 0 {
				timeout = tc.deadline
				sctx, cancel = context.WithTimeout(ctx, tc.deadline)
			}
			defer cancel()
			t0 := time.Now()
			err = e.rt.StartContainer(sctx, rid)
			took := time.Since(t0)
			t.Logf("StartContainer: %v after %v", err, took)
			if err == nil {
				t.Fatal("StartContainer of a restore whose CRIU hangs succeeded")
			}
			if !strings.Contains(err.Error(), "restore did not end") || !strings.Contains(err.Error(), "killed") || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("StartContainer: %v, want the restore's deadline", err)
			}
			// At the deadline, plus the clean-up.
			if limit := timeout + 3*time.Second; took > limit {
				t.Errorf("StartContainer took %v, want at most %v", took, limit)
			}
			if pids := standIns(); len(pids) != 0 {
				t.Errorf("stand-in criu left running: %v", pids)
			}
			if pids := left("runc.* restore .*" + rid); len(pids) != 0 {
				t.Errorf("runc restore left running: %v", pids)
			}
			if _, err := e.rt.loadTask(e.rt.withNS(ctx), rid); !errdefs.IsNotFound(err) {
				t.Errorf("task of the container after the failed restore: %v, want none", err)
			}
			st, err := e.rt.ContainerStatus(ctx, rid, false)
			if err != nil {
				t.Fatal(err)
			}
			if st.State != legacy.ContainerStateExited || st.Reason != legacy.ReasonStartError || !strings.Contains(st.Message, "restore") {
				t.Errorf("container after the failed restore: %s %q %q", st.State, st.Reason, st.Message)
			}
			if err := e.rt.RemoveContainer(ctx, rid); err != nil {
				t.Fatalf("remove the container: %v", err)
			}
		})
	}
}
