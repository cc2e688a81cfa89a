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

	"github.com/cri-shim/cri-shim/kuberuntime/criu"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// printCounter prints an incrementing counter to the container's log, ten a second; only its
// memory (the shell's variable) knows where it is.
const printCounter = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.1; done"

// logCounts reads the counter values from a CRI log file.
func logCounts(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []int
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) != 4 || f[1] != "stdout" {
			continue
		}
		n, err := strconv.Atoi(f[3])
		if err != nil {
			t.Fatalf("log line %q", l)
		}
		out = append(out, n)
	}
	return out
}

// waitCounts waits until the log holds at least n values, and returns them.
func waitCounts(t *testing.T, path string, n int) []int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c := logCounts(t, path)
		if len(c) >= n {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d counter lines after 30s, want %d: %v", path, len(c), n, c)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkContinues checks that a restored counter went on from the checkpointed memory state: its
// first value follows one between before and after (the values read around the checkpoint), and
// it keeps counting one by one.
func checkContinues(t *testing.T, what string, counts []int, before, after int) {
	t.Helper()
	first := counts[0]
	t.Logf("%s: counter at %d..%d around the checkpoint, restored counter starts at %d", what, before, after, first)
	if first < before || first > after+1 {
		t.Fatalf("%s: restored counter starts at %d, want it to go on from the checkpoint (%d..%d): %v", what, first, before, after+1, counts)
	}
	for i := 1; i < len(counts); i++ {
		if counts[i] != counts[i-1]+1 {
			t.Fatalf("%s: restored counter jumps from %d to %d: %v", what, counts[i-1], counts[i], counts)
		}
	}
}

// ownPid gives a container its own pid namespace, as the kubelet does unless the pod shares one:
// CRIU then restores its processes into a new one. (In the pod's, they come back with their pids
// in the new pod's namespace, where one may be taken.)
func ownPid(cfg *runtime.ContainerConfig) *runtime.ContainerConfig {
	cfg.Linux = &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}}
	return cfg
}

func (e *env) removePod(id string) {
	e.t.Helper()
	ctx := context.Background()
	if res := e.rt.StopPodSandbox(ctx, id); res.Error() != nil {
		e.t.Fatal(res.Error())
	}
	if err := e.rt.RemovePodSandbox(ctx, id); err != nil {
		e.t.Fatal(err)
	}
}

