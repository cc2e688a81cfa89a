//go:build integration

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"

	"github.com/cri-shim/cri-shim/test/critest/testregistry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// managedContainerdPids lists the managed containerd processes of the daemon whose state dir is
// dir/state.
func managedContainerdPids(dir string) []int {
	return pgrepPids("containerd --config " + filepath.Join(dir, "state", "containerd"))
}

// pgrepPids lists the processes whose command line matches pattern (pgrep -f).
func pgrepPids(pattern string) []int {
	out, _ := exec.Command("pgrep", "-f", pattern).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// crashEnv is a registry serving the test images, a daemon dir and a CNI config with its own
// bridge, for the tests that kill things under running pods.
func crashEnv(t *testing.T, ctx context.Context, name, bridge, subnet string) (dir string, args []string) {
	t.Helper()
	reg, err := testregistry.Start(ctx, testregistry.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	dir, err = os.MkdirTemp("/tmp", "crishim-it-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.UnmountAll(dir); os.RemoveAll(dir) }) // the shared pause rootfs stays mounted by design
	hosts := filepath.Join(dir, "certs.d")
	if err := reg.WriteHostsDir(hosts); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "net.d")
	os.MkdirAll(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "10-test.conflist"), []byte(`{"cniVersion":"1.0.0","name":"`+name+`","plugins":[{"type":"bridge","bridge":"`+bridge+`","isGateway":true,"ipam":{"type":"host-local","ranges":[[{"subnet":"`+subnet+`"}]],"dataDir":"`+filepath.Join(dir, "ipam")+`"}},{"type":"portmap","capabilities":{"portMappings":true}}]}`), 0o644)
	t.Cleanup(func() { exec.Command("ip", "link", "delete", bridge).Run() })
	return dir, []string{"--registry-config-path", hosts, "--cni-conf-dir", conf}
}

// TestDaemonSurvivesContainerdCrash kills the managed containerd under a running pod: the daemon
// restarts it, reconnects by itself, keeps the pod, and runs new pods afterwards.
func TestDaemonSurvivesContainerdCrash(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, args := crashEnv(t, ctx, "crash", "crishimcr0", "10.98.0.0/24")
	bin := buildDaemon(t)
	d := startDaemon(t, bin, dir, args...)
	c := criClient(t, d.socket)
	pod := func(name string) string {
		t.Helper()
		resp, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "crash", Uid: name + "-uid"},
			Linux:    &runtime.LinuxPodSandboxConfig{},
		}})
		if err != nil {
			t.Fatalf("run pod %s: %v", name, err)
		}
		t.Cleanup(func() {
			c.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: resp.PodSandboxId})
			c.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: resp.PodSandboxId})
		})
		return resp.PodSandboxId
	}
	first := pod("before")

	pids := managedContainerdPids(dir)
	if len(pids) != 1 {
		t.Fatalf("want one managed containerd, found %v", pids)
	}
	old := pids[0]
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// While containerd is down, calls that need it fail with Unavailable (never Unknown or
	// Internal: the kubelet retries Unavailable); calls served from memory keep working.
	probe := probeWhileDown(t, ctx, c, criImageClient(t, d.socket), dir, old)
	t.Logf("calls while containerd was down: %v", probe)
	if probe[codes.Unavailable] == 0 {
		t.Errorf("no call got Unavailable while containerd was down: %v", probe)
	}

	// Until a new containerd serves, the pod's state is served from memory; then the runtime is
	// ready again without anyone restarting the daemon.
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: first})
		if err != nil {
			t.Fatalf("status of the pod while containerd restarts: %v", err)
		}
		if st.Status.State != runtime.PodSandboxState_SANDBOX_READY {
			t.Fatalf("pod not ready after a containerd crash: %v", st.Status.State)
		}
		now := managedContainerdPids(dir)
		s, err := c.Status(ctx, &runtime.StatusRequest{})
		if len(now) == 1 && now[0] != old && err == nil && s.Status.Conditions[0].Status {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("runtime not ready again after a containerd crash: containerd %v, status %v %v", now, s, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// New work goes through the reconnected client.
	second := pod("after")
	list, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, p := range list.Items {
		seen[p.Id] = p.State == runtime.PodSandboxState_SANDBOX_READY
	}
	if !seen[first] || !seen[second] {
		t.Fatalf("pods after the crash: %v", list.Items)
	}
}

// TestDaemonKilledAndRestarted kills the daemon with SIGKILL under a running pod and container and
// starts it again on the same dirs: everything is recovered and the container's log keeps flowing.
func TestDaemonKilledAndRestarted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, args := crashEnv(t, ctx, "kill", "crishimkl0", "10.97.0.0/24")

	bin := buildDaemon(t)
	d := startDaemon(t, bin, dir, args...)
	c := criClient(t, d.socket)
	const image = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	if _, err := criImageClient(t, d.socket).PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}
	podCfg := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "survivor", Namespace: "kill", Uid: "survivor-uid"},
		LogDirectory: filepath.Join(dir, "logs"),
		Linux:        &runtime.LinuxPodSandboxConfig{},
	}
	p, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		t.Fatal(err)
	}
	podID := p.PodSandboxId
	cr, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: podCfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "ticker"},
		Image:    &runtime.ImageSpec{Image: image},
		Command:  []string{"sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"},
		LogPath:  "ticker.log",
		Linux:    &runtime.LinuxContainerConfig{},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctrID := cr.ContainerId
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: ctrID}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)

	// SIGKILL: no chance to clean up. Output keeps being written while the daemon is down.
	d.cmd.Process.Kill()
	d.cmd.Wait()
	time.Sleep(time.Second)
	d = startDaemon(t, bin, dir, args...)
	c = criClient(t, d.socket)
	// Registered after the restarted daemon, so it runs before that daemon is stopped.
	t.Cleanup(func() {
		c.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: podID})
		c.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: podID})
	})

	ps, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: podID})
	if err != nil || ps.Status.State != runtime.PodSandboxState_SANDBOX_READY || ps.Status.Network.GetIp() == "" {
		t.Fatalf("pod after the restart: %v %v", ps, err)
	}
	cs, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: ctrID})
	if err != nil || cs.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("container after the restart: %v %v", cs, err)
	}
	// A new container with the same name and attempt is still refused: the name stayed reserved.
	if _, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: podCfg, Config: &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: "ticker"}, Image: &runtime.ImageSpec{Image: image}, Linux: &runtime.LinuxContainerConfig{},
	}}); err == nil {
		t.Fatal("a second container named ticker was created after the restart")
	}
	// The log keeps flowing, with consecutive ticks: nothing lost or doubled across the restart.
	time.Sleep(time.Second)
	data, err := os.ReadFile(cs.Status.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	var ticks []int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && f[3] == "tick" {
			n, _ := strconv.Atoi(f[4])
			ticks = append(ticks, n)
		}
	}
	if len(ticks) < 20 {
		t.Fatalf("only %d ticks in the log:\n%s", len(ticks), data)
	}
	for i, n := range ticks {
		if n != i {
			t.Fatalf("tick %d is %d: lines lost or doubled across the restart", i, n)
		}
	}
}

