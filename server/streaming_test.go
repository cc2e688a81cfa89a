package server

import (
	"context"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeStreams hands out fixed URLs and records the requests.
type fakeStreams struct {
	exec   *runtime.ExecRequest
	attach *runtime.AttachRequest
	pf     *runtime.PortForwardRequest
}

func (f *fakeStreams) GetExec(r *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	f.exec = r
	return &runtime.ExecResponse{Url: "http://s/exec/t"}, nil
}

func (f *fakeStreams) GetAttach(r *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	f.attach = r
	return &runtime.AttachResponse{Url: "http://s/attach/t"}, nil
}

func (f *fakeStreams) GetPortForward(r *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	f.pf = r
	return &runtime.PortForwardResponse{Url: "http://s/portforward/t"}, nil
}

func TestStreamingHandlers(t *testing.T) {
	fake := legacytest.NewFakeRuntime()
	streams := &fakeStreams{}
	c := dial(t, Options{Backend: fake, Version: "test", Streaming: streams})
	ctx := context.Background()
	check := func(what string, err error, want codes.Code) {
		t.Helper()
		if status.Code(err) != want {
			t.Errorf("%s: got %v, want %v", what, err, want)
		}
	}
	sb, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("s1")})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: sb.PodSandboxId, Config: containerConfig("c1"), SandboxConfig: podConfig("s1")})
	if err != nil {
		t.Fatal(err)
	}
	id := cr.ContainerId

	_, err = c.Exec(ctx, &runtime.ExecRequest{Cmd: []string{"sh"}, Stdout: true})
	check("exec without id", err, codes.InvalidArgument)
	_, err = c.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Stdout: true})
	check("exec without cmd", err, codes.InvalidArgument)
	_, err = c.Exec(ctx, &runtime.ExecRequest{ContainerId: "unknown", Cmd: []string{"sh"}, Stdout: true})
	check("exec unknown", err, codes.NotFound)
	_, err = c.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh"}, Stdout: true})
	check("exec in a created container", err, codes.FailedPrecondition)
	_, err = c.Attach(ctx, &runtime.AttachRequest{ContainerId: id, Stdout: true})
	check("attach to a created container", err, codes.FailedPrecondition)
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh"}})
	check("exec without streams", err, codes.InvalidArgument)
	_, err = c.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh"}, Tty: true, Stdout: true, Stderr: true})
	check("exec with tty and stderr", err, codes.InvalidArgument)
	resp, err := c.Exec(ctx, &runtime.ExecRequest{ContainerId: id[:12], Cmd: []string{"sh"}, Stdin: true, Stdout: true, Tty: true})
	if err != nil || !strings.Contains(resp.Url, "/exec/") {
		t.Fatalf("exec: %v %v", resp, err)
	}
	if streams.exec.ContainerId != id || !streams.exec.Tty || !streams.exec.Stdin {
		t.Fatalf("exec request passed on: %v", streams.exec)
	}

	_, err = c.Attach(ctx, &runtime.AttachRequest{})
	check("attach without id", err, codes.InvalidArgument)
	_, err = c.Attach(ctx, &runtime.AttachRequest{ContainerId: "unknown", Stdout: true})
	check("attach unknown", err, codes.NotFound)
	_, err = c.Attach(ctx, &runtime.AttachRequest{ContainerId: id})
	check("attach without streams", err, codes.InvalidArgument)
	ar, err := c.Attach(ctx, &runtime.AttachRequest{ContainerId: id, Stdout: true, Stderr: true})
	if err != nil || !strings.Contains(ar.Url, "/attach/") || streams.attach.ContainerId != id {
		t.Fatalf("attach: %v %v", ar, err)
	}

	_, err = c.PortForward(ctx, &runtime.PortForwardRequest{})
	check("port-forward without id", err, codes.InvalidArgument)
	_, err = c.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: "unknown"})
	check("port-forward unknown", err, codes.NotFound)
	_, err = c.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: sb.PodSandboxId, Port: []int32{70000}})
	check("port-forward bad port", err, codes.InvalidArgument)
	pr, err := c.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: sb.PodSandboxId, Port: []int32{80}})
	if err != nil || !strings.Contains(pr.Url, "/portforward/") || streams.pf.PodSandboxId != sb.PodSandboxId {
		t.Fatalf("port-forward: %v %v", pr, err)
	}
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: sb.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	_, err = c.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: sb.PodSandboxId})
	check("port-forward to a stopped sandbox", err, codes.FailedPrecondition)

	// Without a streaming server: Unimplemented.
	c2 := dial(t, Options{Backend: fake, Version: "test"})
	_, err = c2.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"sh"}, Stdout: true})
	check("exec without a streaming server", err, codes.Unimplemented)
}
