package server

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunPodSandbox creates and starts a pod sandbox.
func (s *RuntimeServer) RunPodSandbox(ctx context.Context, req *runtime.RunPodSandboxRequest) (*runtime.RunPodSandboxResponse, error) {
	config := req.GetConfig()
	if err := legacy.ValidateSandboxConfig(config); err != nil {
		return nil, toStatus(err)
	}
	if err := refuseReservedLabels("sandbox config", config.GetLabels()); err != nil {
		return nil, err
	}
	if !s.opts.Backend.HasRuntimeHandler(req.GetRuntimeHandler()) {
		return nil, status.Errorf(codes.InvalidArgument, "unknown runtime handler %q (configured: %s)", req.GetRuntimeHandler(), strings.Join(s.opts.RuntimeHandlers, ", "))
	}
	id, result := s.opts.Backend.RunPodSandbox(ctx, config, req.GetRuntimeHandler())
	if err := syncError(result); err != nil {
		return nil, toStatus(err)
	}
	return &runtime.RunPodSandboxResponse{PodSandboxId: id}, nil
}

// StopPodSandbox stops a sandbox and its containers and tears its network down; stopping a stopped
// or an unknown sandbox succeeds (the kubelet and critest's idempotence specs expect that).
func (s *RuntimeServer) StopPodSandbox(ctx context.Context, req *runtime.StopPodSandboxRequest) (*runtime.StopPodSandboxResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "pod_sandbox_id is required")
	}
	if err := s.guardSandbox(ctx, "stop", req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	if err := syncError(s.opts.Backend.StopPodSandbox(ctx, req.GetPodSandboxId())); err != nil && !errdefs.IsNotFound(err) {
		return nil, toStatus(err)
	}
	return &runtime.StopPodSandboxResponse{}, nil
}

// RemovePodSandbox removes a sandbox; removing an absent one succeeds.
func (s *RuntimeServer) RemovePodSandbox(ctx context.Context, req *runtime.RemovePodSandboxRequest) (*runtime.RemovePodSandboxResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "pod_sandbox_id is required")
	}
	if err := s.guardSandbox(ctx, "remove", req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	if err := s.opts.Backend.RemovePodSandbox(ctx, req.GetPodSandboxId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtime.RemovePodSandboxResponse{}, nil
}

// PodSandboxStatus returns a sandbox's status; an unknown ID is NotFound.
func (s *RuntimeServer) PodSandboxStatus(ctx context.Context, req *runtime.PodSandboxStatusRequest) (*runtime.PodSandboxStatusResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "pod_sandbox_id is required")
	}
	st, err := s.opts.Backend.PodSandboxStatus(ctx, req.GetPodSandboxId(), req.GetVerbose())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtime.PodSandboxStatusResponse{
		Status:    toCRISandboxStatus(st),
		Info:      st.Info,
		Timestamp: time.Now().UnixNano(),
	}, nil
}

// ListPodSandbox lists the sandboxes that match the filter.
func (s *RuntimeServer) ListPodSandbox(ctx context.Context, req *runtime.ListPodSandboxRequest) (*runtime.ListPodSandboxResponse, error) {
	var filter *legacy.SandboxFilter
	if f := req.GetFilter(); f != nil {
		filter = &legacy.SandboxFilter{ID: f.GetId(), Labels: f.GetLabelSelector()}
		if sv := f.GetState(); sv != nil {
			st := legacy.SandboxStateNotReady
			if sv.GetState() == runtime.PodSandboxState_SANDBOX_READY {
				st = legacy.SandboxStateReady
			}
			filter.State = &st
		}
	}
	// The containerd runtime caches each sandbox's entry while its state stays.
	if l, ok := s.opts.Backend.(criSandboxLister); ok {
		items, wire, err := l.ListCRISandboxes(ctx, filter, toCRIPodSandbox)
		if err != nil {
			return nil, toStatus(err)
		}
		resp := &runtime.ListPodSandboxResponse{Items: items}
		stashSandboxEncoding(ctx, resp, wire) // list_encoding.go
		return resp, nil
	}
	list, err := s.opts.Backend.ListPodSandbox(ctx, filter)
	if err != nil {
		return nil, toStatus(err)
	}
	items := make([]*runtime.PodSandbox, 0, len(list))
	for _, st := range list {
		items = append(items, toCRIPodSandbox(st))
	}
	return &runtime.ListPodSandboxResponse{Items: items}, nil
}

