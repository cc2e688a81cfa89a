package server

import (
	"context"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func containerConfig(name string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name, Attempt: 1},
		Image:    &runtime.ImageSpec{Image: "busybox"},
		Labels:   map[string]string{"app": name},
		LogPath:  name + ".log",
	}
}

func TestContainerValidation(t *testing.T) {
	c, _ := sandboxClient(t)
	ctx := context.Background()
	check := func(what string, err error, want codes.Code) {
		t.Helper()
		if status.Code(err) != want {
			t.Errorf("%s: got %v, want %v", what, err, want)
		}
	}
	_, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{Config: containerConfig("a")})
	check("create without sandbox id", err, codes.InvalidArgument)
	_, err = c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: "x"})
	check("create without config", err, codes.InvalidArgument)
	_, err = c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: "x", Config: &runtime.ContainerConfig{Image: &runtime.ImageSpec{Image: "i"}}})
	check("create without metadata", err, codes.InvalidArgument)
	_, err = c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: "x", Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "n"}}})
	check("create without image", err, codes.InvalidArgument)
	cfg := containerConfig("a")
	cfg.LogPath = "../../etc/passwd"
	_, err = c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: "x", Config: cfg})
	check("create with an escaping log path", err, codes.InvalidArgument)
	_, err = c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: "unknown", Config: containerConfig("a")})
	check("create in an unknown sandbox", err, codes.NotFound)
	_, err = c.StartContainer(ctx, &runtime.StartContainerRequest{})
	check("start without id", err, codes.InvalidArgument)
	_, err = c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: "unknown"})
	check("start unknown", err, codes.NotFound)
	_, err = c.StopContainer(ctx, &runtime.StopContainerRequest{})
	check("stop without id", err, codes.InvalidArgument)
	_, err = c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: "unknown"})
	check("stop unknown", err, codes.OK)
	_, err = c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{})
	check("remove without id", err, codes.InvalidArgument)
	_, err = c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: "unknown"})
	check("remove unknown", err, codes.OK)
	_, err = c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{})
	check("status without id", err, codes.InvalidArgument)
	_, err = c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: "unknown"})
	check("status unknown", err, codes.NotFound)
	_, err = c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: "x"})
	check("exec without cmd", err, codes.InvalidArgument)
	_, err = c.ExecSync(ctx, &runtime.ExecSyncRequest{Cmd: []string{"ls"}})
	check("exec without id", err, codes.InvalidArgument)
	_, err = c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: "unknown", Cmd: []string{"ls"}})
	check("exec unknown", err, codes.NotFound)
	_, err = c.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{})
	check("update without id", err, codes.InvalidArgument)
	_, err = c.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{})
	check("reopen without id", err, codes.InvalidArgument)
}

func TestContainerLifecycle(t *testing.T) {
	c, _ := sandboxClient(t)
	ctx := context.Background()
	pcfg := podConfig("p1")
	pcfg.LogDirectory = "/var/log/pods/p1"
	sb, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: pcfg})
	if err != nil {
		t.Fatal(err)
	}
	req := &runtime.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: containerConfig("app"), SandboxConfig: pcfg}
	cr, err := c.CreateContainer(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateContainer(ctx, req); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("duplicate name: %v, want AlreadyExists", err)
	}
	id := cr.ContainerId
	st, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
	if err != nil {
		t.Fatal(err)
	}
	if s := st.Status; s.State != runtime.ContainerState_CONTAINER_CREATED || s.Metadata.Name != "app" || s.Metadata.Attempt != 1 ||
		s.LogPath != "/var/log/pods/p1/app.log" || s.Labels["app"] != "app" || s.StartedAt != 0 || s.Image.GetImage() != "busybox" {
		t.Fatalf("status after create: %+v", s)
	}
	if _, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("exec in a created container: %v", err)
	}
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	ex, err := c.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"echo", "hi"}, Timeout: 5})
	if err != nil || string(ex.Stdout) != "echo hi\n" {
		t.Fatalf("exec: %v %v", ex, err)
	}
	for _, f := range []*runtime.ContainerFilter{
		{Id: id[:8]},
		{PodSandboxId: sb.PodSandboxId},
		{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_RUNNING}},
		{LabelSelector: map[string]string{"app": "app"}},
	} {
		l, err := c.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
		if err != nil || len(l.Containers) != 1 || l.Containers[0].Id != id || l.Containers[0].PodSandboxId != sb.PodSandboxId {
			t.Fatalf("list %v: %v %v", f, l, err)
		}
	}
	for _, f := range []*runtime.ContainerFilter{
		{Id: "nope"},
		{State: &runtime.ContainerStateValue{State: runtime.ContainerState_CONTAINER_EXITED}},
		{LabelSelector: map[string]string{"app": "other"}},
	} {
		l, err := c.ListContainers(ctx, &runtime.ListContainersRequest{Filter: f})
		if err != nil || len(l.Containers) != 0 {
			t.Fatalf("list %v: %v %v", f, l, err)
		}
	}
	if _, err := c.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id,
		Linux: &runtime.LinuxContainerResources{CpuShares: 256}}); err != nil {
		t.Fatal(err)
	}
	st, _ = c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
	if st.Status.GetResources().GetLinux().GetCpuShares() != 256 {
		t.Fatalf("resources %v", st.Status.GetResources())
	}
	if _, err := c.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 1}); err != nil {
		t.Fatal(err)
	}
	st, _ = c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
	if st.Status.State != runtime.ContainerState_CONTAINER_EXITED || st.Status.FinishedAt == 0 {
		t.Fatalf("after stop: %+v", st.Status)
	}
	if _, err := c.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("second stop: %v", err)
	}
	if _, err := c.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id}); status.Code(err) != codes.NotFound {
		t.Fatalf("status after remove: %v", err)
	}
}

// The CRI status carries the runtime's own message, never the termination message: the kubelet
// reads the termination-message file itself and appends it to what the runtime says.
func TestCRIContainerStatusLeavesOutTheTerminationMessage(t *testing.T) {
	d := &legacy.ContainerDetails{
		ContainerStatus: legacy.ContainerStatus{State: legacy.ContainerStateExited, Message: "DONE"},
		Config:          &runtime.ContainerConfig{},
	}
	if got := toCRIContainerStatus(d).GetMessage(); got != "" {
		t.Errorf("message %q, want none", got)
	}
	d.RuntimeMessage, d.Message = "start failed", "start failed"
	if got := toCRIContainerStatus(d).GetMessage(); got != "start failed" {
		t.Errorf("message %q, want %q", got, "start failed")
	}
}
