package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// benchDetails is a running container's model as ContainerStatus converts it.
func benchDetails() *legacy.ContainerDetails {
	d := &legacy.ContainerDetails{
		SandboxID: fmt.Sprintf("%064d", 7), Attempt: 1, ImageName: "busybox",
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "app", Attempt: 1},
			Image:    &runtime.ImageSpec{Image: "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
			Labels:   map[string]string{"io.kubernetes.container.name": "app", "io.kubernetes.pod.uid": "uid-1", "io.kubernetes.pod.name": "p", "io.kubernetes.pod.namespace": "ns"},
			Annotations: map[string]string{"io.kubernetes.container.restartCount": "0", "io.kubernetes.container.hash": "abcd",
				"io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
			Mounts: []*runtime.Mount{{ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount", HostPath: "/var/lib/kubelet/x", Readonly: true}},
		},
		Resources: &runtime.LinuxContainerResources{CpuShares: 2, MemoryLimitInBytes: 64 << 20},
		UID:       1000, GID: 1000, Groups: []uint32{1000, 10},
		Pid: 4242,
	}
	d.ID.ID = fmt.Sprintf("%064d", 1)
	d.Name = "app"
	d.State = legacy.ContainerStateRunning
	d.CreatedAt = time.Unix(1000, 0)
	d.StartedAt = time.Unix(1001, 0)
	d.Image = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	d.ImageRef = "sha256:" + fmt.Sprintf("%064d", 2)
	d.ImageID = d.ImageRef
	d.LogPath = "/var/log/pods/ns_p_uid-1/app/0.log"
	return d
}

// BenchmarkToCRIContainerStatus converts one container's model to its CRI status (ContainerStatus).
func BenchmarkToCRIContainerStatus(b *testing.B) {
	d := benchDetails()
	b.ReportAllocs()
	for range b.N {
		if st := toCRIContainerStatus(d); st.Id == "" {
			b.Fatal("no id")
		}
	}
}

// BenchmarkToCRISandboxStatus converts one sandbox's model to its CRI status (PodSandboxStatus).
func BenchmarkToCRISandboxStatus(b *testing.B) {
	st := &legacy.SandboxStatus{
		ID: fmt.Sprintf("%064d", 7), Name: "p", Namespace: "ns", UID: "uid-1", State: legacy.SandboxStateReady,
		CreatedAt: time.Unix(1000, 0), IP: "10.88.0.7", NetNSPath: "/run/netns/x", Pid: 77,
		Labels:      map[string]string{"app": "p", "io.kubernetes.pod.uid": "uid-1"},
		Annotations: map[string]string{"kubernetes.io/config.source": "api"},
		Config:      podConfig("p"),
	}
	b.ReportAllocs()
	for range b.N {
		if s := toCRISandboxStatus(st); s.Id == "" {
			b.Fatal("no id")
		}
	}
}

// BenchmarkServerListContainers is ListContainers through the CRI handler (model -> CRI for 500
// containers of 100 pods) on the in-memory fake backend, without and with a pod filter.
func BenchmarkServerListContainers(b *testing.B) {
	fake := legacytest.NewFakeRuntime()
	srv := NewRuntimeServer(Options{Backend: fake, Version: "bench"})
	ctx := context.Background()
	var firstPod string
	for p := range 100 {
		cfg := podConfig(fmt.Sprint("pod", p))
		r, err := srv.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		if p == 0 {
			firstPod = r.PodSandboxId
		}
		for c := range 5 {
			if _, err := srv.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: r.PodSandboxId,
				Config: containerConfig(fmt.Sprint("c", c)), SandboxConfig: cfg}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("all", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			r, err := srv.ListContainers(ctx, &runtime.ListContainersRequest{})
			if err != nil || len(r.Containers) != 500 {
				b.Fatalf("%d %v", len(r.GetContainers()), err)
			}
		}
	})
	b.Run("pod-filter", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			r, err := srv.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: firstPod}})
			if err != nil || len(r.Containers) != 5 {
				b.Fatalf("%d %v", len(r.GetContainers()), err)
			}
		}
	})
	b.Run("sandboxes", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			r, err := srv.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
			if err != nil || len(r.Items) != 100 {
				b.Fatalf("%d %v", len(r.GetItems()), err)
			}
		}
	})
}
