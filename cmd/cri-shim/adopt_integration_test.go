//go:build integration

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// previousLayout is the last commit whose containerd implementation lived in legacy/: its daemon
// wrote the records (typeurl-named sandbox and container metadata) that kuberuntime/ must still
// decode.
const previousLayout = "6ee4f6f"

// buildDaemonAt builds the daemon of commit rev of the repository this package is in, from that
// commit's tree extracted to a temp dir (the module cache is shared: no download when rev's
// modules are in it). It skips the test when rev is not in the repository, as in a shallow clone.
func buildDaemonAt(t *testing.T, ctx context.Context, rev string) string {
	t.Helper()
	top, err := exec.CommandContext(ctx, "git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout, so no daemon of commit %s to build: %v", rev, err)
	}
	repo := strings.TrimSpace(string(top))
	if err := exec.CommandContext(ctx, "git", "-C", repo, "cat-file", "-e", rev+"^{commit}").Run(); err != nil {
		t.Skipf("commit %s is not in %s (a shallow clone?): no daemon of the previous layout to build", rev, repo)
	}
	tmp := t.TempDir()
	src, tarball := filepath.Join(tmp, "src"), filepath.Join(tmp, "src.tar")
	os.Mkdir(src, 0o755)
	for _, args := range [][]string{
		{"git", "-C", repo, "archive", "--output", tarball, rev},
		{"tar", "-x", "-f", tarball, "-C", src},
	} {
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	bin := filepath.Join(tmp, "cri-shim-"+rev)
	build := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", bin, "./cmd/cri-shim")
	build.Dir = src
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the daemon of %s: %v\n%s", rev, err, out)
	}
	t.Logf("built the daemon of %s in %v", rev, time.Since(start).Round(time.Second))
	return bin
}

// removeAllPods stops and removes every pod c's daemon lists, each call bounded: the cleanup of a
// test that failed half way.
func removeAllPods(c runtime.RuntimeServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	list, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		return
	}
	for _, p := range list.Items {
		c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id})
		c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id})
	}
}

// shimPids lists the containerd shims that serve the containerd of the daemon whose state dir is
// dir/state.
func shimPids(dir string) []int {
	return pgrepPids("containerd-shim.* -address " + filepath.Join(dir, "state", "containerd") + "/")
}

