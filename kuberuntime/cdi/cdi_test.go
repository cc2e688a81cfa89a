package cdi

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/cdi/cditest"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/containerd/errdefs"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// writeSpec writes cditest's spec of vendor.example.com/device=<name> into dir.
func writeSpec(t *testing.T, dir, name string) string {
	return cditest.WriteSpec(t, dir, t.TempDir(), name)
}

func newRegistry(t *testing.T, dirs ...string) *Registry {
	t.Helper()
	r := New(dirs)
	t.Cleanup(r.Close)
	return r
}

func baseSpec() *runtimespec.Spec {
	return &runtimespec.Spec{
		Process: &runtimespec.Process{Env: []string{"PATH=/bin"}},
		Linux:   &runtimespec.Linux{Resources: &runtimespec.LinuxResources{}},
	}
}

// checkInjected asserts spec has the device node, its cgroup rule, the env and the mount of
// writeSpec's device name.
func checkInjected(t *testing.T, spec *runtimespec.Spec, name, src string) {
	t.Helper()
	var node *runtimespec.LinuxDevice
	for i := range spec.Linux.Devices {
		if spec.Linux.Devices[i].Path == "/dev/vendor-"+name {
			node = &spec.Linux.Devices[i]
		}
	}
	if node == nil || node.Type != "c" || node.Major != 1 || node.Minor != 3 {
		t.Fatalf("device node /dev/vendor-%s (c 1:3, /dev/null's) missing: %+v", name, spec.Linux.Devices)
	}
	allowed := slices.ContainsFunc(spec.Linux.Resources.Devices, func(d runtimespec.LinuxDeviceCgroup) bool {
		return d.Allow && d.Type == "c" && d.Major != nil && *d.Major == 1 && d.Minor != nil && *d.Minor == 3
	})
	if !allowed {
		t.Fatalf("no cgroup rule allows the device: %+v", spec.Linux.Resources.Devices)
	}
	if !slices.Contains(spec.Process.Env, "FOO=bar") || !slices.Contains(spec.Process.Env, "PATH=/bin") {
		t.Fatalf("env: %v", spec.Process.Env)
	}
	if !slices.ContainsFunc(spec.Mounts, func(m runtimespec.Mount) bool {
		return m.Destination == "/etc/vendor-"+name && m.Source == src && slices.Contains(m.Options, "bind")
	}) {
		t.Fatalf("mount of %s missing: %+v", src, spec.Mounts)
	}
}

func TestRequestedFromFieldAndAnnotations(t *testing.T) {
	config := &runtime.ContainerConfig{
		CDIDevices: []*runtime.CDIDevice{{Name: "vendor.example.com/device=foo"}, {Name: "vendor.example.com/device=foo"}},
		Annotations: map[string]string{
			"cdi.k8s.io/b":      "vendor.example.com/device=bar,vendor.example.com/device=foo",
			"cdi.k8s.io/a":      "vendor.example.com/device=baz",
			"other.example.com": "not/a=device,",
		},
	}
	got, err := Requested(config)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"vendor.example.com/device=foo", "vendor.example.com/device=baz", "vendor.example.com/device=bar"}
	if !slices.Equal(got, want) {
		t.Fatalf("devices = %v, want %v (field first, then annotations by key, each once)", got, want)
	}
	if got, err := Requested(&runtime.ContainerConfig{}); err != nil || len(got) != 0 {
		t.Fatalf("no devices asked: got %v, %v", got, err)
	}
}

func TestRequestedMalformedNameIsInvalidArgument(t *testing.T) {
	for _, config := range []*runtime.ContainerConfig{
		{CDIDevices: []*runtime.CDIDevice{{Name: "foo"}}},
		{CDIDevices: []*runtime.CDIDevice{{Name: "vendor.example.com/device="}}},
		{CDIDevices: []*runtime.CDIDevice{{Name: "../../device=x"}}},
		{Annotations: map[string]string{"cdi.k8s.io/x": "vendor.example.com/device=foo,,"}},
	} {
		_, err := Requested(config)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "CDI device") {
			t.Errorf("%v: got %v, want InvalidArgument naming the CDI device", config, err)
		}
	}
}

func TestInjectDeviceNodeEnvMount(t *testing.T) {
	etc, run := t.TempDir(), t.TempDir()
	src := writeSpec(t, etc, "foo")
	r := newRegistry(t, etc, run)
	spec := baseSpec()
	if err := r.Inject(spec, "vendor.example.com/device=foo"); err != nil {
		t.Fatal(err)
	}
	checkInjected(t, spec, "foo", src)
}

