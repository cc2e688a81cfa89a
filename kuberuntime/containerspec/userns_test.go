package containerspec_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec/containerspectest"
	"github.com/cri-shim/cri-shim/sandbox"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func idmap(c, h, l uint32) *runtime.IDMapping {
	return &runtime.IDMapping{ContainerId: c, HostId: h, Length: l}
}

// TestContainerSpecUserns: a container of a pod with a user namespace joins the pause process's,
// its pod files and image volumes are idmapped (not /dev/shm), CRI mounts keep their own mappings.
func TestContainerSpecUserns(t *testing.T) {
	rootfs := containerspectest.Rootfs(t)
	m := []*runtime.IDMapping{idmap(0, 100000, 65536)}
	podNS := &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}}
	vol := t.TempDir()

	in := containerspectest.BaseInput(t)
	in.SandboxConfig.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: podNS}}
	in.VolumeMounts = []*runtime.Mount{{ContainerPath: "/data", HostPath: vol}}
	in.Config.Mounts = []*runtime.Mount{
		{ContainerPath: "/mapped", HostPath: vol, UidMappings: []*runtime.IDMapping{idmap(0, 5000, 10)}, GidMappings: []*runtime.IDMapping{idmap(0, 6000, 10)}},
		{ContainerPath: "/plain", HostPath: vol},
	}
	s, err := containerspectest.Generate(t, in, rootfs)
	if err != nil {
		t.Fatal(err)
	}
	ns, ok := containerspectest.NsOf(s, runtimespec.UserNamespace)
	if !ok || ns.Path != "/proc/42/ns/user" {
		t.Fatalf("user namespace %+v %v, want the pause process's", ns, ok)
	}
	want := fmt.Sprint([]runtimespec.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}})
	if fmt.Sprint(s.Linux.UIDMappings) != want || fmt.Sprint(s.Linux.GIDMappings) != want {
		t.Fatalf("spec mappings %v %v", s.Linux.UIDMappings, s.Linux.GIDMappings)
	}
	for _, dst := range []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/data"} {
		mt := containerspectest.MountAt(s, dst)
		if mt == nil || fmt.Sprint(mt.UIDMappings) != want || fmt.Sprint(mt.GIDMappings) != want {
			t.Fatalf("%s: %+v, want idmapped with the pod's mapping", dst, mt)
		}
	}
	if mt := containerspectest.MountAt(s, "/dev/shm"); mt == nil || mt.UIDMappings != nil {
		t.Fatalf("/dev/shm: %+v, want a plain bind", mt)
	}
	if mt := containerspectest.MountAt(s, "/plain"); mt == nil || mt.UIDMappings != nil || mt.GIDMappings != nil {
		t.Fatalf("/plain: %+v", mt)
	}
	if mt := containerspectest.MountAt(s, "/mapped"); mt == nil || fmt.Sprint(mt.UIDMappings) != "[{0 5000 10}]" || fmt.Sprint(mt.GIDMappings) != "[{0 6000 10}]" {
		t.Fatalf("/mapped: %+v", mt)
	}

	// The container's own options may repeat its pod's, or say NODE only when the pod does.
	in.Config.Linux.SecurityContext.NamespaceOptions = podNS
	if _, err := containerspectest.Generate(t, in, rootfs); err != nil {
		t.Fatalf("container repeating its pod's options: %v", err)
	}
	for name, u := range map[string]*runtime.UserNamespace{
		"other mapping": {Mode: runtime.NamespaceMode_POD, Uids: []*runtime.IDMapping{idmap(0, 1, 2)}, Gids: m},
		"node":          {Mode: runtime.NamespaceMode_NODE},
		"container":     {Mode: runtime.NamespaceMode_CONTAINER},
	} {
		in.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{UsernsOptions: u}
		if _, err := containerspectest.Generate(t, in, rootfs); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}

	// Without a user namespace: no userns, no idmapped mounts, and a CRI mount asking for one is
	// refused.
	in = containerspectest.BaseInput(t)
	s, err = containerspectest.Generate(t, in, rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := containerspectest.NsOf(s, runtimespec.UserNamespace); ok || containerspectest.MountAt(s, "/etc/hosts").UIDMappings != nil {
		t.Fatalf("user namespace without asking: %+v", s.Linux.Namespaces)
	}
	in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/mapped", HostPath: vol, UidMappings: m, GidMappings: m}}
	if _, err := containerspectest.Generate(t, in, rootfs); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "user namespace") {
		t.Fatalf("idmapped mount without a user namespace: %v", err)
	}
}

// TestContainerSpecUsernsPauseLess: a container of a pod without a pause process joins the pod's
// pinned user namespace, with its other pinned namespaces.
func TestContainerSpecUsernsPauseLess(t *testing.T) {
	rootfs := containerspectest.Rootfs(t)
	m := []*runtime.IDMapping{idmap(0, 100000, 65536)}
	in := containerspectest.BaseInput(t)
	in.SandboxConfig.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER,
			UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: m, Gids: m}}}}
	in.Config.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}
	in.SandboxPid = 0
	in.Files.Userns = "/run/p/userns"
	in.PodNS = &sandbox.PodNamespaces{Net: "/run/netns/p", IPC: "/run/p/ipcns", UTS: "/run/p/utsns"}
	s, err := containerspectest.Generate(t, in, rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if ns, ok := containerspectest.NsOf(s, runtimespec.UserNamespace); !ok || ns.Path != "/run/p/userns" {
		t.Fatalf("user namespace %+v %v, want the pinned one", ns, ok)
	}
	if ns, _ := containerspectest.NsOf(s, runtimespec.UTSNamespace); ns.Path != "/run/p/utsns" {
		t.Fatalf("uts namespace %+v", ns)
	}
}
