package containerspec_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/sandbox"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// benchSpecInput is a typical kubelet container: command, env, a service-account mount, resources,
// a security context with a user and dropped capabilities, in a pod with the sandbox's files.
func benchSpecInput(b *testing.B) (containerspec.Input, string) {
	dir := b.TempDir()
	files := sandbox.Files{
		Hostname: filepath.Join(dir, "hostname"), Hosts: filepath.Join(dir, "hosts"),
		ResolvConf: filepath.Join(dir, "resolv.conf"), Shm: filepath.Join(dir, "shm"),
	}
	for _, f := range []string{files.Hostname, files.Hosts, files.ResolvConf} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	os.Mkdir(files.Shm, 0o755)
	secret := filepath.Join(dir, "secret")
	os.Mkdir(secret, 0o755)
	rootfs := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755)
	os.WriteFile(filepath.Join(rootfs, "etc", "passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(rootfs, "etc", "group"), []byte("root:x:0:\napp:x:1000:\n"), 0o644)
	var envs []*runtime.KeyValue
	for i := range 20 {
		envs = append(envs, &runtime.KeyValue{Key: fmt.Sprintf("SERVICE_%d_PORT", i), Value: []byte("tcp://10.96.0.1:443")})
	}
	return containerspec.Input{
		ID: fmt.Sprintf("%064d", 1),
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "app"},
			Image:    &runtime.ImageSpec{Image: "busybox"},
			Command:  []string{"/bin/sh", "-c"}, Args: []string{"exec sleep $(DURATION)"},
			Envs:        append(envs, &runtime.KeyValue{Key: "DURATION", Value: []byte("3600")}),
			Mounts:      []*runtime.Mount{{ContainerPath: "/var/run/secrets/kubernetes.io/serviceaccount", HostPath: secret, Readonly: true}},
			Annotations: map[string]string{"io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
			Linux: &runtime.LinuxContainerConfig{
				Resources: &runtime.LinuxContainerResources{CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 128 << 20},
				SecurityContext: &runtime.LinuxContainerSecurityContext{
					RunAsUser:    &runtime.Int64Value{Value: 1000},
					Capabilities: &runtime.Capability{DropCapabilities: []string{"NET_RAW"}},
					NoNewPrivs:   true,
				},
			},
		},
		SandboxID: fmt.Sprintf("%064d", 2),
		SandboxConfig: &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "uid1"},
			Hostname: "pod",
		},
		SandboxPid: 42,
		Files:      files,
		Image:      imagespec.ImageConfig{Entrypoint: []string{"/entry"}, Env: []string{"PATH=/bin"}, WorkingDir: "/"},
		ImageName:  "registry.k8s.io/e2e-test-images/busybox:1.29-2",
		Host:       containerspec.DefaultHost(),
	}, rootfs
}

// BenchmarkContainerSpec generates a container's OCI spec (CreateContainer's CPU work).
func BenchmarkContainerSpec(b *testing.B) {
	in, rootfs := benchSpecInput(b)
	ctx := namespaces.WithNamespace(context.Background(), "bench")
	b.ReportAllocs()
	for range b.N {
		opts, err := containerspec.Opts(in)
		if err != nil {
			b.Fatal(err)
		}
		opts = append([]oci.SpecOpts{oci.WithRootFSPath(rootfs)}, opts...)
		s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: in.ID}, opts...)
		if err != nil || s.Process.User.UID != 1000 {
			b.Fatalf("spec: %v", err)
		}
	}
}
