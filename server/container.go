package server

import (
	"context"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CreateContainer creates a container in a ready sandbox.
func (s *RuntimeServer) CreateContainer(ctx context.Context, req *runtime.CreateContainerRequest) (*runtime.CreateContainerResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "pod_sandbox_id is required")
	}
	if err := legacy.ValidateContainerConfig(req.GetConfig()); err != nil {
		return nil, toStatus(err)
	}
	if err := refuseReservedLabels("container config", req.GetConfig().GetLabels()); err != nil {
		return nil, err
	}
	id, err := s.opts.Backend.CreateContainer(ctx, req.GetPodSandboxId(), req.GetConfig())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtime.CreateContainerResponse{ContainerId: id}, nil
}

// StartContainer starts a created container.
func (s *RuntimeServer) StartContainer(ctx context.Context, req *runtime.StartContainerRequest) (*runtime.StartContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	if err := s.opts.Backend.StartContainer(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtime.StartContainerResponse{}, nil
}

// StopContainer stops a running container within the grace period (seconds); stopping a stopped
// or unknown container succeeds.
func (s *RuntimeServer) StopContainer(ctx context.Context, req *runtime.StopContainerRequest) (*runtime.StopContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	if req.GetTimeout() < 0 {
		return nil, status.Error(codes.InvalidArgument, "timeout must not be negative")
	}
	if err := s.guardContainer(ctx, "stop", req.GetContainerId()); err != nil {
		return nil, err
	}
	timeout := time.Duration(min(req.GetTimeout(), int64(365*24*3600))) * time.Second
	if err := s.opts.Backend.StopContainer(ctx, req.GetContainerId(), timeout); err != nil && !errdefs.IsNotFound(err) {
		return nil, toStatus(err)
	}
	return &runtime.StopContainerResponse{}, nil
}

// RemoveContainer removes a container, killing it when it runs; removing an absent one succeeds.
func (s *RuntimeServer) RemoveContainer(ctx context.Context, req *runtime.RemoveContainerRequest) (*runtime.RemoveContainerResponse, error) {
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	if err := s.guardContainer(ctx, "remove", req.GetContainerId()); err != nil {
		return nil, err
	}
	if err := s.opts.Backend.RemoveContainer(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtime.RemoveContainerResponse{}, nil
}

// ContainerStatus returns a container's status; an unknown ID is NotFound.
func (s *RuntimeServer) ContainerStatus(ctx context.Context, req *runtime.ContainerStatusRequest) (*runtime.ContainerStatusResponse, error) {
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	d, err := s.opts.Backend.ContainerStatus(ctx, req.GetContainerId(), req.GetVerbose())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtime.ContainerStatusResponse{Status: toCRIContainerStatus(d), Info: d.Info}, nil
}

// ListContainers lists the containers that match the filter.
func (s *RuntimeServer) ListContainers(ctx context.Context, req *runtime.ListContainersRequest) (*runtime.ListContainersResponse, error) {
	var filter *legacy.ContainerFilter
	if f := req.GetFilter(); f != nil {
		filter = &legacy.ContainerFilter{ID: f.GetId(), SandboxID: f.GetPodSandboxId(), Labels: f.GetLabelSelector()}
		if sv := f.GetState(); sv != nil {
			st := modelContainerState(sv.GetState())
			filter.State = &st
		}
	}
	// The containerd runtime caches each container's entry while its state stays.
	if l, ok := s.opts.Backend.(criContainerLister); ok {
		items, wire, err := l.ListCRIContainers(ctx, filter, toCRIContainer)
		if err != nil {
			return nil, toStatus(err)
		}
		resp := &runtime.ListContainersResponse{Containers: items}
		stashEncoding(ctx, resp, wire) // list_encoding.go
		return resp, nil
	}
	list, err := s.opts.Backend.ListContainers(ctx, filter)
	if err != nil {
		return nil, toStatus(err)
	}
	items := make([]*runtime.Container, 0, len(list))
	for _, d := range list {
		items = append(items, toCRIContainer(d))
	}
	return &runtime.ListContainersResponse{Containers: items}, nil
}

// UpdateContainerResources changes the resources of a created or running container.
func (s *RuntimeServer) UpdateContainerResources(ctx context.Context, req *runtime.UpdateContainerResourcesRequest) (*runtime.UpdateContainerResourcesResponse, error) {
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	if err := legacy.ValidateResources(req.GetLinux()); err != nil {
		return nil, toStatus(err)
	}
	if err := s.guardContainer(ctx, "update the resources of", req.GetContainerId()); err != nil {
		return nil, err
	}
	if err := s.opts.Backend.UpdateContainerResources(ctx, req.GetContainerId(), req.GetLinux()); err != nil {
		return nil, toStatus(err)
	}
	return &runtime.UpdateContainerResourcesResponse{}, nil
}

// execSyncOverhead bounds what an ExecSyncResponse takes besides its output: the two fields' tags
// and lengths (1 + 5 bytes each) and the exit code's (1 + 10), with room to spare.
const execSyncOverhead = 64

// fitExecOutput cuts the ends of stdout and stderr so that together they take at most budget
// bytes: the CRI caps the whole ExecSyncResponse at 16 MiB, and the runtime returns up to
// legacy.MaxExecSyncOutput of each stream, so that a larger response would fail whole with
// ResourceExhausted (at our send limit, or at the kubelet's receive limit) instead. A stream
// smaller than half the budget is kept whole and the other gets the rest; two larger ones get
// half each.
func fitExecOutput(stdout, stderr []byte, budget int) ([]byte, []byte) {
	if len(stdout)+len(stderr) <= budget {
		return stdout, stderr
	}
	half := budget / 2
	switch {
	case len(stdout) <= half:
		stderr = stderr[:budget-len(stdout)]
	case len(stderr) <= half:
		stdout = stdout[:budget-len(stderr)]
	default:
		stdout, stderr = stdout[:half], stderr[:half]
	}
	return stdout, stderr
}

// ExecSync runs a command in a running container and returns its output and exit code.
func (s *RuntimeServer) ExecSync(ctx context.Context, req *runtime.ExecSyncRequest) (*runtime.ExecSyncResponse, error) {
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	if err := legacy.ValidateCommand(req.GetCmd()); err != nil {
		return nil, toStatus(err)
	}
	if req.GetTimeout() < 0 {
		return nil, status.Error(codes.InvalidArgument, "timeout must not be negative")
	}
	timeout := time.Duration(min(req.GetTimeout(), int64(365*24*3600))) * time.Second
	res, err := s.opts.Backend.ExecSync(ctx, req.GetContainerId(), req.GetCmd(), timeout)
	if err != nil {
		return nil, toStatus(err)
	}
	stdout, stderr := fitExecOutput(res.Stdout, res.Stderr, MaxMsgSize-execSyncOverhead)
	if len(stdout) < len(res.Stdout) || len(stderr) < len(res.Stderr) {
		logrus.WithField("container", req.GetContainerId()).Debugf("exec output of %d+%d bytes cut to %d+%d to fit the response", len(res.Stdout), len(res.Stderr), len(stdout), len(stderr))
	}
	return &runtime.ExecSyncResponse{Stdout: stdout, Stderr: stderr, ExitCode: res.ExitCode}, nil
}

// ReopenContainerLog reopens a running container's log file after the kubelet rotated it.
func (s *RuntimeServer) ReopenContainerLog(ctx context.Context, req *runtime.ReopenContainerLogRequest) (*runtime.ReopenContainerLogResponse, error) {
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	if err := s.opts.Backend.ReopenContainerLog(ctx, req.GetContainerId()); err != nil {
		return nil, toStatus(err)
	}
	return &runtime.ReopenContainerLogResponse{}, nil
}

// criContainerLister lists CRI container entries directly (legacy.ContainerdRuntime).
type criContainerLister interface {
	ListCRIContainers(ctx context.Context, filter *legacy.ContainerFilter, conv func(*legacy.ContainerDetails) *runtime.Container) ([]*runtime.Container, [][]byte, error)
}

// toCRIContainer is a container's ListContainers entry.
func toCRIContainer(d *legacy.ContainerDetails) *runtime.Container {
	return &runtime.Container{
		Id:           d.ID.ID,
		PodSandboxId: d.SandboxID,
		Metadata:     &runtime.ContainerMetadata{Name: d.Name, Attempt: d.Attempt},
		Image:        imageSpec(d),
		ImageRef:     d.ImageID,
		ImageId:      d.ImageID,
		State:        criContainerState(d.State),
		CreatedAt:    unixNano(d.CreatedAt),
		Labels:       d.Config.GetLabels(),
		Annotations:  d.Config.GetAnnotations(),
	}
}

func imageSpec(d *legacy.ContainerDetails) *runtime.ImageSpec {
	img := d.Config.GetImage()
	return &runtime.ImageSpec{
		Image:              d.Image,
		Annotations:        img.GetAnnotations(),
		UserSpecifiedImage: img.GetUserSpecifiedImage(),
		RuntimeHandler:     img.GetRuntimeHandler(),
	}
}

func toCRIContainerStatus(d *legacy.ContainerDetails) *runtime.ContainerStatus {
	st := &runtime.ContainerStatus{
		Id:          d.ID.ID,
		Metadata:    &runtime.ContainerMetadata{Name: d.Name, Attempt: d.Attempt},
		State:       criContainerState(d.State),
		CreatedAt:   unixNano(d.CreatedAt),
		StartedAt:   unixNano(d.StartedAt),
		FinishedAt:  unixNano(d.FinishedAt),
		ExitCode:    int32(d.ExitCode),
		Image:       imageSpec(d),
		ImageRef:    d.ImageRef,
		ImageId:     d.ImageID,
		Reason:      d.Reason,
		Message:     d.RuntimeMessage,
		Labels:      d.Config.GetLabels(),
		Annotations: d.Config.GetAnnotations(),
		Mounts:      statusMounts(d),
		LogPath:     d.LogPath,
		User: &runtime.ContainerUser{Linux: &runtime.LinuxContainerUser{
			Uid: int64(d.UID), Gid: int64(d.GID), SupplementalGroups: toInt64s(d.Groups),
		}},
	}
	if d.Resources != nil {
		st.Resources = &runtime.ContainerResources{Linux: d.Resources}
	}
	return st
}

func statusMounts(d *legacy.ContainerDetails) []*runtime.Mount {
	if d.Mounts != nil {
		return d.Mounts
	}
	return d.Config.GetMounts()
}

func toInt64s(in []uint32) []int64 {
	out := make([]int64, len(in))
	for i, v := range in {
		out[i] = int64(v)
	}
	return out
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func criContainerState(s legacy.ContainerState) runtime.ContainerState {
	switch s {
	case legacy.ContainerStateCreated:
		return runtime.ContainerState_CONTAINER_CREATED
	case legacy.ContainerStateRunning:
		return runtime.ContainerState_CONTAINER_RUNNING
	case legacy.ContainerStateExited:
		return runtime.ContainerState_CONTAINER_EXITED
	}
	return runtime.ContainerState_CONTAINER_UNKNOWN
}

func modelContainerState(s runtime.ContainerState) legacy.ContainerState {
	switch s {
	case runtime.ContainerState_CONTAINER_CREATED:
		return legacy.ContainerStateCreated
	case runtime.ContainerState_CONTAINER_RUNNING:
		return legacy.ContainerStateRunning
	case runtime.ContainerState_CONTAINER_EXITED:
		return legacy.ContainerStateExited
	}
	return legacy.ContainerStateUnknown
}
