package kuberuntime

import (
	"testing"

	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestNRIResourcesRoundTrip(t *testing.T) {
	in := &runtime.LinuxContainerResources{
		CpuShares: 512, CpuQuota: 20000, CpuPeriod: 100000, MemoryLimitInBytes: 1 << 30,
		CpusetCpus: "0-1", CpusetMems: "0",
		HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
		Unified:        map[string]string{"memory.high": "1073741824"},
	}
	n := criToNRIResources(in)
	if n.GetCpu().GetShares().GetValue() != 512 || n.GetMemory().GetLimit().GetValue() != 1<<30 || n.GetCpu().GetCpus() != "0-1" {
		t.Fatalf("CRI -> NRI lost values: %v", n)
	}
	out := nriToCRIResources(n)
	if !proto.Equal(in, out) {
		t.Fatalf("round trip:\n in %v\nout %v", in, out)
	}
	if criToNRIResources(nil) != nil {
		t.Fatal("nil resources must stay nil")
	}
}

func TestNRIContainerTemplate(t *testing.T) {
	oom := -500
	spec := &runtimespec.Spec{
		Annotations: map[string]string{"from-spec": "s"},
		Process: &runtimespec.Process{
			Args: []string{"sleep", "1"}, Env: []string{"A=1"}, OOMScoreAdj: &oom,
			User: runtimespec.User{UID: 10, GID: 20, AdditionalGids: []uint32{30}},
		},
		Mounts: []runtimespec.Mount{{Destination: "/data", Source: "/host", Type: "bind", Options: []string{"rbind"}}},
		Linux: &runtimespec.Linux{
			CgroupsPath: "/kubepods/x", Namespaces: []runtimespec.LinuxNamespace{{Type: runtimespec.PIDNamespace}},
		},
	}
	config := &runtime.ContainerConfig{
		Metadata:    &runtime.ContainerMetadata{Name: "web"},
		Labels:      map[string]string{"l": "1"},
		Annotations: map[string]string{"from-config": "c"},
	}
	c := containerTemplate("cid", "sid", config, spec)
	switch {
	case c.GetId() != "cid" || c.GetPodSandboxId() != "sid" || c.GetName() != "web":
		t.Fatalf("identity: %v", c)
	case c.GetLabels()["l"] != "1" || c.GetAnnotations()["from-config"] != "c" || c.GetAnnotations()["from-spec"] != "s":
		t.Fatalf("labels/annotations: %v %v", c.GetLabels(), c.GetAnnotations())
	case len(c.GetArgs()) != 2 || c.GetEnv()[0] != "A=1":
		t.Fatalf("process: %v %v", c.GetArgs(), c.GetEnv())
	case len(c.GetMounts()) != 1 || c.GetMounts()[0].GetDestination() != "/data":
		t.Fatalf("mounts: %v", c.GetMounts())
	case c.GetLinux().GetCgroupsPath() != "/kubepods/x" || c.GetLinux().GetOomScoreAdj().GetValue() != -500 || len(c.GetLinux().GetNamespaces()) != 1:
		t.Fatalf("linux: %v", c.GetLinux())
	case c.GetUser().GetUid() != 10 || c.GetUser().GetGid() != 20:
		t.Fatalf("user: %v", c.GetUser())
	}
	// The template must not share the spec's slices or maps.
	spec.Process.Env[0] = "A=2"
	spec.Annotations["from-spec"] = "changed"
	if c.GetEnv()[0] != "A=1" || c.GetAnnotations()["from-spec"] != "s" {
		t.Fatal("template aliases the spec")
	}
}

func TestNRIHooksOffAreNoOps(t *testing.T) {
	r := &ContainerdRuntime{}
	if r.NRIEnabled() || r.nriBlockSync() != nil {
		t.Fatal("NRI on without StartNRI")
	}
	r.nriBlockSync().Unblock() // nil-safe
	res := &runtime.LinuxContainerResources{CpuShares: 2}
	got, err := r.nriUpdateContainer(t.Context(), &podContainer{}, res)
	if err != nil || got != res {
		t.Fatalf("update with NRI off: %v, %v", got, err)
	}
	var h *nriCreation = r.nriCreateContainer(nil, "x", nil)
	if h != nil {
		t.Fatal("creation handle with NRI off")
	}
	if err := h.adjust()(t.Context(), nil, nil); err != nil {
		t.Fatal(err)
	}
	h.done()
	h.undo(t.Context())
}
