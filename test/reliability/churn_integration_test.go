//go:build integration

package reliability

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podSpec is a pod of the churn: its sandbox config and two containers.
func (e *env) podConfig(ns, name string, attempt uint32) *runtime.PodSandboxConfig {
	uid := ns + "-" + name + "-uid"
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: ns, Uid: uid, Attempt: attempt},
		Hostname:     name,
		LogDirectory: filepath.Join(e.dir, "logs", uid),
		Linux: &runtime.LinuxPodSandboxConfig{CgroupParent: e.cgroup, SecurityContext: &runtime.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtime.NamespaceOption{Pid: pidMode(name)},
		}},
	}
}

// pidMode gives half the pods (by name, so that a pod run again under its name is the same) the
// kubelet's default, a PID namespace per container (the daemon runs them without a pause
// process), and the other half one PID namespace for the pod (shareProcessNamespace: they keep
// the pause process), so that both kinds go through the churn and the kills.
func pidMode(name string) runtime.NamespaceMode {
	if name != "" && (name[len(name)-1]-'0')%2 == 1 {
		return runtime.NamespaceMode_POD
	}
	return runtime.NamespaceMode_CONTAINER
}

// ctrConfig is a container printing a counter every 50ms until it gets SIGTERM.
func ctrConfig(name string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: busybox},
		Command:  []string{"sh", "-c", `trap 'exit 0' TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done`},
		LogPath:  name + ".log",
		Linux:    &runtime.LinuxContainerConfig{},
	}
}

// upPod runs a sandbox with two started containers, checked running.
func (e *env) upPod(ctx context.Context, ns, name string) (podID string, ctrIDs []string, err error) {
	cfg := e.podConfig(ns, name, 0)
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", nil, err
	}
	p, err := e.client().RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		return "", nil, fmt.Errorf("run pod %s: %w", name, err)
	}
	for _, cn := range []string{"a", "b"} {
		c, err := e.client().CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: p.PodSandboxId, SandboxConfig: cfg, Config: ctrConfig(cn)})
		if err != nil {
			return p.PodSandboxId, ctrIDs, fmt.Errorf("create %s/%s: %w", name, cn, err)
		}
		ctrIDs = append(ctrIDs, c.ContainerId)
		if _, err := e.client().StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			return p.PodSandboxId, ctrIDs, fmt.Errorf("start %s/%s: %w", name, cn, err)
		}
	}
	for _, id := range ctrIDs {
		st, err := e.client().ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			return p.PodSandboxId, ctrIDs, fmt.Errorf("status %s: %w", id, err)
		}
		if st.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
			return p.PodSandboxId, ctrIDs, fmt.Errorf("container %s of %s is %v, not running", id, name, st.Status.State)
		}
	}
	// Up once each counter has logged: its trap is set then. In a container with a PID namespace
	// of its own, sh is PID 1, and the kernel drops a SIGTERM that comes before the trap (no
	// handler), so a stop would wait out its timeout and kill.
	for _, cn := range []string{"a", "b"} {
		if err := waitLogged(ctx, filepath.Join(cfg.LogDirectory, cn+".log"), 30*time.Second); err != nil {
			return p.PodSandboxId, ctrIDs, fmt.Errorf("container %s of %s: %w", cn, name, err)
		}
	}
	return p.PodSandboxId, ctrIDs, nil
}