// TestRestore checkpoints a container that counts in memory, removes it and its pod, restores it
// into a new sandbox from the archive (CreateContainer with the archive as its image), and checks
// that the counter goes on from where it was; then the same with CheckpointPod and RestorePod.
func TestRestore(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	requireCRIU(t, ctx)
	src, srcLogs := e.podWithLogs("rst-src")
	// A file written before the checkpoint: the container's file-system changes go with it.
	id := e.createStart(src.ID, ownPid(ctrCfg("counter", "sh", "-c", "echo kept > /kept; "+printCounter)))
	srcLog := filepath.Join(srcLogs, "counter.log")
	waitCounts(t, srcLog, 20)

	loc := filepath.Join(t.TempDir(), "counter.tar")
	counts := logCounts(t, srcLog)
	before := counts[len(counts)-1]
	t0 := time.Now()
	if err := e.rt.CheckpointContainer(ctx, id, loc, 0); err != nil {
		t.Fatal(err)
	}
	ckptTime := time.Since(t0)
	counts = logCounts(t, srcLog)
	after := counts[len(counts)-1]
	fi, err := os.Stat(loc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("CheckpointContainer: archive %d bytes (%.1f KiB), %v", fi.Size(), float64(fi.Size())/1024, ckptTime)
	if err := e.rt.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.removePod(src.ID)

	// A new sandbox; the container from the archive.
	dst, dstLogs := e.podWithLogs("rst-dst")
	// The request decides the container's namespaces and privileges, not the archive: the
	// kubelet's request names the pid namespace of the pod's spec, the checkpoint's.
	cfg := ownPid(&runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "counter-restored"},
		Image:    &runtime.ImageSpec{Image: loc},
		LogPath:  "counter.log",
		Labels:   map[string]string{"restored": "yes"},
	})
	t0 = time.Now()
	rid, err := e.rt.CreateContainer(ctx, dst.ID, cfg)
	if err != nil {
		t.Fatal(err)
	}
	createTime := time.Since(t0)
	if err := e.rt.StartContainer(ctx, rid); err != nil {
		t.Fatal(err)
	}
	restoreTime := time.Since(t0)
	t.Logf("restore from the archive: CreateContainer %v, CreateContainer+StartContainer %v", createTime, restoreTime)
	// Restored: the copy of the checkpoint is gone, CRIU's restore log stays.
	if entries, err := os.ReadDir(filepath.Join(e.rt.containersRoot(), rid, restoreDir)); err != nil || len(entries) != 1 || entries[0].Name() != "work" {
		t.Fatalf("restore dir after the start: %v %v", entries, err)
	}
	dstLog := filepath.Join(dstLogs, "counter.log")
	restored := waitCounts(t, dstLog, 10)
	checkContinues(t, "archive", restored, before, after)
	st, err := e.rt.ContainerStatus(ctx, rid, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != legacy.ContainerStateRunning || st.ImageRef == "" || st.Config.GetLabels()["restored"] != "yes" || st.Name != "counter-restored" {
		t.Fatalf("restored container status %+v", st)
	}
	// The checkpointed command, not the request's (it has none).
	if c := st.Config.GetCommand(); len(c) != 3 || !strings.HasSuffix(c[2], printCounter) {
		t.Fatalf("restored container's command %v", c)
	}
	// Exec works in the restored container, which has the file written before the checkpoint.
	res, err := e.rt.ExecSync(ctx, rid, []string{"cat", "/kept"}, 10*time.Second)
	if err != nil || strings.TrimSpace(string(res.Stdout)) != "kept" {
		t.Fatalf("exec in the restored container: %v %+v", err, res)
	}

	t.Run("pod", func(t *testing.T) {
		id2 := e.createStart(dst.ID, ownPid(ctrCfg("sleeper", "sleep", "3600")))
		out := t.TempDir()
		counts := logCounts(t, dstLog)
		before := counts[len(counts)-1]
		t0 := time.Now()
		if err := e.rt.CheckpointPod(ctx, dst.ID, out, []string{rid, id2}, nil); err != nil {
			t.Fatal(err)
		}
		ckptTime := time.Since(t0)
		counts = logCounts(t, dstLog)
		after := counts[len(counts)-1]
		var size int64
		_ = filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					size += fi.Size()
				}
			}
			return nil
		})
		t.Logf("CheckpointPod (2 containers): %d bytes (%.1f KiB), %v", size, float64(size)/1024, ckptTime)
		e.removePod(dst.ID)

		podConfig := podCfg("rst-pod")
		podConfig.LogDirectory = filepath.Join(e.dir, "logs", "rst-pod")
		counterCfg := ownPid(ctrCfg("counter-restored"))
		counterCfg.Image = &runtime.ImageSpec{Image: testBusybox}
		counterCfg.LogPath = "counter.log"
		sleeperCfg := ownPid(ctrCfg("sleeper", "sleep", "3600"))
		// The request must describe the checkpointed process.
		bad := ownPid(ctrCfg("sleeper", "sleep", "10"))
		_, _, err := e.rt.RestorePod(ctx, legacy.RestorePodRequest{CheckpointPath: out, Config: podConfig,
			ContainerConfigs: []*runtime.ContainerConfig{counterCfg, bad}})
		if err == nil || !strings.Contains(err.Error(), "command differs") {
			t.Fatalf("restore with another command: %v", err)
		}
		t0 = time.Now()
		sbID, ids, err := e.rt.RestorePod(ctx, legacy.RestorePodRequest{CheckpointPath: out, Config: podConfig,
			ContainerConfigs: []*runtime.ContainerConfig{counterCfg, sleeperCfg}})
		if err != nil {
			t.Fatal(err)
		}
		podTime := time.Since(t0)
		for _, name := range []string{"counter-restored", "sleeper"} {
			st, err := e.rt.ContainerStatus(ctx, ids[name], false)
			if err != nil || st.State != legacy.ContainerStateCreated || st.Name != name {
				t.Fatalf("%s after RestorePod: %+v %v", name, st, err)
			}
			if err := e.rt.StartContainer(ctx, ids[name]); err != nil {
				t.Fatalf("start %s: %v", name, err)
			}
		}
		t.Logf("RestorePod: %v; with both containers started %v", podTime, time.Since(t0))
		restored := waitCounts(t, filepath.Join(podConfig.LogDirectory, "counter.log"), 10)
		checkContinues(t, "pod", restored, before, after)
		res, err := e.rt.ExecSync(ctx, ids["counter-restored"], []string{"cat", "/kept"}, 10*time.Second)
		if err != nil || strings.TrimSpace(string(res.Stdout)) != "kept" {
			t.Fatalf("exec in the pod's restored container: %v %+v", err, res)
		}
		st, err := e.rt.PodSandboxStatus(ctx, sbID, false)
		if err != nil || st.State != legacy.SandboxStateReady {
			t.Fatalf("restored sandbox %+v %v", st, err)
		}
	})
}

// requireCRIU probes the host's CRIU for real (a dump and restore of a process of the probe's
// own) and makes the runtime under test use that result: the test fails when no CRIU is
// installed, and is skipped, with the probe's reason, only when an installed CRIU cannot work here.
func requireCRIU(t *testing.T, ctx context.Context) {
	t.Helper()
	info := criu.ProbeCRIU(ctx)
	switch {
	case info.Missing:
		t.Fatalf("%v", info.Err)
	case info.Err != nil:
		t.Skipf("CRIU cannot checkpoint on this host (the probe's reason): %v", info.Err)
	}
	t.Logf("CRIU %s at %s, probed in %v", info.Version, info.Path, info.Took)
	saved := criu.CheckCRIU
	t.Cleanup(func() { criu.CheckCRIU = saved })
	criu.CheckCRIU = func() criu.CriuInfo { return info }
}
