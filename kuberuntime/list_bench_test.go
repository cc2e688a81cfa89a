package kuberuntime

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/protobuf/proto"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// listBenchRuntime is a runtime whose in-memory stores hold 100 ready sandboxes of 5 running
// containers each (fake records: no containerd), as on the busy node of PERFORMANCE.md.
func listBenchRuntime(b *testing.B) *ContainerdRuntime {
	const pods, perPod = 100, 5
	r := &ContainerdRuntime{sandboxes: newSandboxStore()}
	st := r.ctrs().store
	for p := range pods {
		sbID := fmt.Sprintf("%063d%d", p, 9)
		cfg := &runtime.PodSandboxConfig{
			Metadata:    &runtime.PodSandboxMetadata{Name: fmt.Sprint("pod", p), Namespace: "bench", Uid: fmt.Sprint("uid-", p)},
			Labels:      map[string]string{"app": "bench", "pod": fmt.Sprint(p)},
			Annotations: map[string]string{"kubernetes.io/config.source": "api"},
			Linux:       &runtime.LinuxPodSandboxConfig{},
		}
		r.sandboxes.add(&podSandbox{
			meta:   sandboxMetadata{ID: sbID, CreatedAt: time.Unix(int64(p), 0), IP: fmt.Sprintf("10.88.0.%d", p+2), NetNSPath: "/run/netns/" + sbID},
			config: cfg, state: legacy.SandboxStateReady, pid: uint32(1000 + p),
		})
		for c := range perPod {
			i := p*perPod + c
			st.add(&podContainer{
				meta: containerMetadata{ID: fmt.Sprintf("%064d", i), SandboxID: sbID, CreatedAt: time.Unix(int64(i), 0),
					ImageRef: "registry.k8s.io/e2e-test-images/busybox:1.29-2", ImageID: "sha256:" + fmt.Sprintf("%064d", 1),
					LogPath: fmt.Sprintf("c%d_0.log", c)},
				config: &runtime.ContainerConfig{
					Metadata: &runtime.ContainerMetadata{Name: fmt.Sprint("c", c)},
					Image:    &runtime.ImageSpec{Image: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
					Command:  []string{"sleep", "3600"},
					Labels:   map[string]string{"io.kubernetes.container.name": fmt.Sprint("c", c), "io.kubernetes.pod.uid": fmt.Sprint("uid-", p)},
					Annotations: map[string]string{"io.kubernetes.container.restartCount": "0",
						"io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
					Linux: &runtime.LinuxContainerConfig{Resources: &runtime.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 64 << 20}},
				},
				state: legacy.ContainerStateRunning, pid: uint32(2000 + i),
			})
		}
	}
	return r
}

// BenchmarkListContainers lists 500 containers (100 pods × 5) from the in-memory store, as
// ListContainers without a filter does, and with a pod filter (the kubelet's per-pod lists).
func BenchmarkListContainers(b *testing.B) {
	r := listBenchRuntime(b)
	ctx := context.Background()
	b.Run("all", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			list, err := r.ListContainers(ctx, nil)
			if err != nil || len(list) != 500 {
				b.Fatalf("list: %d %v", len(list), err)
			}
		}
	})
	b.Run("cri-entries", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			list, _, err := r.ListCRIContainers(ctx, nil, benchCRIEntry)
			if err != nil || len(list) != 500 {
				b.Fatalf("list: %d %v", len(list), err)
			}
		}
	})
	// What the gRPC server adds to it: the response's encoding.
	b.Run("cri-entries+marshal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			list, _, _ := r.ListCRIContainers(ctx, nil, benchCRIEntry)
			if _, err := proto.Marshal(&runtime.ListContainersResponse{Containers: list}); err != nil {
				b.Fatal(err)
			}
		}
	})
	running := legacy.ContainerStateRunning
	sb := r.sandboxes.list()[0].meta.ID
	b.Run("pod-filter", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			list, err := r.ListContainers(ctx, &legacy.ContainerFilter{SandboxID: sb, State: &running})
			if err != nil || len(list) != 5 {
				b.Fatalf("list: %d %v", len(list), err)
			}
		}
	})
}

// BenchmarkListPodSandbox lists the 100 sandboxes of the same node: as statuses, and as the CRI
// server's cached entries (with their encodings).
func BenchmarkListPodSandbox(b *testing.B) {
	r := listBenchRuntime(b)
	ctx := context.Background()
	b.Run("statuses", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			list, err := r.ListPodSandbox(ctx, nil)
			if err != nil || len(list) != 100 {
				b.Fatalf("list: %d %v", len(list), err)
			}
		}
	})
	b.Run("cri-entries", func(b *testing.B) {
		conv := func(st *legacy.SandboxStatus) *runtime.PodSandbox {
			return &runtime.PodSandbox{Id: st.ID, Metadata: &runtime.PodSandboxMetadata{Name: st.Name, Uid: string(st.UID), Namespace: st.Namespace},
				State: runtime.PodSandboxState_SANDBOX_READY, CreatedAt: st.CreatedAt.UnixNano(), Labels: st.Labels, Annotations: st.Annotations}
		}
		b.ReportAllocs()
		for range b.N {
			list, wire, err := r.ListCRISandboxes(ctx, nil, conv)
			if err != nil || len(list) != 100 || len(wire) != 100 {
				b.Fatalf("list: %d %v", len(list), err)
			}
		}
	})
}

// benchCRIEntry is a CRI list entry as the server builds it.
func benchCRIEntry(d *legacy.ContainerDetails) *runtime.Container {
	return &runtime.Container{Id: d.ID.ID, PodSandboxId: d.SandboxID,
		Metadata: &runtime.ContainerMetadata{Name: d.Name, Attempt: d.Attempt},
		Image:    &runtime.ImageSpec{Image: d.Image}, ImageRef: d.ImageID, ImageId: d.ImageID,
		State: runtime.ContainerState_CONTAINER_RUNNING, CreatedAt: d.CreatedAt.UnixNano(),
		Labels: d.Config.GetLabels(), Annotations: d.Config.GetAnnotations()}
}

// BenchmarkGetPodStatus is one pod's status on the node of 100 pods (what the pod status cache
// builds on each container event).
func BenchmarkGetPodStatus(b *testing.B) {
	r := listBenchRuntime(b)
	ctx := context.Background()
	b.ReportAllocs()
	for range b.N {
		ps, err := r.GetPodStatus(ctx, "uid-42", "pod42", "bench")
		if err != nil || len(ps.SandboxStatuses) != 1 || len(ps.ContainerStatuses) != 5 {
			b.Fatalf("%v %+v", err, ps)
		}
	}
}