// criSandboxLister lists CRI sandbox entries directly (legacy.ContainerdRuntime).
type criSandboxLister interface {
	ListCRISandboxes(ctx context.Context, filter *legacy.SandboxFilter, conv func(*legacy.SandboxStatus) *runtime.PodSandbox) ([]*runtime.PodSandbox, [][]byte, error)
}

// toCRIPodSandbox is a sandbox's ListPodSandbox entry.
func toCRIPodSandbox(st *legacy.SandboxStatus) *runtime.PodSandbox {
	return &runtime.PodSandbox{
		Id:             st.ID,
		Metadata:       sandboxMetadata(st),
		State:          criSandboxState(st.State),
		CreatedAt:      st.CreatedAt.UnixNano(),
		Labels:         st.Labels,
		Annotations:    st.Annotations,
		RuntimeHandler: st.RuntimeHandler,
	}
}

func sandboxMetadata(st *legacy.SandboxStatus) *runtime.PodSandboxMetadata {
	return &runtime.PodSandboxMetadata{Name: st.Name, Uid: string(st.UID), Namespace: st.Namespace, Attempt: st.Attempt}
}

func criSandboxState(s legacy.SandboxState) runtime.PodSandboxState {
	if s == legacy.SandboxStateReady {
		return runtime.PodSandboxState_SANDBOX_READY
	}
	return runtime.PodSandboxState_SANDBOX_NOTREADY
}

func toCRISandboxStatus(st *legacy.SandboxStatus) *runtime.PodSandboxStatus {
	var extra []*runtime.PodIP
	for _, ip := range st.AdditionalIPs {
		extra = append(extra, &runtime.PodIP{Ip: ip})
	}
	nsOpts := st.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	return &runtime.PodSandboxStatus{
		Id:        st.ID,
		Metadata:  sandboxMetadata(st),
		State:     criSandboxState(st.State),
		CreatedAt: st.CreatedAt.UnixNano(),
		Network:   &runtime.PodSandboxNetworkStatus{Ip: st.IP, AdditionalIps: extra},
		Linux: &runtime.LinuxPodSandboxStatus{Namespaces: &runtime.Namespace{Options: &runtime.NamespaceOption{
			Network:       nsOpts.GetNetwork(),
			Pid:           nsOpts.GetPid(),
			Ipc:           nsOpts.GetIpc(),
			TargetId:      nsOpts.GetTargetId(),
			UsernsOptions: nsOpts.GetUsernsOptions(),
		}}},
		Labels:         st.Labels,
		Annotations:    st.Annotations,
		RuntimeHandler: st.RuntimeHandler,
	}
}

// syncError is the error of a PodSyncResult: the operation's own error as it is when there is one
// (so that its class survives plainly), else the aggregate of the failed steps.
func syncError(r legacy.PodSyncResult) error {
	if r.SyncError != nil {
		return r.SyncError
	}
	return r.Error()
}

// toStatus maps a model error to a gRPC status by its class.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.Unknown
	switch {
	case errdefs.IsInvalidArgument(err):
		code = codes.InvalidArgument
	case errdefs.IsNotFound(err):
		code = codes.NotFound
	case errdefs.IsAlreadyExists(err):
		code = codes.AlreadyExists
	case errdefs.IsFailedPrecondition(err):
		code = codes.FailedPrecondition
	case errdefs.IsUnavailable(err):
		code = codes.Unavailable
	case errdefs.IsPermissionDenied(err):
		code = codes.PermissionDenied
	case errdefs.IsResourceExhausted(err):
		code = codes.ResourceExhausted
	case errdefs.IsNotImplemented(err):
		code = codes.Unimplemented
	case errors.Is(err, context.DeadlineExceeded) || errdefs.IsDeadlineExceeded(err):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled) || errdefs.IsCanceled(err):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}
