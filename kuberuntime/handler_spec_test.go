package kuberuntime

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func genSpec(t *testing.T, opts []oci.SpecOpts) *runtimespec.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "test-ns")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "c1"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHandlerSpecBaseSpec(t *testing.T) {
	base := &runtimespec.Spec{
		Version: "1.0.2",
		Process: &runtimespec.Process{Env: []string{"BASE=1"}, Cwd: "/"},
		Root:    &runtimespec.Root{Path: "rootfs"},
		Linux:   &runtimespec.Linux{Sysctl: map[string]string{"net.ipv4.ip_forward": "1"}, CgroupsPath: "/shared"},
	}
	hs := HandlerSpec{BaseSpec: base}
	cfg := &runtime.ContainerConfig{}
	s := genSpec(t, hs.containerSpecOpts(cfg, &runtime.PodSandboxConfig{}, []oci.SpecOpts{oci.WithEnv([]string{"X=2"})}))
	if !slices.Contains(s.Process.Env, "BASE=1") || !slices.Contains(s.Process.Env, "X=2") {
		t.Fatalf("env %v: want the base's and the options'", s.Process.Env)
	}
	if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" {
		t.Fatalf("sysctls %v: the base's lost", s.Linux.Sysctl)
	}
	if s.Linux.CgroupsPath != "/test-ns/c1" {
		t.Fatalf("cgroups path %q: want the default's, not the base's", s.Linux.CgroupsPath)
	}
	if len(base.Process.Env) != 1 {
		t.Fatalf("base spec changed: %v", base.Process.Env)
	}
	// The sandbox starts from it too.
	s = genSpec(t, hs.sandboxSpecOpts(&runtime.PodSandboxConfig{}, nil))
	if s.Linux.Sysctl["net.ipv4.ip_forward"] != "1" {
		t.Fatalf("sandbox sysctls %v", s.Linux.Sysctl)
	}
	// Without a base: containerd's default spec.
	s = genSpec(t, HandlerSpec{}.containerSpecOpts(cfg, &runtime.PodSandboxConfig{}, nil))
	if s.Linux.Sysctl != nil || len(s.Process.Env) != 0 || len(s.Mounts) == 0 {
		t.Fatalf("want containerd's default spec: %+v", s)
	}
}

func TestHandlerSpecPodAnnotations(t *testing.T) {
	hs := HandlerSpec{PodAnnotations: []string{"example.com/*", "exact"}}
	pod := &runtime.PodSandboxConfig{Annotations: map[string]string{
		"example.com/a": "1", "exact": "2", "exactly": "3", "other.io/b": "4", "io.kubernetes.cri.sandbox-id": "forged",
	}}
	own := oci.WithAnnotations(map[string]string{"io.kubernetes.cri.sandbox-id": "real"})
	hs.PodAnnotations = append(hs.PodAnnotations, "io.kubernetes.cri.*")
	for name, s := range map[string]*runtimespec.Spec{
		"container": genSpec(t, hs.containerSpecOpts(&runtime.ContainerConfig{}, pod, []oci.SpecOpts{own})),
		"sandbox":   genSpec(t, hs.sandboxSpecOpts(pod, []oci.SpecOpts{own})),
	} {
		want := map[string]string{"example.com/a": "1", "exact": "2", "io.kubernetes.cri.sandbox-id": "real"}
		if len(s.Annotations) != len(want) {
			t.Fatalf("%s annotations %v, want %v", name, s.Annotations, want)
		}
		for k, v := range want {
			if s.Annotations[k] != v {
				t.Fatalf("%s annotations %v, want %v", name, s.Annotations, want)
			}
		}
	}
	// A handler without patterns passes none.
	s := genSpec(t, HandlerSpec{}.containerSpecOpts(&runtime.ContainerConfig{}, pod, nil))
	if len(s.Annotations) != 0 {
		t.Fatalf("annotations %v, want none", s.Annotations)
	}
}

func TestHandlerSpecPrivilegedWithoutHostDevices(t *testing.T) {
	// What a privileged container's options do: the host's devices and all device access.
	hostDevices := func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		s.Linux.Devices = append(s.Linux.Devices, runtimespec.LinuxDevice{Path: "/dev/sda", Type: "b", Major: 8})
		s.Linux.Resources.Devices = []runtimespec.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		return nil
	}
	privileged := &runtime.ContainerConfig{
		Linux:   &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{Privileged: true}},
		Devices: []*runtime.Device{{HostPath: "/dev/null", ContainerPath: "/dev/mynull", Permissions: "rw"}},
	}
	hs := HandlerSpec{PrivilegedWithoutHostDevices: true}
	s := genSpec(t, hs.containerSpecOpts(privileged, &runtime.PodSandboxConfig{}, []oci.SpecOpts{hostDevices}))
	if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/mynull" {
		t.Fatalf("devices %+v: want the requested /dev/mynull alone", s.Linux.Devices)
	}
	rules := s.Linux.Resources.Devices
	if len(rules) != 2 || rules[0].Allow || !rules[1].Allow || rules[1].Access != "rw" || *rules[1].Major != 1 || *rules[1].Minor != 3 {
		t.Fatalf("device rules %+v: want deny all, then rw on /dev/null's 1:3", rules)
	}
	// Without the option, or for a container that is not privileged: untouched.
	for _, tc := range []struct {
		hs  HandlerSpec
		cfg *runtime.ContainerConfig
	}{{HandlerSpec{}, privileged}, {hs, &runtime.ContainerConfig{}}} {
		s := genSpec(t, tc.hs.containerSpecOpts(tc.cfg, &runtime.PodSandboxConfig{}, []oci.SpecOpts{hostDevices}))
		if len(s.Linux.Devices) != 1 || s.Linux.Devices[0].Path != "/dev/sda" || !s.Linux.Resources.Devices[0].Allow {
			t.Fatalf("devices %+v rules %+v: want the host's kept", s.Linux.Devices, s.Linux.Resources.Devices)
		}
	}
}

func TestUnknownHandlerNamesConfigured(t *testing.T) {
	r := &ContainerdRuntime{opts: Options{RuntimeHandlers: []legacy.RuntimeHandler{{Name: "runc"}, {Name: "crun"}}}}
	r.handlers = runtimeHandlers(r.opts)
	if _, err := r.newSandboxRun(context.Background(), &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
	}, "gvisor"); !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), `"gvisor" (configured: runc, crun)`) {
		t.Fatalf("got %v, want InvalidArgument naming runc and crun", err)
	}
	if got := r.handlerSpec(""); got.PrivilegedWithoutHostDevices {
		t.Fatalf("handler spec %+v", got)
	}
	r.opts.HandlerSpecs = map[string]HandlerSpec{"runc": {PrivilegedWithoutHostDevices: true}}
	if !r.handlerSpec("").PrivilegedWithoutHostDevices || r.handlerSpec("crun").PrivilegedWithoutHostDevices {
		t.Fatal("the default handler's spec is runc's, crun has none")
	}
}
