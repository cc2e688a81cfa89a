package server

import (
	"context"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerStats returns a container's usage; an unknown ID is NotFound.
func (s *RuntimeServer) ContainerStats(ctx context.Context, req *runtime.ContainerStatsRequest) (*runtime.ContainerStatsResponse, error) {
	if req.GetContainerId() == "" {
		return nil, status.Error(codes.InvalidArgument, "container_id is required")
	}
	st, err := s.opts.Backend.ContainerStats(ctx, req.GetContainerId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtime.ContainerStatsResponse{Stats: toCRIContainerStats(st)}, nil
}

// ListContainerStats returns the usage of the containers that match the filter.
func (s *RuntimeServer) ListContainerStats(ctx context.Context, req *runtime.ListContainerStatsRequest) (*runtime.ListContainerStatsResponse, error) {
	var filter *legacy.ContainerStatsFilter
	if f := req.GetFilter(); f != nil {
		filter = &legacy.ContainerStatsFilter{ID: f.GetId(), SandboxID: f.GetPodSandboxId(), Labels: f.GetLabelSelector()}
	}
	// The containerd runtime serves its collector's recent readings, entries built and encoded.
	if l, ok := s.opts.Backend.(criStatsLister); ok {
		items, wire, err := l.ListCRIContainerStats(ctx, filter, toCRIContainerStats)
		if err != nil {
			return nil, toStatus(err)
		}
		resp := &runtime.ListContainerStatsResponse{Stats: items}
		stashStatsEncoding(ctx, resp, wire) // list_encoding.go
		return resp, nil
	}
	list, err := s.opts.Backend.ListContainerStats(ctx, filter)
	if err != nil {
		return nil, toStatus(err)
	}
	out := make([]*runtime.ContainerStats, 0, len(list))
	for _, st := range list {
		out = append(out, toCRIContainerStats(st))
	}
	return &runtime.ListContainerStatsResponse{Stats: out}, nil
}

// criStatsLister lists CRI container stats entries directly (legacy.ContainerdRuntime).
type criStatsLister interface {
	ListCRIContainerStats(ctx context.Context, filter *legacy.ContainerStatsFilter, conv func(*legacy.ContainerStats) *runtime.ContainerStats) ([]*runtime.ContainerStats, [][]byte, error)
}

// PodSandboxStats returns a pod's usage; an unknown ID is NotFound.
func (s *RuntimeServer) PodSandboxStats(ctx context.Context, req *runtime.PodSandboxStatsRequest) (*runtime.PodSandboxStatsResponse, error) {
	if req.GetPodSandboxId() == "" {
		return nil, status.Error(codes.InvalidArgument, "pod_sandbox_id is required")
	}
	st, err := s.opts.Backend.PodSandboxStats(ctx, req.GetPodSandboxId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &runtime.PodSandboxStatsResponse{Stats: toCRIPodStats(st)}, nil
}

// ListPodSandboxStats returns the usage of the ready pods that match the filter.
func (s *RuntimeServer) ListPodSandboxStats(ctx context.Context, req *runtime.ListPodSandboxStatsRequest) (*runtime.ListPodSandboxStatsResponse, error) {
	var filter *legacy.SandboxStatsFilter
	if f := req.GetFilter(); f != nil {
		filter = &legacy.SandboxStatsFilter{ID: f.GetId(), Labels: f.GetLabelSelector()}
	}
	list, err := s.opts.Backend.ListPodSandboxStats(ctx, filter)
	if err != nil {
		return nil, toStatus(err)
	}
	out := make([]*runtime.PodSandboxStats, 0, len(list))
	for _, st := range list {
		out = append(out, toCRIPodStats(st))
	}
	return &runtime.ListPodSandboxStatsResponse{Stats: out}, nil
}

// ListMetricDescriptors describes the metrics ListPodSandboxMetrics reports.
func (s *RuntimeServer) ListMetricDescriptors(ctx context.Context, req *runtime.ListMetricDescriptorsRequest) (*runtime.ListMetricDescriptorsResponse, error) {
	descs, err := s.opts.Backend.ListMetricDescriptors(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := make([]*runtime.MetricDescriptor, 0, len(descs))
	for _, d := range descs {
		out = append(out, &runtime.MetricDescriptor{Name: d.Name, Help: d.Help, LabelKeys: d.LabelKeys})
	}
	return &runtime.ListMetricDescriptorsResponse{Descriptors: out}, nil
}

// ListPodSandboxMetrics returns the cAdvisor-style metrics of the ready pods and their containers.
func (s *RuntimeServer) ListPodSandboxMetrics(ctx context.Context, req *runtime.ListPodSandboxMetricsRequest) (*runtime.ListPodSandboxMetricsResponse, error) {
	list, err := s.opts.Backend.ListPodSandboxMetrics(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := make([]*runtime.PodSandboxMetrics, 0, len(list))
	for _, pm := range list {
		m := &runtime.PodSandboxMetrics{PodSandboxId: pm.SandboxID, Metrics: toCRIMetrics(pm.Metrics)}
		for _, c := range pm.Containers {
			m.ContainerMetrics = append(m.ContainerMetrics, &runtime.ContainerMetrics{ContainerId: c.ContainerID, Metrics: toCRIMetrics(c.Metrics)})
		}
		out = append(out, m)
	}
	return &runtime.ListPodSandboxMetricsResponse{PodMetrics: out}, nil
}

func toCRIMetrics(ms []legacy.Metric) []*runtime.Metric {
	out := make([]*runtime.Metric, 0, len(ms))
	for _, m := range ms {
		t := runtime.MetricType_GAUGE
		if m.Type == legacy.MetricCounter {
			t = runtime.MetricType_COUNTER
		}
		out = append(out, &runtime.Metric{Name: m.Name, Timestamp: m.At.UnixNano(), MetricType: t, LabelValues: m.Labels, Value: u64(m.Value)})
	}
	return out
}

func u64(v uint64) *runtime.UInt64Value { return &runtime.UInt64Value{Value: v} }

func u64p(v *uint64) *runtime.UInt64Value {
	if v == nil {
		return nil
	}
	return u64(*v)
}

func toCRICPU(c *legacy.CPUStats) *runtime.CpuUsage {
	if c == nil {
		return nil
	}
	return &runtime.CpuUsage{
		Timestamp:            c.At.UnixNano(),
		UsageCoreNanoSeconds: u64(c.UsageCoreNanoSeconds),
		UsageNanoCores:       u64p(c.UsageNanoCores),
	}
}

func toCRIMemory(m *legacy.MemoryStats) *runtime.MemoryUsage {
	if m == nil {
		return nil
	}
	return &runtime.MemoryUsage{
		Timestamp:       m.At.UnixNano(),
		WorkingSetBytes: u64(m.WorkingSetBytes),
		AvailableBytes:  u64p(m.AvailableBytes),
		UsageBytes:      u64(m.UsageBytes),
		RssBytes:        u64(m.RSSBytes),
		PageFaults:      u64(m.PageFaults),
		MajorPageFaults: u64(m.MajorPageFaults),
	}
}

func toCRISwap(sw *legacy.SwapStats) *runtime.SwapUsage {
	if sw == nil {
		return nil
	}
	return &runtime.SwapUsage{
		Timestamp:          sw.At.UnixNano(),
		SwapUsageBytes:     u64(sw.UsageBytes),
		SwapAvailableBytes: u64p(sw.AvailableBytes),
	}
}

func toCRIContainerStats(st *legacy.ContainerStats) *runtime.ContainerStats {
	out := &runtime.ContainerStats{
		Attributes: &runtime.ContainerAttributes{
			Id:          st.ID,
			Metadata:    &runtime.ContainerMetadata{Name: st.Name, Attempt: st.Attempt},
			Labels:      st.Labels,
			Annotations: st.Annotations,
		},
		Cpu:    toCRICPU(st.CPU),
		Memory: toCRIMemory(st.Memory),
		Swap:   toCRISwap(st.Swap),
	}
	if l := st.WritableLayer; l != nil {
		out.WritableLayer = &runtime.FilesystemUsage{
			Timestamp:  l.At.UnixNano(),
			FsId:       &runtime.FilesystemIdentifier{Mountpoint: l.Mountpoint},
			UsedBytes:  u64(l.UsedBytes),
			InodesUsed: u64(l.InodesUsed),
		}
	}
	return out
}

func toCRIInterface(i *legacy.InterfaceStats) *runtime.NetworkInterfaceUsage {
	return &runtime.NetworkInterfaceUsage{
		Name:     i.Name,
		RxBytes:  u64(i.RxBytes),
		RxErrors: u64(i.RxErrors),
		TxBytes:  u64(i.TxBytes),
		TxErrors: u64(i.TxErrors),
	}
}

func toCRIPodStats(st *legacy.PodStats) *runtime.PodSandboxStats {
	linux := &runtime.LinuxPodSandboxStats{
		Cpu:    toCRICPU(st.CPU),
		Memory: toCRIMemory(st.Memory),
	}
	if n := st.Network; n != nil {
		linux.Network = &runtime.NetworkUsage{Timestamp: n.At.UnixNano()}
		if n.Default != nil {
			linux.Network.DefaultInterface = toCRIInterface(n.Default)
		}
		for i := range n.Interfaces {
			linux.Network.Interfaces = append(linux.Network.Interfaces, toCRIInterface(&n.Interfaces[i]))
		}
	}
	if p := st.Processes; p != nil {
		linux.Process = &runtime.ProcessUsage{Timestamp: p.At.UnixNano(), ProcessCount: u64(p.Count)}
	}
	for _, c := range st.Containers {
		linux.Containers = append(linux.Containers, toCRIContainerStats(c))
	}
	return &runtime.PodSandboxStats{
		Attributes: &runtime.PodSandboxAttributes{
			Id:          st.ID,
			Metadata:    &runtime.PodSandboxMetadata{Name: st.Name, Namespace: st.Namespace, Uid: st.UID, Attempt: st.Attempt},
			Labels:      st.Labels,
			Annotations: st.Annotations,
		},
		Linux: linux,
	}
}
