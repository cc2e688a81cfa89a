//go:build integration

package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCrictlStats runs `crictl stats` (the table view, crictl's default) three times in a row
// against a pod with two running containers. crictl lists the stats twice, one second apart, and
// fails with "cpu stat is not updated during sample" when a container's CPU timestamp did not
// move between the two; the daemon must read the cgroups again for the second list. Then the
// CRI calls themselves, one second apart: each answer carries newer CPU timestamps.
func TestCrictlStats(t *testing.T) {
	crictl := "/var/cache/cri-shim/bin/crictl"
	if _, err := os.Stat(crictl); err != nil {
		t.Fatalf("no crictl: run hack/setup.sh: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, args := crashEnv(t, ctx, "stats", "crishimst0", "10.93.0.0/24")
	bin := buildDaemon(t)
	d := startDaemon(t, bin, dir, args...)
	c := criClient(t, d.socket)
	const image = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	if _, err := criImageClient(t, d.socket).PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		t.Fatal(err)
	}
	podCfg := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "stats", Namespace: "stats", Uid: "stats-uid"},
		LogDirectory: filepath.Join(dir, "logs"),
		Linux:        &runtime.LinuxPodSandboxConfig{},
	}
	p, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podCfg})
	if err != nil {
		t.Fatal(err)
	}
	podID := p.PodSandboxId
	t.Cleanup(func() {
		c.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: podID})
		c.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: podID})
	})
	var ids []string
	for _, ctr := range []struct {
		name string
		cmd  []string
	}{
		// A light load (not a busy loop: the machine is shared), and an idle container.
		{"worker", []string{"sh", "-c", "while :; do i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; sleep 0.05; done"}},
		{"idle", []string{"sleep", "3600"}},
	} {
		cr, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: podID, SandboxConfig: podCfg, Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: ctr.name},
			Image:    &runtime.ImageSpec{Image: image},
			Command:  ctr.cmd,
			LogPath:  ctr.name + ".log",
			Linux:    &runtime.LinuxContainerConfig{},
		}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, cr.ContainerId)
	}

	run := func(a ...string) (string, error) {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, crictl, append([]string{"--config", "/dev/null", "-r", "unix://" + d.socket, "--timeout", "10s"}, a...)...).CombinedOutput()
		return string(out), err
	}
	// Three table calls in a row; each lists both running containers by name.
	for i := range 3 {
		out, err := run("stats")
		if err != nil {
			t.Fatalf("crictl stats, call %d: %v\n%s", i+1, err, out)
		}
		for _, name := range []string{"worker", "idle"} {
			if !strings.Contains(out, name) {
				t.Fatalf("crictl stats, call %d: no line for %s:\n%s", i+1, name, out)
			}
		}
		if i == 0 {
			t.Logf("crictl stats:\n%s", out)
		}
	}
	// The same for one container (crictl's ID filter), and for the pod.
	if out, err := run("stats", ids[0]); err != nil || !strings.Contains(out, "worker") {
		t.Fatalf("crictl stats %s: %v\n%s", ids[0], err, out)
	}
	if out, err := run("statsp"); err != nil || !strings.Contains(out, "stats") {
		t.Fatalf("crictl statsp: %v\n%s", err, out)
	}
	out, err := run("stats", "-o", "json")
	if err != nil {
		t.Fatalf("crictl stats -o json: %v\n%s", err, out)
	}
	var js struct {
		Stats []struct {
			Attributes struct{ ID string }
			CPU        struct {
				Timestamp            string
				UsageCoreNanoSeconds struct{ Value string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &js); err != nil || len(js.Stats) != 2 {
		t.Fatalf("crictl stats -o json: %v\n%s", err, out)
	}

	// The CRI calls one second apart: every answer has newer CPU timestamps than the one before,
	// whichever call gave it.
	last := map[string]int64{}
	check := func(call, id string, cpu *runtime.CpuUsage) {
		t.Helper()
		if cpu == nil || cpu.Timestamp == 0 || cpu.UsageCoreNanoSeconds == nil {
			t.Fatalf("%s: %s has no CPU usage: %v", call, id, cpu)
		}
		if prev, ok := last[id]; ok && cpu.Timestamp <= prev {
			t.Fatalf("%s, a second after the previous answer: %s's CPU timestamp %d is not newer than %d", call, id, cpu.Timestamp, prev)
		}
		last[id] = cpu.Timestamp
	}
	for range 2 {
		time.Sleep(time.Second)
		ls, err := c.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{})
		if err != nil || len(ls.Stats) != 2 {
			t.Fatalf("ListContainerStats: %v %v", ls, err)
		}
		for _, s := range ls.Stats {
			check("ListContainerStats", s.Attributes.Id, s.Cpu)
		}
		time.Sleep(time.Second)
		cs, err := c.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: ids[0]})
		if err != nil {
			t.Fatal(err)
		}
		check("ContainerStats", ids[0], cs.Stats.Cpu)
		time.Sleep(time.Second)
		ps, err := c.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: podID})
		if err != nil {
			t.Fatal(err)
		}
		check("PodSandboxStats", podID, ps.Stats.Linux.Cpu)
		for _, s := range ps.Stats.Linux.Containers {
			check("PodSandboxStats", s.Attributes.Id, s.Cpu)
		}
		time.Sleep(time.Second)
		lps, err := c.ListPodSandboxStats(ctx, &runtime.ListPodSandboxStatsRequest{})
		if err != nil || len(lps.Stats) != 1 {
			t.Fatalf("ListPodSandboxStats: %v %v", lps, err)
		}
		check("ListPodSandboxStats", podID, lps.Stats[0].Linux.Cpu)
		for _, s := range lps.Stats[0].Linux.Containers {
			check("ListPodSandboxStats", s.Attributes.Id, s.Cpu)
		}
	}
}