// waitForLogLine waits (bounded) until the file at path holds a line containing want.
func waitForLogLine(t *testing.T, path, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line %q in %s after %v; it holds:\n%s", want, path, within, data)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAdoptPodsOfPreviousLayout runs pods with the daemon of the layout before legacy/ was split
// (its containerd implementation since in kuberuntime/), kills it with SIGKILL, and starts the
// current daemon on the same dirs: it adopts a ready pod with a running and a created container
// and a stopped pod, with their states, statuses and logs, execs in the running container, and
// stops and removes everything, leaving no shim and no mount behind. A record type renamed in
// kuberuntime/ (typeurl names) would leave the old pods unknown to the new daemon.
func TestAdoptPodsOfPreviousLayout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	oldBin := buildDaemonAt(t, ctx, previousLayout)
	newBin := buildDaemon(t)
	dir, args := crashEnv(t, ctx, "adopt", "crishimad0", "10.92.0.0/24")
	// Runs after both daemons are gone: a shim a failed run left (its containerd gone, so nothing
	// else would end it) is ended, by pid.
	t.Cleanup(func() {
		for _, pid := range shimPids(dir) {
			t.Logf("killing shim %d left behind", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})

	// The previous daemon: a ready pod with a running container (its log has a line) and a
	// created one, and a stopped pod.
	old := startDaemon(t, oldBin, dir, args...)
	oc := criClient(t, old.socket)
	t.Cleanup(func() { removeAllPods(oc) }) // runs after the new daemon's, while only a failure left something
	const image = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	if _, err := criImageClient(t, old.socket).PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}
	podCfg := func(name string) *runtime.PodSandboxConfig {
		return &runtime.PodSandboxConfig{
			Metadata:     &runtime.PodSandboxMetadata{Name: name, Namespace: "adopt", Uid: name + "-uid", Attempt: 1},
			LogDirectory: filepath.Join(dir, "logs", name),
			Labels:       map[string]string{"app": name},
			Annotations:  map[string]string{"made-by": previousLayout},
			Linux:        &runtime.LinuxPodSandboxConfig{},
		}
	}
	readyCfg, stoppedCfg := podCfg("ready"), podCfg("stopped")
	run := func(cfg *runtime.PodSandboxConfig) string {
		t.Helper()
		p, err := oc.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			t.Fatalf("run pod %s with the previous daemon: %v", cfg.Metadata.Name, err)
		}
		return p.PodSandboxId
	}
	readyID, stoppedID := run(readyCfg), run(stoppedCfg)
	if _, err := oc.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: stoppedID}); err != nil {
		t.Fatal(err)
	}
	// The running container prints a line at start, then whatever lands in /tmp/say: an exec
	// after the adoption makes it log a line then.
	create := func(name string, cmd ...string) string {
		t.Helper()
		cr, err := oc.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: readyID, SandboxConfig: readyCfg, Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: name, Attempt: 2},
			Image:    &runtime.ImageSpec{Image: image},
			Command:  cmd,
			LogPath:  name + ".log",
			Labels:   map[string]string{"container": name},
			Linux:    &runtime.LinuxContainerConfig{},
		}})
		if err != nil {
			t.Fatalf("create container %s with the previous daemon: %v", name, err)
		}
		return cr.ContainerId
	}
	runningID := create("talker", "sh", "-c",
		"echo line-from-the-previous-daemon; while true; do if [ -f /tmp/say ]; then cat /tmp/say; rm /tmp/say; fi; sleep 0.1; done")
	createdID := create("idle", "sleep", "3600")
	if _, err := oc.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: runningID}); err != nil {
		t.Fatal(err)
	}
	// What the previous daemon says of its pods and containers: the new one must say the same.
	oldPods := map[string]*runtime.PodSandboxStatus{}
	for _, id := range []string{readyID, stoppedID} {
		st, err := oc.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
		if err != nil {
			t.Fatal(err)
		}
		oldPods[id] = st.Status
	}
	oldCtrs := map[string]*runtime.ContainerStatus{}
	for _, id := range []string{runningID, createdID} {
		st, err := oc.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		oldCtrs[id] = st.Status
	}
	logPath := oldCtrs[runningID].LogPath
	if logPath == "" || oldPods[readyID].GetNetwork().GetIp() == "" {
		t.Fatalf("the previous daemon's pod has no IP or its container no log path: %v %v", oldPods[readyID], oldCtrs[runningID])
	}
	waitForLogLine(t, logPath, "line-from-the-previous-daemon", 20*time.Second)

	// SIGKILL: the previous daemon's containerd goes with it (parent-death signal), the shims and
	// so the containers live on; the new daemon starts its own containerd on the same dirs.
	old.cmd.Process.Kill()
	old.cmd.Wait()
	for deadline := time.Now().Add(30 * time.Second); len(managedContainerdPids(dir)) != 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the killed daemon's containerd still runs: %v", managedContainerdPids(dir))
		}
	}
	d := startDaemon(t, newBin, dir, args...)
	c := criClient(t, d.socket)
	t.Cleanup(func() { removeAllPods(c) }) // registered after the new daemon: runs before it is stopped

	// Both pods, with their states and what the previous daemon recorded.
	pods, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantPod := map[string]runtime.PodSandboxState{readyID: runtime.PodSandboxState_SANDBOX_READY, stoppedID: runtime.PodSandboxState_SANDBOX_NOTREADY}
	if len(pods.Items) != len(wantPod) {
		t.Fatalf("the new daemon lists %d pods, want the previous daemon's %d: %v", len(pods.Items), len(wantPod), pods.Items)
	}
	for _, p := range pods.Items {
		if want, ok := wantPod[p.Id]; !ok || p.State != want {
			t.Errorf("listed pod %s (%s) in state %v, want %v", p.Id, p.Metadata.GetName(), p.State, want)
		}
	}
	for id, want := range wantPod {
		st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id})
		if err != nil {
			t.Fatalf("status of the adopted pod %s: %v", id, err)
		}
		got, before := st.Status, oldPods[id]
		if got.State != want || got.CreatedAt != before.CreatedAt || got.Metadata.String() != before.Metadata.String() ||
			got.GetNetwork().GetIp() != before.GetNetwork().GetIp() || got.Labels["app"] != before.Labels["app"] ||
			got.Annotations["made-by"] != previousLayout {
			t.Errorf("adopted pod %s:\n got    %v\n before %v", id, got, before)
		}
	}

	// Both containers, with their states and what the previous daemon recorded.
	ctrs, err := c.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wantCtr := map[string]runtime.ContainerState{runningID: runtime.ContainerState_CONTAINER_RUNNING, createdID: runtime.ContainerState_CONTAINER_CREATED}
	if len(ctrs.Containers) != len(wantCtr) {
		t.Fatalf("the new daemon lists %d containers, want the previous daemon's %d: %v", len(ctrs.Containers), len(wantCtr), ctrs.Containers)
	}
	for _, ct := range ctrs.Containers {
		if want, ok := wantCtr[ct.Id]; !ok || ct.State != want || ct.PodSandboxId != readyID {
			t.Errorf("listed container %s (%s) of pod %s in state %v, want %v in pod %s", ct.Id, ct.Metadata.GetName(), ct.PodSandboxId, ct.State, want, readyID)
		}
	}
	for id, want := range wantCtr {
		st, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatalf("status of the adopted container %s: %v", id, err)
		}
		got, before := st.Status, oldCtrs[id]
		if got.State != want || got.CreatedAt != before.CreatedAt || got.StartedAt != before.StartedAt ||
			got.Metadata.String() != before.Metadata.String() || got.LogPath != before.LogPath ||
			got.ImageRef != before.ImageRef || got.Labels["container"] != before.Labels["container"] {
			t.Errorf("adopted container %s:\n got    %v\n before %v", id, got, before)
		}
	}

	// The log holds the previous daemon's line, and a line the container writes after the
	// adoption (on an exec's request) joins it.
	waitForLogLine(t, logPath, "line-from-the-previous-daemon", time.Second)
	ex, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: runningID, Timeout: 10,
		Cmd: []string{"sh", "-c", "echo line-after-the-adoption > /tmp/say.tmp && mv /tmp/say.tmp /tmp/say && echo asked"}})
	if err != nil || ex.ExitCode != 0 || strings.TrimSpace(string(ex.Stdout)) != "asked" {
		t.Fatalf("exec in the adopted container: %v %v", ex, err)
	}
	waitForLogLine(t, logPath, "line-after-the-adoption", 20*time.Second)

	// Everything stops and goes.
	for _, id := range []string{runningID, createdID} {
		if _, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 2}); err != nil {
			t.Fatalf("stop the adopted container %s: %v", id, err)
		}
	}
	for _, id := range []string{readyID, stoppedID} {
		if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("stop the adopted pod %s: %v", id, err)
		}
		if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
			t.Fatalf("remove the adopted pod %s: %v", id, err)
		}
	}
	if pods, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{}); err != nil || len(pods.Items) != 0 {
		t.Fatalf("pods left: %v %v", pods, err)
	}
	if ctrs, err := c.ListContainers(ctx, &runtime.ListContainersRequest{}); err != nil || len(ctrs.Containers) != 0 {
		t.Fatalf("containers left: %v %v", ctrs, err)
	}
	stopDaemon(t, d)
	for deadline := time.Now().Add(10 * time.Second); len(shimPids(dir)) != 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("shims left after every pod was removed: %v", shimPids(dir))
		}
	}
	for _, sub := range []string{"root", "state"} {
		if m := testutil.MountsUnder(filepath.Join(dir, sub)); len(m) != 0 {
			t.Fatalf("mounts left under the daemon's %s dir: %v", sub, m)
		}
	}
}
