package server

import (
	"context"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// StreamURLs is the streaming server as the CRI services need it: it validates a request and
// returns the single-use URL that serves it.
type StreamURLs interface {
	GetExec(*runtime.ExecRequest) (*runtime.ExecResponse, error)
	GetAttach(*runtime.AttachRequest) (*runtime.AttachResponse, error)
	GetPortForward(*runtime.PortForwardRequest) (*runtime.PortForwardResponse, error)
}

// Exec returns the URL that runs a command in a running container: an unknown container is
// NotFound, one that does not run FailedPrecondition, a request without any stream or with tty
// and stderr InvalidArgument.
func (s *RuntimeServer) Exec(ctx context.Context, req *runtime.ExecRequest) (*runtime.ExecResponse, error) {
	if s.opts.Streaming == nil {
		return nil, status.Error(codes.Unimplemented, "no streaming server")
	}
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	if err := legacy.ValidateCommand(req.GetCmd()); err != nil {
		return nil, toStatus(err)
	}
	if err := checkStreams(req.GetStdin(), req.GetStdout(), req.GetStderr(), req.GetTty()); err != nil {
		return nil, err
	}
	id, err := s.runningContainerID(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r := proto.Clone(req).(*runtime.ExecRequest)
	r.ContainerId = id
	resp, err := s.opts.Streaming.GetExec(r)
	return resp, toStatus(err)
}

// Attach returns the URL that attaches to a running container's stdio, with the same validation
// as Exec.
func (s *RuntimeServer) Attach(ctx context.Context, req *runtime.AttachRequest) (*runtime.AttachResponse, error) {
	if s.opts.Streaming == nil {
		return nil, status.Error(codes.Unimplemented, "no streaming server")
	}
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	if err := checkStreams(req.GetStdin(), req.GetStdout(), req.GetStderr(), req.GetTty()); err != nil {
		return nil, err
	}
	id, err := s.runningContainerID(ctx, req.GetContainerId())
	if err != nil {
		return nil, err
	}
	r := proto.Clone(req).(*runtime.AttachRequest)
	r.ContainerId = id
	resp, err := s.opts.Streaming.GetAttach(r)
	return resp, toStatus(err)
}

// PortForward returns the URL that forwards ports of a ready pod sandbox: an unknown sandbox is
// NotFound, one that is not ready FailedPrecondition, a port outside 1-65535 InvalidArgument.
func (s *RuntimeServer) PortForward(ctx context.Context, req *runtime.PortForwardRequest) (*runtime.PortForwardResponse, error) {
	if s.opts.Streaming == nil {
		return nil, status.Error(codes.Unimplemented, "no streaming server")
	}
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "pod_sandbox_id is required")
	}
	for _, p := range req.GetPort() {
		if p <= 0 || p > 65535 {
			return nil, status.Errorf(codes.InvalidArgument, "invalid port %d", p)
		}
	}
	st, err := s.opts.Backend.PodSandboxStatus(ctx, req.GetPodSandboxId(), false)
	if err != nil {
		return nil, toStatus(err)
	}
	if st.State != legacy.SandboxStateReady {
		return nil, status.Errorf(codes.FailedPrecondition, "sandbox %s is not ready", st.ID)
	}
	r := proto.Clone(req).(*runtime.PortForwardRequest)
	r.PodSandboxId = st.ID
	resp, err := s.opts.Streaming.GetPortForward(r)
	return resp, toStatus(err)
}

// checkStreams rejects a request that asks for no stream, or for stderr on a terminal (one stream
// only there).
func checkStreams(stdin, stdout, stderr, tty bool) error {
	if !stdin && !stdout && !stderr {
		return status.Error(codes.InvalidArgument, "one of stdin, stdout or stderr must be set")
	}
	if tty && stderr {
		return status.Error(codes.InvalidArgument, "tty and stderr cannot both be set")
	}
	return nil
}

// runningContainerID resolves a container ID (or unique prefix) to the full ID of a running
// container: NotFound when unknown, FailedPrecondition when it does not run.
func (s *RuntimeServer) runningContainerID(ctx context.Context, id string) (string, error) {
	d, err := s.opts.Backend.ContainerStatus(ctx, id, false)
	if err != nil {
		return "", toStatus(err)
	}
	if d.State != legacy.ContainerStateRunning {
		return "", status.Errorf(codes.FailedPrecondition, "container %s is %s, not running", d.ID.ID, d.State)
	}
	return d.ID.ID, nil
}