func criImageClient(t *testing.T, socket string) runtime.ImageServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtime.NewImageServiceClient(conn)
}

// probeWhileDown calls RPCs that need containerd (running a pod, image and stats calls) in a
// loop from the moment containerd (pid old) was killed until a new one serves, and counts the
// codes they get. It fails the test on Unknown or Internal. A pod that could be run is removed.
func probeWhileDown(t *testing.T, ctx context.Context, c runtime.RuntimeServiceClient, img runtime.ImageServiceClient, dir string, old int) map[codes.Code]int {
	t.Helper()
	got := map[codes.Code]int{}
	note := func(what string, err error) {
		code := status.Code(err)
		got[code]++
		if code == codes.Unknown || code == codes.Internal {
			t.Errorf("%s while containerd is down: %v", what, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		name := fmt.Sprintf("down-%d", i)
		resp, err := c.RunPodSandbox(cctx, &runtime.RunPodSandboxRequest{Config: &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: name, Namespace: "crash", Uid: name + "-uid"},
			Linux:    &runtime.LinuxPodSandboxConfig{},
		}})
		note("RunPodSandbox", err)
		if err == nil {
			id := resp.PodSandboxId
			t.Cleanup(func() {
				c.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: id})
				c.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: id})
			})
		}
		_, err = img.ImageFsInfo(cctx, &runtime.ImageFsInfoRequest{})
		note("ImageFsInfo", err)
		_, err = img.PullImage(cctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: "registry.k8s.io/pause:3.10"}})
		note("PullImage", err)
		_, err = c.ListPodSandboxStats(cctx, &runtime.ListPodSandboxStatsRequest{})
		note("ListPodSandboxStats", err)
		cancel()
		now := managedContainerdPids(dir)
		if len(now) == 1 && now[0] != old && got[codes.OK] > 0 {
			break // a new containerd answers again
		}
	}
	return got
}
