package kuberuntime

import (
	"context"
	"slices"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/cdi"
	"github.com/cri-shim/cri-shim/kuberuntime/cdi/cditest"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeCDISpec writes cditest's spec of vendor.example.com/device=<name> into dir, its data file
// beside it.
func writeCDISpec(t *testing.T, dir, name string) {
	cditest.WriteSpec(t, dir, dir, name)
}

func TestCDISpecOpts(t *testing.T) {
	dir := t.TempDir()
	writeCDISpec(t, dir, "foo")
	reg := cdi.New([]string{dir})
	t.Cleanup(reg.Close)
	on := &ContainerdRuntime{cdi: reg}
	off := &ContainerdRuntime{}
	log := logrus.NewEntry(logrus.StandardLogger())
	field := &runtime.ContainerConfig{CDIDevices: []*runtime.CDIDevice{{Name: "vendor.example.com/device=foo"}}}
	annotated := &runtime.ContainerConfig{Annotations: map[string]string{"cdi.k8s.io/test": "vendor.example.com/device=foo"}}
	unknown := &runtime.ContainerConfig{CDIDevices: []*runtime.CDIDevice{{Name: "vendor.example.com/device=nope"}}}
	malformed := &runtime.ContainerConfig{Annotations: map[string]string{"cdi.k8s.io/test": "nope"}}

	for name, config := range map[string]*runtime.ContainerConfig{"field": field, "annotation": annotated} {
		opts, err := on.cdiSpecOpts(config, log)
		if err != nil || len(opts) != 1 {
			t.Fatalf("%s: %d opts, %v", name, len(opts), err)
		}
		spec := &runtimespec.Spec{Process: &runtimespec.Process{}, Linux: &runtimespec.Linux{}}
		if err := opts[0](context.Background(), nil, nil, spec); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(spec.Process.Env, "FOO=bar") || len(spec.Linux.Devices) != 1 || spec.Linux.Devices[0].Path != "/dev/vendor-foo" ||
			len(spec.Mounts) != 1 || spec.Mounts[0].Destination != "/etc/vendor-foo" {
			t.Fatalf("%s: not injected: env %v, devices %+v, mounts %+v", name, spec.Process.Env, spec.Linux.Devices, spec.Mounts)
		}
	}
	if opts, err := on.cdiSpecOpts(&runtime.ContainerConfig{}, log); err != nil || len(opts) != 0 {
		t.Fatalf("no devices asked: %d opts, %v", len(opts), err)
	}
	for name, config := range map[string]*runtime.ContainerConfig{"unknown": unknown, "malformed": malformed} {
		if _, err := on.cdiSpecOpts(config, log); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("%s device: got %v, want InvalidArgument", name, err)
		}
	}
	// CDI off: the requests are ignored, as containerd does.
	for _, config := range []*runtime.ContainerConfig{field, unknown, malformed} {
		if opts, err := off.cdiSpecOpts(config, log); err != nil || len(opts) != 0 {
			t.Fatalf("CDI off: %d opts, %v; want the devices ignored", len(opts), err)
		}
	}
	// NRI: a plugin's device is injected; with CDI off it is an error naming it.
	spec := &runtimespec.Spec{Process: &runtimespec.Process{}, Linux: &runtimespec.Linux{}}
	if err := on.nriCDIInjector(spec, []string{"vendor.example.com/device=foo"}); err != nil || !slices.Contains(spec.Process.Env, "FOO=bar") {
		t.Fatalf("NRI injection: %v, env %v", err, spec.Process.Env)
	}
	if err := off.nriCDIInjector(spec, []string{"vendor.example.com/device=foo"}); err == nil {
		t.Fatal("NRI device with CDI off: no error")
	}
}
