package server

import (
	"context"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// GetContainerEvents streams the lifecycle events (created, started, stopped, deleted) of the
// containers and, as containerd's CRI does, of the pod sandboxes themselves (ContainerId = the
// sandbox's ID), in the order they happened, with the pod's status and its containers' statuses,
// until the client goes away. The stream's header is sent once the subscription is in place: a
// client that waits for it misses no later event. A client that does not keep up loses events
// (counted in cri_shim_container_events_dropped_total); it never slows the runtime down.
func (s *RuntimeServer) GetContainerEvents(req *runtime.GetEventsRequest, stream grpc.ServerStreamingServer[runtime.ContainerEventResponse]) error {
	events, cancel := s.opts.Backend.SubscribeContainerEvents(legacy.DefaultEventBuffer)
	defer cancel()
	ctx := stream.Context()
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			if err := stream.Send(s.containerEvent(ctx, ev)); err != nil {
				return err
			}
		}
	}
}

// containerEvent is ev as CRI sends it: with the sandbox's status (the one taken when the event
// was published, else the current one, else a NOTREADY one with the ID only when the sandbox is
// gone) and the statuses of the sandbox's containers.
func (s *RuntimeServer) containerEvent(ctx context.Context, ev legacy.ContainerEvent) *runtime.ContainerEventResponse {
	resp := &runtime.ContainerEventResponse{
		ContainerId:        ev.ContainerID,
		ContainerEventType: criEventType(ev.Type),
		CreatedAt:          ev.At.UnixNano(),
	}
	if ev.SandboxStatus != nil {
		resp.PodSandboxStatus = toCRISandboxStatus(ev.SandboxStatus)
	} else if st, err := s.opts.Backend.PodSandboxStatus(ctx, ev.SandboxID, false); err == nil {
		resp.PodSandboxStatus = toCRISandboxStatus(st)
	} else {
		resp.PodSandboxStatus = &runtime.PodSandboxStatus{Id: ev.SandboxID, State: runtime.PodSandboxState_SANDBOX_NOTREADY}
	}
	list, err := s.opts.Backend.ListContainers(ctx, &legacy.ContainerFilter{SandboxID: ev.SandboxID})
	if err != nil {
		logrus.WithError(err).WithField("sandbox", ev.SandboxID).Warn("container event: list the pod's containers")
	}
	for _, d := range list {
		if d.SandboxID == ev.SandboxID {
			resp.ContainersStatuses = append(resp.ContainersStatuses, toCRIContainerStatus(d))
		}
	}
	return resp
}

func criEventType(t legacy.ContainerEventType) runtime.ContainerEventType {
	switch t {
	case legacy.ContainerEventStarted:
		return runtime.ContainerEventType_CONTAINER_STARTED_EVENT
	case legacy.ContainerEventStopped:
		return runtime.ContainerEventType_CONTAINER_STOPPED_EVENT
	case legacy.ContainerEventDeleted:
		return runtime.ContainerEventType_CONTAINER_DELETED_EVENT
	}
	return runtime.ContainerEventType_CONTAINER_CREATED_EVENT
}

// Limits of one message of the Stream* list RPCs; each message holds at least one item.
const (
	streamChunkItems = 500
	streamChunkBytes = 4 << 20
)

// sendChunks sends items in order, in messages of up to streamChunkItems items and about
// streamChunkBytes bytes. No items: no message, the stream just ends.
func sendChunks[T proto.Message](items []T, send func([]T) error) error {
	start, size := 0, 0
	for i, it := range items {
		n := proto.Size(it)
		if i > start && (i-start >= streamChunkItems || size+n > streamChunkBytes) {
			if err := send(items[start:i]); err != nil {
				return err
			}
			start, size = i, 0
		}
		size += n
	}
	if start < len(items) {
		return send(items[start:])
	}
	return nil
}

// StreamPodSandboxes is ListPodSandbox in chunks.
func (s *RuntimeServer) StreamPodSandboxes(req *runtime.StreamPodSandboxesRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxesResponse]) error {
	resp, err := s.ListPodSandbox(stream.Context(), &runtime.ListPodSandboxRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(resp.GetItems(), func(items []*runtime.PodSandbox) error {
		return stream.Send(&runtime.StreamPodSandboxesResponse{PodSandboxes: items})
	})
}

// StreamContainers is ListContainers in chunks.
func (s *RuntimeServer) StreamContainers(req *runtime.StreamContainersRequest, stream grpc.ServerStreamingServer[runtime.StreamContainersResponse]) error {
	resp, err := s.ListContainers(stream.Context(), &runtime.ListContainersRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(resp.GetContainers(), func(items []*runtime.Container) error {
		return stream.Send(&runtime.StreamContainersResponse{Containers: items})
	})
}

// StreamContainerStats is ListContainerStats in chunks.
func (s *RuntimeServer) StreamContainerStats(req *runtime.StreamContainerStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamContainerStatsResponse]) error {
	resp, err := s.ListContainerStats(stream.Context(), &runtime.ListContainerStatsRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(resp.GetStats(), func(items []*runtime.ContainerStats) error {
		return stream.Send(&runtime.StreamContainerStatsResponse{ContainerStats: items})
	})
}

// StreamPodSandboxStats is ListPodSandboxStats in chunks.
func (s *RuntimeServer) StreamPodSandboxStats(req *runtime.StreamPodSandboxStatsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxStatsResponse]) error {
	resp, err := s.ListPodSandboxStats(stream.Context(), &runtime.ListPodSandboxStatsRequest{Filter: req.GetFilter()})
	if err != nil {
		return err
	}
	return sendChunks(resp.GetStats(), func(items []*runtime.PodSandboxStats) error {
		return stream.Send(&runtime.StreamPodSandboxStatsResponse{PodSandboxStats: items})
	})
}

// StreamPodSandboxMetrics is ListPodSandboxMetrics in chunks.
func (s *RuntimeServer) StreamPodSandboxMetrics(req *runtime.StreamPodSandboxMetricsRequest, stream grpc.ServerStreamingServer[runtime.StreamPodSandboxMetricsResponse]) error {
	resp, err := s.ListPodSandboxMetrics(stream.Context(), &runtime.ListPodSandboxMetricsRequest{})
	if err != nil {
		return err
	}
	return sendChunks(resp.GetPodMetrics(), func(items []*runtime.PodSandboxMetrics) error {
		return stream.Send(&runtime.StreamPodSandboxMetricsResponse{PodSandboxMetrics: items})
	})
}

// UpdatePodSandboxResources takes the pod's overhead and the sum of its containers' resources:
// applied to the pod's cgroup when it has a cgroupfs cgroup parent, recorded in any case.
func (s *RuntimeServer) UpdatePodSandboxResources(ctx context.Context, req *runtime.UpdatePodSandboxResourcesRequest) (*runtime.UpdatePodSandboxResourcesResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "pod_sandbox_id is required")
	}
	if err := legacy.ValidateResources(req.GetOverhead()); err != nil {
		return nil, toStatus(err)
	}
	if err := legacy.ValidateResources(req.GetResources()); err != nil {
		return nil, toStatus(err)
	}
	if err := s.guardSandbox(ctx, "update the resources of", req.GetPodSandboxId()); err != nil {
		return nil, err
	}
	if err := s.opts.Backend.UpdatePodSandboxResources(ctx, req.GetPodSandboxId(), req.GetOverhead(), req.GetResources()); err != nil {
		return nil, toStatus(err)
	}
	return &runtime.UpdatePodSandboxResourcesResponse{}, nil
}
