package server

import (
	"context"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestStats(t *testing.T) {
	c, fake := sandboxClient(t)
	ctx := context.Background()
	pod, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: podConfig("p")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := containerConfig("c")
	cr, err := c.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, Config: cfg, SandboxConfig: podConfig("p")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: cr.ContainerId}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	nano := uint64(5e8)
	fake.SetFakeUsage(cr.ContainerId, &legacy.CPUStats{At: now, UsageCoreNanoSeconds: 1e9, UsageNanoCores: &nano},
		&legacy.MemoryStats{At: now, WorkingSetBytes: 4096, UsageBytes: 8192})

	st, err := c.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: cr.ContainerId})
	if err != nil {
		t.Fatal(err)
	}
	s := st.GetStats()
	if s.GetAttributes().GetId() != cr.ContainerId || s.GetAttributes().GetMetadata().GetName() != "c" ||
		s.GetCpu().GetTimestamp() != now.UnixNano() || s.GetCpu().GetUsageNanoCores().GetValue() != nano ||
		s.GetMemory().GetWorkingSetBytes().GetValue() != 4096 || s.GetMemory().GetAvailableBytes() != nil || s.GetWritableLayer() != nil {
		t.Fatalf("stats %v", s)
	}

	_, err = c.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: "nope"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown container: %v", err)
	}
	_, err = c.ContainerStats(ctx, &runtime.ContainerStatsRequest{})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no id: %v", err)
	}

	for _, tc := range []struct {
		filter *runtime.ContainerStatsFilter
		want   int
	}{
		{nil, 1},
		{&runtime.ContainerStatsFilter{Id: cr.ContainerId}, 1},
		{&runtime.ContainerStatsFilter{PodSandboxId: pod.PodSandboxId}, 1},
		{&runtime.ContainerStatsFilter{PodSandboxId: "other"}, 0},
		{&runtime.ContainerStatsFilter{LabelSelector: map[string]string{"app": "c"}}, 1},
		{&runtime.ContainerStatsFilter{LabelSelector: map[string]string{"app": "x"}}, 0},
	} {
		l, err := c.ListContainerStats(ctx, &runtime.ListContainerStatsRequest{Filter: tc.filter})
		if err != nil || len(l.GetStats()) != tc.want {
			t.Fatalf("filter %v: %v %v", tc.filter, l, err)
		}
	}

	ps, err := c.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: pod.PodSandboxId})
	if err != nil {
		t.Fatal(err)
	}
	if a := ps.GetStats().GetAttributes(); a.GetId() != pod.PodSandboxId || a.GetMetadata().GetName() != "p" || a.GetMetadata().GetUid() != "uid-p" {
		t.Fatalf("pod stats %v", ps)
	}
	if l := ps.GetStats().GetLinux(); l.GetCpu().GetUsageCoreNanoSeconds().GetValue() != 1e9 || len(l.GetContainers()) != 1 {
		t.Fatalf("pod stats %v", ps)
	}
	if _, err := c.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("unknown pod: %v", err)
	}
	lp, err := c.ListPodSandboxStats(ctx, &runtime.ListPodSandboxStatsRequest{Filter: &runtime.PodSandboxStatsFilter{LabelSelector: map[string]string{"app": "p"}}})
	if err != nil || len(lp.GetStats()) != 1 {
		t.Fatalf("list pod stats: %v %v", lp, err)
	}
	lp, err = c.ListPodSandboxStats(ctx, &runtime.ListPodSandboxStatsRequest{Filter: &runtime.PodSandboxStatsFilter{Id: "nope"}})
	if err != nil || len(lp.GetStats()) != 0 {
		t.Fatalf("list pod stats: %v %v", lp, err)
	}

	// The metrics RPCs are not implemented: Unimplemented, never Unknown.
	if _, err := c.ListMetricDescriptors(ctx, &runtime.ListMetricDescriptorsRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("ListMetricDescriptors: %v", err)
	}
	if _, err := c.ListPodSandboxMetrics(ctx, &runtime.ListPodSandboxMetricsRequest{}); status.Code(err) != codes.Unimplemented {
		t.Fatalf("ListPodSandboxMetrics: %v", err)
	}
}
