package server

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/legacy"
)

// checkpointer is the backend's checkpoint/restore part; a backend without one answers
// Unimplemented.
func (s *RuntimeServer) checkpointer() (legacy.Checkpointer, error) {
	cp, ok := s.opts.Backend.(legacy.Checkpointer)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "checkpoint/restore is not supported by this runtime")
	}
	return cp, nil
}

// CheckpointContainer writes a checkpoint archive of a running container to the request's
// location.
func (s *RuntimeServer) CheckpointContainer(ctx context.Context, req *runtime.CheckpointContainerRequest) (*runtime.CheckpointContainerResponse, error) {
	cp, err := s.checkpointer()
	if err != nil {
		return nil, err
	}
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	if req.GetLocation() == "" {
		return nil, status.Error(codes.InvalidArgument, "location is required")
	}
	if req.GetTimeout() < 0 {
		return nil, status.Error(codes.InvalidArgument, "timeout must not be negative")
	}
	timeout := time.Duration(req.GetTimeout()) * time.Second
	if err := cp.CheckpointContainer(ctx, req.GetContainerId(), req.GetLocation(), timeout); err != nil {
		return nil, toStatus(err)
	}
	return &runtime.CheckpointContainerResponse{}, nil
}

// CheckpointPod checkpoints the selected running containers of a pod, paused together, into the
// request's empty output directory.
func (s *RuntimeServer) CheckpointPod(ctx context.Context, req *runtime.CheckpointPodRequest) (*runtime.CheckpointPodResponse, error) {
	cp, err := s.checkpointer()
	if err != nil {
		return nil, err
	}
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "pod_sandbox_id is required")
	}
	if req.GetOutputPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "output_path is required")
	}
	if len(req.GetContainerIds()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "container_ids is required")
	}
	if err := cp.CheckpointPod(ctx, req.GetPodSandboxId(), req.GetOutputPath(), req.GetContainerIds(), req.GetOptions()); err != nil {
		return nil, toStatus(err)
	}
	return &runtime.CheckpointPodResponse{}, nil
}

// RestorePod restores a pod checkpoint into a new sandbox with created containers.
func (s *RuntimeServer) RestorePod(ctx context.Context, req *runtime.RestorePodRequest) (*runtime.RestorePodResponse, error) {
	if err := refuseReservedLabels("sandbox config", req.GetConfig().GetLabels()); err != nil {
		return nil, err
	}
	for _, c := range req.GetContainerConfigs() {
		if err := refuseReservedLabels("container config", c.GetLabels()); err != nil {
			return nil, err
		}
	}
	cp, err := s.checkpointer()
	if err != nil {
		return nil, err
	}
	if req.GetCheckpointPath() == "" {
		return nil, status.Error(codes.InvalidArgument, "checkpoint_path is required")
	}
	if req.GetConfig() == nil {
		return nil, status.Error(codes.InvalidArgument, "config is required")
	}
	if len(req.GetContainerConfigs()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "container_configs is required")
	}
	id, ctrs, err := cp.RestorePod(ctx, legacy.RestorePodRequest{
		CheckpointPath: req.GetCheckpointPath(), Config: req.GetConfig(), RuntimeHandler: req.GetRuntimeHandler(),
		Options: req.GetOptions(), ContainerConfigs: req.GetContainerConfigs(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	resp := &runtime.RestorePodResponse{PodSandboxId: id}
	for _, cfg := range req.GetContainerConfigs() {
		name := cfg.GetMetadata().GetName()
		resp.RestoredContainers = append(resp.RestoredContainers, &runtime.RestoredContainer{Name: name, ContainerId: ctrs[name]})
	}
	return resp, nil
}