// waitLogged waits until the CRI log at path has a line.
func waitLogged(ctx context.Context, path string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte("\n")) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("nothing logged in %s within %s", path, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// downPod does what a kubelet does to end a pod: stop and remove its containers (each must have
// exited on SIGTERM), stop and remove the sandbox, remove the pod's log dir.
func (e *env) downPod(ctx context.Context, ns, name, podID string, ctrIDs []string) error {
	for _, id := range ctrIDs {
		if _, err := e.client().StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
			return fmt.Errorf("stop %s: %w", id, err)
		}
		st, err := e.client().ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
		// 0 from the trap; 143 (SIGTERM) when the stop came before sh had installed it.
		if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_EXITED || (st.Status.ExitCode != 0 && st.Status.ExitCode != 143) {
			return fmt.Errorf("container %s after stop: %v %v", id, st.GetStatus(), err)
		}
		if _, err := e.client().RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
			return fmt.Errorf("remove %s: %w", id, err)
		}
	}
	if _, err := e.client().StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: podID}); err != nil {
		return fmt.Errorf("stop pod %s: %w", name, err)
	}
	if _, err := e.client().RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: podID}); err != nil {
		return fmt.Errorf("remove pod %s: %w", name, err)
	}
	return os.RemoveAll(e.podConfig(ns, name, 0).LogDirectory)
}

// lifecycle runs one pod through a full life.
func (e *env) lifecycle(ctx context.Context, ns, name string) error {
	podID, ids, err := e.upPod(ctx, ns, name)
	if err != nil {
		return err
	}
	return e.downPod(ctx, ns, name, podID, ids)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestChurnLeaksNothing runs 50 pods of 2 containers through full lifecycles, 10 at a time, 3
// rounds, and counts everything a pod can leave behind before and after each round: nothing may
// grow. CHURN_PODS, CHURN_WORKERS and CHURN_ROUNDS change the size.
func TestChurnLeaksNothing(t *testing.T) {
	pods, workers, rounds := envInt("CHURN_PODS", 50), envInt("CHURN_WORKERS", 10), envInt("CHURN_ROUNDS", 3)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	e := newEnv(t, "churn", "10.93.0.0/16")
	e.start()
	e.pull(ctx, busybox)
	// Warm-up: the first pod pulls the pause image and starts what the daemon starts lazily (the
	// shared pause rootfs: its mount, snapshot and lease). While it is up, the census must see it
	// (else the counts below would prove nothing): 2 image snapshots + 2 container snapshots.
	podID, ids, err := e.upPod(ctx, "warm", "warm")
	if err != nil {
		t.Fatal(err)
	}
	up := e.census(ctx)
	t.Logf("one pod of 2 containers up: %s", up)
	if up.Containers < 3 || up.Tasks < 3 || up.Cgroups < 3 || up.NetNSFiles < 1 || up.NetNSMounts < 1 || up.Mounts < 3 ||
		up.IPAllocations < 1 || up.Shims < 1 || up.Leases+up.Snapshots < 4 || up.SharedPause != 3 || up.SandboxDirs < 1 || up.ContainerDirs < 2 {
		t.Fatalf("the census does not see a running pod: %s", up)
	}
	if err := e.downPod(ctx, "warm", "warm", podID, ids); err != nil {
		t.Fatal(err)
	}
	base := e.settle(ctx, counts{}, 5*time.Second) // settle a little: goroutines of the warm-up exit
	t.Logf("baseline: %s", base)
	for r := 0; r < rounds; r++ {
		start := time.Now()
		work := make(chan int)
		errs := make(chan error, pods)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					if err := e.lifecycle(ctx, fmt.Sprintf("churn%d", r), fmt.Sprintf("pod%d", i)); err != nil {
						errs <- err
					}
				}
			}()
		}
		for i := 0; i < pods; i++ {
			work <- i
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		took := time.Since(start)
		after := e.settle(ctx, base, 20*time.Second)
		t.Logf("round %d: %d pods x 2 containers, %d workers, %s (%.2f pods/s); after: %s",
			r+1, pods, workers, took.Round(time.Millisecond), float64(pods)/took.Seconds(), after)
		if l := leaks(base, after); len(l) > 0 {
			t.Errorf("round %d leaked: %v", r+1, l)
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	list, err := e.client().ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil || len(list.Items) != 0 {
		t.Fatalf("pods left: %v %v", list, err)
	}
	cl, err := e.client().ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil || len(cl.Containers) != 0 {
		t.Fatalf("containers left: %v %v", cl, err)
	}
}