func TestInjectUnknownDevice(t *testing.T) {
	etc := t.TempDir()
	writeSpec(t, etc, "foo")
	r := newRegistry(t, etc)
	spec := baseSpec()
	err := r.Inject(spec, "vendor.example.com/device=foo", "vendor.example.com/device=nope")
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "vendor.example.com/device=nope") ||
		strings.Contains(err.Error(), "device=foo") {
		t.Fatalf("got %v, want InvalidArgument naming only the unknown device", err)
	}
	if len(spec.Linux.Devices) != 0 || len(spec.Mounts) != 0 || len(spec.Process.Env) != 1 {
		t.Fatalf("a failed injection changed the spec: %+v", spec)
	}
	if err := r.Resolve([]string{"vendor.example.com/device=nope"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Resolve: got %v, want InvalidArgument", err)
	}
}

func TestUnknownDeviceNamesBrokenSpecFiles(t *testing.T) {
	etc := t.TempDir()
	if err := os.WriteFile(filepath.Join(etc, "broken.yaml"), []byte("cdiVersion: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRegistry(t, etc)
	err := r.Resolve([]string{"vendor.example.com/device=foo"})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "broken.yaml") {
		t.Fatalf("got %v, want the unknown device with the spec file left out named", err)
	}
}

// A spec file written after the start is found by the directory watch, without a request to
// trigger a rescan.
func TestWatchPicksUpNewSpec(t *testing.T) {
	etc := t.TempDir()
	r := newRegistry(t, etc)
	src := writeSpec(t, etc, "later")
	deadline := time.Now().Add(10 * time.Second)
	for r.cache.GetDevice("vendor.example.com/device=later") == nil {
		if time.Now().After(deadline) {
			t.Fatal("the watch did not load a spec file written after the start within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	spec := baseSpec()
	if err := r.Inject(spec, "vendor.example.com/device=later"); err != nil {
		t.Fatal(err)
	}
	checkInjected(t, spec, "later", src)

	// Removed: unknown again once the watch handled it.
	if err := os.Remove(filepath.Join(etc, "vendor-later.yaml")); err != nil {
		t.Fatal(err)
	}
	for r.cache.GetDevice("vendor.example.com/device=later") != nil {
		if time.Now().After(deadline) {
			t.Fatal("the watch did not drop a removed spec file's device within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := r.Resolve([]string{"vendor.example.com/device=later"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("a removed spec's device: got %v, want InvalidArgument", err)
	}
}

// A spec dir that did not exist at the start is watched and read from the next request on.
func TestDirCreatedAfterStart(t *testing.T) {
	etc := filepath.Join(t.TempDir(), "etc-cdi")
	r := newRegistry(t, etc)
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	src := writeSpec(t, etc, "fresh")
	spec := baseSpec()
	if err := r.Inject(spec, "vendor.example.com/device=fresh"); err != nil {
		t.Fatal(err)
	}
	checkInjected(t, spec, "fresh", src)
	// Watched now: a second spec is seen without a request.
	writeSpec(t, etc, "second")
	deadline := time.Now().Add(10 * time.Second)
	for r.cache.GetDevice("vendor.example.com/device=second") == nil {
		if time.Now().After(deadline) {
			t.Fatal("a spec dir created after the start is not watched")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLaterDirWins(t *testing.T) {
	etc, run := t.TempDir(), t.TempDir()
	writeSpec(t, etc, "foo")
	src := writeSpec(t, run, "foo")
	r := newRegistry(t, etc, run)
	spec := baseSpec()
	if err := r.Inject(spec, "vendor.example.com/device=foo"); err != nil {
		t.Fatal(err)
	}
	checkInjected(t, spec, "foo", src)
}

// A request right after a spec file is written finds its device, though the watch handles the
// write some time later.
func TestRequestRightAfterWrite(t *testing.T) {
	etc := t.TempDir()
	r := newRegistry(t, etc)
	for i := range 20 {
		name := fmt.Sprintf("dev%d", i)
		src := writeSpec(t, etc, name)
		spec := baseSpec()
		if err := r.Inject(spec, "vendor.example.com/device="+name); err != nil {
			t.Fatalf("device %s right after its spec was written: %v", name, err)
		}
		checkInjected(t, spec, name, src)
	}
}

// FuzzRequested: any device names in the CRI field and the annotations; what is accepted is a
// list of fully qualified names, each once, and a refusal is InvalidArgument.
func FuzzRequested(f *testing.F) {
	f.Add("vendor.example.com/device=foo", "cdi.k8s.io/a", "vendor.example.com/device=bar,vendor.example.com/device=foo")
	f.Add("", "cdi.k8s.io/x", "nvidia.com/gpu=0")
	f.Add("bad", "other", "x")
	f.Fuzz(func(t *testing.T, field, key, value string) {
		cfg := &runtime.ContainerConfig{
			CDIDevices:  []*runtime.CDIDevice{{Name: field}},
			Annotations: map[string]string{key: value},
		}
		devices, err := Requested(cfg)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("refusal %v is not InvalidArgument", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, d := range devices {
			if _, _, _, err := parser.ParseQualifiedName(d); err != nil || seen[d] {
				t.Fatalf("accepted %q (duplicate %v): %v", d, seen[d], err)
			}
			seen[d] = true
		}
	})
}
