package containerspec_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cri-shim/cri-shim/kuberuntime/containerspec/containerspectest"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FuzzContainerSpec generates the OCI spec of a container whose CRI ContainerConfig comes from the
// fuzzer's bytes (merged over the one of containerspectest.BaseInput), with the host pinned as in
// the table tests. The property: no panic; errors are fine. `make fuzz` runs it for a bounded
// time; plain `go test` runs the seeds.
func FuzzContainerSpec(f *testing.F) {
	seeds := []*runtime.ContainerConfig{
		{},
		{ // user namespace options and an idmapped mount (refused: the pod has no user namespace)
			Mounts: []*runtime.Mount{{ContainerPath: "/m", HostPath: "HOSTDIR",
				UidMappings: []*runtime.IDMapping{{HostId: 100000, Length: 65536}}, GidMappings: []*runtime.IDMapping{{HostId: 100000, Length: 65536}}}},
			Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				NamespaceOptions: &runtime.NamespaceOption{UsernsOptions: &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
					Uids: []*runtime.IDMapping{{HostId: 100000, Length: 65536}}, Gids: []*runtime.IDMapping{{HostId: 100000, Length: 65536}}}},
			}},
		},
		{
			Command: []string{"/bin/sh", "-c"}, Args: []string{"echo $(A) $(UNDEF) $$(A)"}, WorkingDir: "/work", Tty: true,
			Envs:        []*runtime.KeyValue{{Key: "A", Value: []byte("cri")}, {Key: "B", Value: []byte("b")}},
			Annotations: map[string]string{"io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
		},
		{
			Mounts: []*runtime.Mount{
				{ContainerPath: "/data", HostPath: "HOSTDIR", Readonly: true, RecursiveReadOnly: true},
				{ContainerPath: "/data/sub", HostPath: "HOSTDIR", Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
				{ContainerPath: "/etc/hosts", HostPath: "HOSTDIR", Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL},
			},
			Devices: []*runtime.Device{{ContainerPath: "/dev/mynull", HostPath: "/dev/null", Permissions: "rw"}},
		},
		{
			Linux: &runtime.LinuxContainerConfig{
				Resources: &runtime.LinuxContainerResources{
					CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, MemoryLimitInBytes: 1 << 30, OomScoreAdj: -998,
					CpusetCpus: "0-1", CpusetMems: "0", MemorySwapLimitInBytes: 2 << 30,
					HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 1 << 21}},
					Unified:        map[string]string{"memory.high": "100000"},
				},
				SecurityContext: &runtime.LinuxContainerSecurityContext{
					Capabilities:       &runtime.Capability{AddCapabilities: []string{"ALL"}, DropCapabilities: []string{"CHOWN"}, AddAmbientCapabilities: []string{"NET_RAW"}},
					RunAsUser:          &runtime.Int64Value{Value: 1000},
					RunAsGroup:         &runtime.Int64Value{Value: 1001},
					SupplementalGroups: []int64{10, 29},
					ReadonlyRootfs:     true,
					NoNewPrivs:         true,
					MaskedPaths:        []string{"/proc/kcore"},
					ReadonlyPaths:      []string{"/proc/sys"},
					Seccomp:            &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault},
					Apparmor:           &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault},
					NamespaceOptions:   &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "c0"},
				},
			},
		},
		{
			Linux: &runtime.LinuxContainerConfig{SecurityContext: &runtime.LinuxContainerSecurityContext{
				RunAsUsername: "alice", SeccompProfilePath: "localhost/SECCOMP",
				NamespaceOptions: &runtime.NamespaceOption{Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE},
			}},
		},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := containerspectest.BaseInput(t)
		cfg := proto.Clone(in.Config).(*runtime.ContainerConfig)
		if (proto.UnmarshalOptions{Merge: true}).Unmarshal(data, cfg) != nil {
			return
		}
		// Placeholders of the seeds: a host dir, and a seccomp profile file.
		hostDir := filepath.Dir(in.Files.Hosts)
		for _, m := range cfg.GetMounts() {
			if m.GetHostPath() == "HOSTDIR" {
				m.HostPath = hostDir
			}
		}
		if sc := cfg.GetLinux().GetSecurityContext(); sc.GetSeccompProfilePath() == "localhost/SECCOMP" {
			p := filepath.Join(hostDir, "seccomp.json")
			os.WriteFile(p, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644)
			sc.SeccompProfilePath = "localhost/" + p //nolint:staticcheck // the deprecated field is what is fuzzed
		}
		in.Config = cfg
		in.TargetPid = 43
		containerspectest.Generate(t, in, containerspectest.Rootfs(t)) //nolint:errcheck // errors are fine, panics are not
	})
}
