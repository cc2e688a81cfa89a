package kuberuntime

import (
	"errors"
	"testing"

	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func podWith(ns *runtime.NamespaceOption, sysctls map[string]string) *runtime.PodSandboxConfig {
	return &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
		Hostname: "pod-host",
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent:    "/kubepods/podu",
			Sysctls:         sysctls,
			SecurityContext: &runtime.LinuxSandboxSecurityContext{NamespaceOptions: ns},
		},
	}
}

func TestCanRunPauseLess(t *testing.T) {
	runc := legacy.RuntimeHandler{Name: "runc", Type: plugins.RuntimeRuncV2}
	other := legacy.RuntimeHandler{Name: "kata", Type: "io.containerd.kata.v2"}
	for _, c := range []struct {
		name string
		ns   *runtime.NamespaceOption
		h    legacy.RuntimeHandler
		want bool
	}{
		{"kubelet default: a pid namespace per container", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}, runc, true},
		{"host pid", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE}, runc, true},
		{"shared pid namespace keeps the pause process", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}, runc, false},
		{"no namespace options: POD", nil, runc, false},
		{"a runtime that needs its sandbox", &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}, other, false},
	} {
		if got := canRunPauseLess(podWith(c.ns, nil), c.h); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestCheckPauseLessSysctls(t *testing.T) {
	own := &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}
	if err := checkPauseLessSysctls(podWith(own, map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1"})); err != nil {
		t.Fatalf("namespaced sysctls: %v", err)
	}
	for _, c := range []struct {
		ns      *runtime.NamespaceOption
		sysctls map[string]string
	}{
		{own, map[string]string{"kernel.pid_max": "1"}},
		{&runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER, Network: runtime.NamespaceMode_NODE}, map[string]string{"net.ipv4.ip_forward": "1"}},
		{&runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_NODE}, map[string]string{"kernel.shmmax": "1"}},
	} {
		if err := checkPauseLessSysctls(podWith(c.ns, c.sysctls)); !errdefs.IsInvalidArgument(err) {
			t.Errorf("%v with %v: %v, want InvalidArgument", c.sysctls, c.ns, err)
		}
	}
}

func TestPauseLessSpec(t *testing.T) {
	config := podWith(&runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}, map[string]string{"kernel.shmmax": "7"})
	ns := sandbox.PodNamespaces{Net: "/netns/x", IPC: "/state/x/ipcns", UTS: "/state/x/utsns"}
	s := pauseLessSpec("x", "k8s", config, ns, "/state/x/userns", cgroupdriver.Cgroupfs)
	if s.Process != nil || s.Root != nil {
		t.Fatalf("a spec with a process or rootfs: %+v", s)
	}
	want := map[runtimespec.LinuxNamespaceType]string{
		runtimespec.NetworkNamespace: "/netns/x", runtimespec.IPCNamespace: "/state/x/ipcns",
		runtimespec.UTSNamespace: "/state/x/utsns", runtimespec.UserNamespace: "/state/x/userns",
	}
	if len(s.Linux.Namespaces) != len(want) {
		t.Fatalf("namespaces %+v", s.Linux.Namespaces)
	}
	for _, n := range s.Linux.Namespaces {
		if want[n.Type] != n.Path {
			t.Errorf("%s at %q, want %q", n.Type, n.Path, want[n.Type])
		}
	}
	if s.Hostname != "pod-host" || s.Linux.Sysctl["kernel.shmmax"] != "7" || s.Linux.CgroupsPath != "/kubepods/podu/x" {
		t.Errorf("hostname %q sysctls %v cgroup %q", s.Hostname, s.Linux.Sysctl, s.Linux.CgroupsPath)
	}
	if s.Annotations[sandbox.AnnotationContainerType] != sandbox.ContainerTypeSandbox || s.Annotations[sandbox.AnnotationSandboxID] != "x" {
		t.Errorf("annotations %v", s.Annotations)
	}
	// The host's namespaces are not in it.
	s = pauseLessSpec("x", "k8s", config, sandbox.PodNamespaces{IPC: "/i"}, "", cgroupdriver.Cgroupfs)
	if len(s.Linux.Namespaces) != 1 || s.Linux.Namespaces[0].Type != runtimespec.IPCNamespace {
		t.Errorf("host network: namespaces %+v", s.Linux.Namespaces)
	}
	// No cgroup parent: containerd's default cgroup, as a pause container's.
	config.Linux.CgroupParent = ""
	if s = pauseLessSpec("x", "k8s", config, ns, "", cgroupdriver.Cgroupfs); s.Linux.CgroupsPath != "/k8s/x" {
		t.Errorf("cgroup without a parent %q", s.Linux.CgroupsPath)
	}
}

func TestShimGoingAway(t *testing.T) {
	refused := errors.New("create task: failed to start shim: start failed: failed to create TTRPC connection: dial unix /run/containerd/s/9ce8: connect: connection refused")
	if !shimGoingAway(refused) {
		t.Error("a refused connection to the group's shim is not taken for its exit")
	}
	for _, err := range []error{
		errors.New(`create task: OCI runtime create failed: exec: "nope": executable file not found`),
		errors.New("create task: ttrpc: closed"),
	} {
		if shimGoingAway(err) {
			t.Errorf("%v taken for the shim's exit", err)
		}
	}
}
