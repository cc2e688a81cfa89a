//go:build integration

package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestPodsCLI runs a two-container pod with a hostPort and an exec probe from the daemon's
// manifests dir through `cri-shim pods`: apply, list, describe, logs, delete.
func TestPodsCLI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, args := crashEnv(t, ctx, "pods", "crishimpd0", "10.97.0.0/24")
	bin := buildDaemon(t)
	d := startDaemon(t, bin, dir, args...)
	flags := []string{"--socket", d.socket, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"),
		"--static-pods-dir", filepath.Join(dir, "manifests")}
	pods := func(a ...string) (string, error) {
		out, err := exec.CommandContext(ctx, bin, append(append([]string{"pods"}, flags...), a...)...).CombinedOutput()
		return string(out), err
	}
	manifest := filepath.Join(dir, "web.yaml")
	os.WriteFile(manifest, []byte(`apiVersion: v1
kind: Pod
metadata: {name: web, namespace: edge}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: server
    image: busybox:1.37.0
    command: [sh, -c, 'mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www']
    ports: [{containerPort: 8080, hostPort: 18097}]
    livenessProbe:
      exec: {command: [pidof, httpd]}
      periodSeconds: 1
  - name: logger
    image: busybox:1.37.0
    command: [sh, -c, 'echo logger up; exec sleep 3600']
`), 0o644)
	t.Cleanup(func() {
		pods("delete", "edge/web")
	})
	out, err := pods("apply", manifest)
	if err != nil || !strings.Contains(out, "pod/web created") {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if out, err := pods("apply", filepath.Join(dir, "missing.yaml")); err == nil {
		t.Fatalf("apply of a missing file: %s", out)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		out, err = pods("list")
		if err == nil && strings.Contains(out, "2/2") && strings.Contains(out, "Running") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod not running: %v\n%s\ndaemon:\n%s", err, out, d.out.String())
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("pods list:\n%s", out)
	var body string
	for i := 0; i < 50 && body != "served"; i++ {
		if resp, err := http.Get("http://127.0.0.1:18097/"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = strings.TrimSpace(string(b))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if body != "served" {
		t.Fatalf("host port: %q", body)
	}
	checkProtected(t, ctx, d.socket, pods)
	out, err = pods("describe", "edge/web")
	if err != nil || !strings.Contains(out, "Started container server") || !strings.Contains(out, "Started container logger") ||
		!strings.Contains(out, "Ready:         true") {
		t.Fatalf("describe: %v\n%s", err, out)
	}
	if out, err = pods("logs", "edge/web", "-c", "logger"); err != nil || strings.TrimSpace(out) != "logger up" {
		t.Fatalf("logs: %v\n%q", err, out)
	}
	if out, err = pods("logs", "edge/web"); err == nil {
		t.Fatalf("logs without -c of a two-container pod: %s", out)
	}
	out, err = pods("delete", "edge/web")
	if err != nil || !strings.Contains(out, "pod/web deleted") {
		t.Fatalf("delete: %v\n%s", err, out)
	}
	if out, _ = pods("list"); strings.Contains(out, "web") {
		t.Fatalf("after delete:\n%s", out)
	}
	if _, err := http.Get("http://127.0.0.1:18097/"); err == nil {
		t.Error("the host port still answers after delete")
	}
}

// checkProtected plays a kubelet's orphan cleanup and container GC on the running standalone pod
// through the CRI socket: StopContainer, RemoveContainer, StopPodSandbox, RemovePodSandbox and
// the resource updates are refused with FailedPrecondition naming the manifest, and the pod keeps
// running with the same sandbox and containers.
func checkProtected(t *testing.T, ctx context.Context, socket string, pods func(...string) (string, error)) {
	t.Helper()
	c := criClient(t, socket)
	sbs, err := c.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{
		LabelSelector: map[string]string{"io.cri-shim.owner": "standalone"}}})
	if err != nil || len(sbs.Items) != 1 {
		t.Fatalf("standalone sandboxes: %v %v", sbs, err)
	}
	sb := sbs.Items[0].Id
	ctrs, err := c.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: sb}})
	if err != nil || len(ctrs.Containers) != 2 {
		t.Fatalf("containers: %v %v", ctrs, err)
	}
	before := map[string]bool{}
	for _, ctr := range ctrs.Containers {
		before[ctr.Id] = true
	}
	want := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "cri-shim's standalone pods (manifest ") ||
			!strings.Contains(err.Error(), "cri-shim pods delete edge/web") {
			t.Fatalf("%s on a standalone pod: %v, want FailedPrecondition naming the manifest", what, err)
		}
	}
	for _, ctr := range ctrs.Containers {
		_, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: ctr.Id, Timeout: 1})
		want("StopContainer", err)
		_, err = c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: ctr.Id})
		want("RemoveContainer", err)
		_, err = c.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: ctr.Id,
			Linux: &runtime.LinuxContainerResources{CpuShares: 2}})
		want("UpdateContainerResources", err)
	}
	_, err = c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: sb})
	want("StopPodSandbox", err)
	_, err = c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: sb})
	want("RemovePodSandbox", err)
	t.Logf("refused: %v", err)
	// crictl (hack/setup.sh installs it) gets the same answer.
	crictl := "/var/cache/cri-shim/bin/crictl"
	if _, err := os.Stat(crictl); err != nil {
		t.Fatalf("no crictl: run hack/setup.sh: %v", err)
	}
	for _, args := range [][]string{{"stopp", sb}, {"rmp", "-f", sb}, {"rm", "-f", ctrs.Containers[0].Id}} {
		out, err := exec.CommandContext(ctx, crictl, append([]string{"-r", "unix://" + socket}, args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "owned by cri-shim's standalone pods") {
			t.Fatalf("crictl %v: %v\n%s", args, err, out)
		}
		t.Logf("crictl %v: %s", args, strings.TrimSpace(string(out)))
	}
	// Nothing changed: give a sync round the time to notice if it had.
	time.Sleep(2 * time.Second)
	st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: sb})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("sandbox after the refused calls: %v %v", st, err)
	}
	ctrs, err = c.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: sb}})
	if err != nil || len(ctrs.Containers) != 2 {
		t.Fatalf("containers after the refused calls: %v %v", ctrs, err)
	}
	for _, ctr := range ctrs.Containers {
		if !before[ctr.Id] || ctr.State != runtime.ContainerState_CONTAINER_RUNNING {
			t.Fatalf("container %s (%s) after the refused calls: %v", ctr.Id, ctr.Metadata.Name, ctr.State)
		}
	}
	if out, err := pods("list"); err != nil || !strings.Contains(out, "2/2") || !strings.Contains(out, "Running") {
		t.Fatalf("pods list after the refused calls: %v\n%s", err, out)
	}
}
