// Package containerspectest holds the spec builder's test inputs (a pinned host, an image root, a
// pod container's input) and readers of the specs it makes, for the tests of containerspec and of
// the packages that check those specs. It is imported by tests only.
package containerspectest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/lsm"
	"github.com/cri-shim/cri-shim/sandbox"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PinnedHost is a fixed host: cgroup v1 with swap and hugetlb, no AppArmor, no SELinux, shared
// mounts.
func PinnedHost() containerspec.Host {
	return containerspec.Host{
		SwapAvailable:    func() bool { return true },
		HugetlbAvailable: func() bool { return true },
		CgroupUnified:    func() bool { return false },
		AppArmor:         lsm.NewAppArmor(lsm.AppArmorHost{Supported: func() (bool, string) { return false, "pinned host" }}),
		SELinux:          lsm.NewSELinux(func() (lsm.SELinuxMode, error) { return lsm.SELinuxDisabled, nil }),
		CurrentCaps: func() ([]string, error) {
			return []string{"CAP_CHOWN", "CAP_KILL", "CAP_SYS_ADMIN", "CAP_NET_RAW"}, nil
		},
		LookupMount:       func(string) (mount.Info, error) { return mount.Info{Mountpoint: "/", Optional: "shared:1"}, nil },
		MakeMountShared:   func(string) error { return errors.New("unexpected") },
		RestrictOOMScore:  func(adj int) int { return max(adj, -500) },
		Hostname:          func() (string, error) { return "node1", nil },
		RecursiveReadOnly: func() bool { return true },
	}
}

// Rootfs is an image root with /etc/passwd and /etc/group.
func Rootfs(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\nalice:x:1000:1001::/home/alice:/bin/sh\n"
	group := "root:x:0:\nusers:x:1001:\nwheel:x:10:alice\naudio:x:29:alice,bob\nnogroup:x:65534:\n"
	os.WriteFile(filepath.Join(root, "etc", "passwd"), []byte(passwd), 0o644)
	os.WriteFile(filepath.Join(root, "etc", "group"), []byte(group), 0o644)
	return root
}

// BaseInput is a container of a pod with its files, on the pinned host.
func BaseInput(t testing.TB) containerspec.Input {
	dir := t.TempDir()
	files := sandbox.Files{
		Hostname: filepath.Join(dir, "hostname"), Hosts: filepath.Join(dir, "hosts"),
		ResolvConf: filepath.Join(dir, "resolv.conf"), Shm: filepath.Join(dir, "shm"),
	}
	for _, f := range []string{files.Hostname, files.Hosts, files.ResolvConf} {
		os.WriteFile(f, nil, 0o644)
	}
	os.Mkdir(files.Shm, 0o755)
	return containerspec.Input{
		ID: "c1",
		Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: "app"},
			Image:    &runtime.ImageSpec{Image: "busybox"},
			Linux:    &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{}},
		},
		SandboxID: "s1",
		SandboxConfig: &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "uid1"},
			Hostname: "podhost",
		},
		SandboxPid: 42,
		Files:      files,
		Image:      imagespec.ImageConfig{Entrypoint: []string{"/entry"}, Cmd: []string{"def"}, Env: []string{"PATH=/bin", "A=image"}, WorkingDir: "/img"},
		ImageName:  "docker.io/library/busybox:latest",
		Host:       PinnedHost(),
	}
}

// Generate is the spec of in on the image root rootfs, as containerd generates it from the
// builder's options.
func Generate(t testing.TB, in containerspec.Input, rootfs string) (*runtimespec.Spec, error) {
	t.Helper()
	opts, err := containerspec.Opts(in)
	if err != nil {
		return nil, err
	}
	opts = append([]oci.SpecOpts{oci.WithRootFSPath(rootfs)}, opts...)
	ctx := namespaces.WithNamespace(context.Background(), "test")
	return oci.GenerateSpec(ctx, nil, &containers.Container{ID: in.ID}, opts...)
}

// MountAt is the spec's mount at dst, nil when there is none.
func MountAt(s *runtimespec.Spec, dst string) *runtimespec.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

// NsOf is the spec's namespace of type typ.
func NsOf(s *runtimespec.Spec, typ runtimespec.LinuxNamespaceType) (runtimespec.LinuxNamespace, bool) {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == typ {
			return ns, true
		}
	}
	return runtimespec.LinuxNamespace{}, false
}

// HasEnv tells whether the spec's process has the environment entry kv.
func HasEnv(s *runtimespec.Spec, kv string) bool { return slices.Contains(s.Process.Env, kv) }
