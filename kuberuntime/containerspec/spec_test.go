package containerspec_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec/containerspectest"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type specCase struct {
	name    string
	config  func(c *runtime.ContainerConfig)
	sandbox func(c *runtime.PodSandboxConfig)
	input   func(in *containerspec.Input)
	wantErr string
	check   func(t *testing.T, s *runtimespec.Spec)
}

func TestContainerSpec(t *testing.T) {
	hostDir := t.TempDir()
	seccompFile := filepath.Join(t.TempDir(), "profile.json")
	os.WriteFile(seccompFile, []byte(`{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}`), 0o644)

	cases := []specCase{
		{
			name: "command, args and env with expansion",
			config: func(c *runtime.ContainerConfig) {
				c.Command = []string{"/bin/sh", "-c"}
				c.Args = []string{"echo $(A) $(UNDEF) $$(A)"}
				c.Envs = []*runtime.KeyValue{{Key: "A", Value: []byte("cri")}, {Key: "B", Value: []byte("b")}}
				c.WorkingDir = "/work"
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				want := []string{"/bin/sh", "-c", "echo cri $(UNDEF) $(A)"}
				if !slices.Equal(s.Process.Args, want) {
					t.Errorf("args %q, want %q", s.Process.Args, want)
				}
				if !containerspectest.HasEnv(s, "A=cri") || containerspectest.HasEnv(s, "A=image") || !containerspectest.HasEnv(s, "B=b") || !containerspectest.HasEnv(s, "PATH=/bin") || !containerspectest.HasEnv(s, "HOSTNAME=podhost") {
					t.Errorf("env %q", s.Process.Env)
				}
				if s.Process.Cwd != "/work" {
					t.Errorf("cwd %q", s.Process.Cwd)
				}
				if s.Process.Terminal {
					t.Error("terminal without tty")
				}
			},
		},
		{
			name: "image entrypoint and cmd",
			check: func(t *testing.T, s *runtimespec.Spec) {
				if !slices.Equal(s.Process.Args, []string{"/entry", "def"}) {
					t.Errorf("args %q", s.Process.Args)
				}
				if s.Process.Cwd != "/img" {
					t.Errorf("cwd %q", s.Process.Cwd)
				}
			},
		},
		{
			name:   "args replace cmd, keep entrypoint",
			config: func(c *runtime.ContainerConfig) { c.Args = []string{"x"} },
			check: func(t *testing.T, s *runtimespec.Spec) {
				if !slices.Equal(s.Process.Args, []string{"/entry", "x"}) {
					t.Errorf("args %q", s.Process.Args)
				}
			},
		},
		{
			name:    "no command at all",
			input:   func(in *containerspec.Input) { in.Image.Entrypoint, in.Image.Cmd = nil, nil },
			wantErr: "no command",
		},
		{
			name:   "tty",
			config: func(c *runtime.ContainerConfig) { c.Tty = true },
			check: func(t *testing.T, s *runtimespec.Spec) {
				if !s.Process.Terminal {
					t.Error("no terminal")
				}
			},
		},
		{
			name: "namespaces of the sandbox, pod pid",
			check: func(t *testing.T, s *runtimespec.Spec) {
				for typ, want := range map[runtimespec.LinuxNamespaceType]string{
					runtimespec.NetworkNamespace: "/proc/42/ns/net", runtimespec.IPCNamespace: "/proc/42/ns/ipc",
					runtimespec.UTSNamespace: "/proc/42/ns/uts", runtimespec.PIDNamespace: "/proc/42/ns/pid",
				} {
					if ns, ok := containerspectest.NsOf(s, typ); !ok || ns.Path != want {
						t.Errorf("%s namespace %+v, want %s", typ, ns, want)
					}
				}
				if ns, ok := containerspectest.NsOf(s, runtimespec.MountNamespace); !ok || ns.Path != "" {
					t.Errorf("mount namespace %+v", ns)
				}
				if s.Annotations[sandbox.AnnotationContainerType] != "container" || s.Annotations[sandbox.AnnotationSandboxID] != "s1" ||
					s.Annotations[containerspec.AnnotationContainerName] != "app" || s.Annotations[containerspec.AnnotationImageName] != "docker.io/library/busybox:latest" {
					t.Errorf("annotations %v", s.Annotations)
				}
			},
		},
		{
			name: "container pid namespace",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if ns, ok := containerspectest.NsOf(s, runtimespec.PIDNamespace); !ok || ns.Path != "" {
					t.Errorf("pid namespace %+v, want a new one", ns)
				}
			},
		},
		{
			name: "target pid namespace",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "other"}
			},
			input: func(in *containerspec.Input) { in.TargetPid = 77 },
			check: func(t *testing.T, s *runtimespec.Spec) {
				if ns, _ := containerspectest.NsOf(s, runtimespec.PIDNamespace); ns.Path != "/proc/77/ns/pid" {
					t.Errorf("pid namespace %+v", ns)
				}
			},
		},
		{
			name: "target pid namespace of a stopped container",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_TARGET, TargetId: "other"}
			},
			wantErr: "not running",
		},
		{
			name: "pod without a pause process: the pinned namespaces, a pid namespace of its own",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}
			},
			input: func(in *containerspec.Input) {
				in.SandboxPid = 0
				in.PodNS = &sandbox.PodNamespaces{Net: "/run/netns/p", IPC: "/run/p/ipcns", UTS: "/run/p/utsns"}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				for typ, want := range map[runtimespec.LinuxNamespaceType]string{
					runtimespec.NetworkNamespace: "/run/netns/p", runtimespec.IPCNamespace: "/run/p/ipcns",
					runtimespec.UTSNamespace: "/run/p/utsns", runtimespec.PIDNamespace: "",
				} {
					if ns, ok := containerspectest.NsOf(s, typ); !ok || ns.Path != want {
						t.Errorf("%s namespace %+v, want at %q", typ, ns, want)
					}
				}
			},
		},
		{
			name: "pod without a pause process on the host's network and IPC, host pid",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_NODE}
			},
			input: func(in *containerspec.Input) {
				in.SandboxPid = 0
				in.PodNS = &sandbox.PodNamespaces{}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				for _, typ := range []runtimespec.LinuxNamespaceType{runtimespec.NetworkNamespace, runtimespec.IPCNamespace, runtimespec.UTSNamespace, runtimespec.PIDNamespace} {
					if ns, ok := containerspectest.NsOf(s, typ); ok {
						t.Errorf("%s namespace %+v, want the host's", typ, ns)
					}
				}
			},
		},
		{
			name: "pod without a pause process has no pod pid namespace to share: a container asking for it gets its own",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.NamespaceOptions = &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}
			},
			input: func(in *containerspec.Input) {
				in.SandboxPid = 0
				in.PodNS = &sandbox.PodNamespaces{Net: "/n", IPC: "/i", UTS: "/u"}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if ns, ok := containerspectest.NsOf(s, runtimespec.PIDNamespace); !ok || ns.Path != "" {
					t.Errorf("pid namespace %+v %v, want a new one", ns, ok)
				}
			},
		},
		{
			name:    "sandbox not running",
			input:   func(in *containerspec.Input) { in.SandboxPid = 0 },
			wantErr: "no running pause process",
		},
		{
			name: "sandbox files and shm mounted",
			check: func(t *testing.T, s *runtimespec.Spec) {
				for _, dst := range []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/dev/shm"} {
					m := containerspectest.MountAt(s, dst)
					if m == nil || m.Type != "bind" || !slices.Contains(m.Options, "rw") {
						t.Errorf("mount %s: %+v", dst, m)
					}
				}
				if m := containerspectest.MountAt(s, "/dev/shm"); m == nil || !strings.HasSuffix(m.Source, "/shm") {
					t.Errorf("shm %+v", m)
				}
			},
		},
		{
			name: "host ipc mounts the host's /dev/shm",
			sandbox: func(c *runtime.PodSandboxConfig) {
				c.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
					NamespaceOptions: &runtime.NamespaceOption{Ipc: runtime.NamespaceMode_NODE}}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if m := containerspectest.MountAt(s, "/dev/shm"); m == nil || m.Source != "/dev/shm" {
					t.Errorf("shm %+v", m)
				}
			},
		},
		{
			name: "bind mounts: readonly, propagation, override of a sandbox file",
			config: func(c *runtime.ContainerConfig) {
				c.Mounts = []*runtime.Mount{
					{ContainerPath: "/data/ro", HostPath: hostDir, Readonly: true},
					{ContainerPath: "/data", HostPath: hostDir, Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
					{ContainerPath: "/etc/hosts", HostPath: hostDir, SelinuxRelabel: true},
				}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				ro := containerspectest.MountAt(s, "/data/ro")
				if ro == nil || !slices.Equal(ro.Options, []string{"rbind", "rprivate", "ro"}) {
					t.Errorf("ro mount %+v", ro)
				}
				d := containerspectest.MountAt(s, "/data")
				if d == nil || !slices.Equal(d.Options, []string{"rbind", "rslave", "rw"}) {
					t.Errorf("rslave mount %+v", d)
				}
				if s.Linux.RootfsPropagation != "rslave" {
					t.Errorf("rootfs propagation %q", s.Linux.RootfsPropagation)
				}
				// /data is mounted before /data/ro.
				if slices.IndexFunc(s.Mounts, func(m runtimespec.Mount) bool { return m.Destination == "/data" }) >
					slices.IndexFunc(s.Mounts, func(m runtimespec.Mount) bool { return m.Destination == "/data/ro" }) {
					t.Error("/data/ro mounted before /data")
				}
				if h := containerspectest.MountAt(s, "/etc/hosts"); h == nil || h.Source != hostDir {
					t.Errorf("/etc/hosts %+v", h)
				}
				n := 0
				for _, m := range s.Mounts {
					if m.Destination == "/etc/hosts" {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%d mounts on /etc/hosts", n)
				}
			},
		},
		{
			name: "bidirectional propagation",
			config: func(c *runtime.ContainerConfig) {
				c.Mounts = []*runtime.Mount{{ContainerPath: "/shared", HostPath: hostDir, Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if m := containerspectest.MountAt(s, "/shared"); m == nil || !slices.Contains(m.Options, "rshared") {
					t.Errorf("mount %+v", m)
				}
				if s.Linux.RootfsPropagation != "rshared" {
					t.Errorf("rootfs propagation %q", s.Linux.RootfsPropagation)
				}
			},
		},
		{
			name: "missing host path",
			config: func(c *runtime.ContainerConfig) {
				c.Mounts = []*runtime.Mount{{ContainerPath: "/x", HostPath: "/nonexistent/path/here"}}
			},
			wantErr: "host path",
		},
		{
			// CreateContainer turns image mounts into host path mounts of the mounted image
			// (image_volume.go) before the spec is made; one that reaches the spec is an error.
			name: "image mount not mounted",
			config: func(c *runtime.ContainerConfig) {
				c.Mounts = []*runtime.Mount{{ContainerPath: "/img", Image: &runtime.ImageSpec{Image: "busybox"}}}
			},
			wantErr: "image volume not mounted",
		},
		{
			name: "devices /dev mount drops default /dev mounts",
			config: func(c *runtime.ContainerConfig) {
				c.Mounts = []*runtime.Mount{{ContainerPath: "/dev", HostPath: hostDir}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				for _, m := range s.Mounts {
					if strings.HasPrefix(m.Destination, "/dev/") && m.Destination != "/dev/shm" {
						t.Errorf("default mount %s kept", m.Destination)
					}
				}
			},
		},
		{
			name: "image volumes",
			input: func(in *containerspec.Input) {
				in.VolumeMounts = []*runtime.Mount{{ContainerPath: "/vol", HostPath: hostDir}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if m := containerspectest.MountAt(s, "/vol"); m == nil || m.Source != hostDir {
					t.Errorf("volume %+v", m)
				}
			},
		},
		{
			name: "devices",
			config: func(c *runtime.ContainerConfig) {
				c.Devices = []*runtime.Device{{HostPath: "/dev/null", ContainerPath: "/dev/mynull", Permissions: "rw"}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if !slices.ContainsFunc(s.Linux.Devices, func(d runtimespec.LinuxDevice) bool { return d.Path == "/dev/mynull" }) {
					t.Errorf("devices %+v", s.Linux.Devices)
				}
				if !slices.ContainsFunc(s.Linux.Resources.Devices, func(d runtimespec.LinuxDeviceCgroup) bool {
					return d.Allow && d.Access == "rw" && d.Major != nil && *d.Major == 1
				}) {
					t.Errorf("device cgroup %+v", s.Linux.Resources.Devices)
				}
			},
		},
		{
			name: "resources",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.Resources = &runtime.LinuxContainerResources{
					CpuPeriod: 100000, CpuQuota: 50000, CpuShares: 512, CpusetCpus: "0", CpusetMems: "0",
					MemoryLimitInBytes: 64 << 20, OomScoreAdj: 100,
					HugepageLimits: []*runtime.HugepageLimit{{PageSize: "2MB", Limit: 4 << 20}},
					Unified:        map[string]string{"memory.high": "1000000"},
				}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				r := s.Linux.Resources
				if *r.CPU.Period != 100000 || *r.CPU.Quota != 50000 || *r.CPU.Shares != 512 || r.CPU.Cpus != "0" || r.CPU.Mems != "0" {
					t.Errorf("cpu %+v", r.CPU)
				}
				if *r.Memory.Limit != 64<<20 || *r.Memory.Swap != 64<<20 {
					t.Errorf("memory %+v", r.Memory)
				}
				if len(r.HugepageLimits) != 1 || r.HugepageLimits[0].Pagesize != "2MB" {
					t.Errorf("hugepages %+v", r.HugepageLimits)
				}
				if r.Unified != nil {
					t.Errorf("unified %v set on cgroup v1", r.Unified)
				}
				if *s.Process.OOMScoreAdj != 100 {
					t.Errorf("oom_score_adj %d", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "swap limit and clamped oom_score_adj",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, MemorySwapLimitInBytes: 128 << 20, OomScoreAdj: -999}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if *s.Linux.Resources.Memory.Swap != 128<<20 {
					t.Errorf("swap %d", *s.Linux.Resources.Memory.Swap)
				}
				if *s.Process.OOMScoreAdj != -500 {
					t.Errorf("oom_score_adj %d, want clamped -500", *s.Process.OOMScoreAdj)
				}
			},
		},
		{
			name: "cgroup parent",
			sandbox: func(c *runtime.PodSandboxConfig) {
				c.Linux = &runtime.LinuxPodSandboxConfig{CgroupParent: "/kubepods/pod1"}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if s.Linux.CgroupsPath != "/kubepods/pod1/c1" {
					t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name: "systemd cgroup parent",
			sandbox: func(c *runtime.PodSandboxConfig) {
				c.Linux = &runtime.LinuxPodSandboxConfig{CgroupParent: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice"}
			},
			input: func(in *containerspec.Input) { in.CgroupDriver = cgroupdriver.Systemd },
			check: func(t *testing.T, s *runtimespec.Spec) {
				if s.Linux.CgroupsPath != "kubepods-besteffort-pod1.slice:cri-shim:c1" {
					t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name:  "systemd without a cgroup parent",
			input: func(in *containerspec.Input) { in.CgroupDriver = cgroupdriver.Systemd },
			check: func(t *testing.T, s *runtimespec.Spec) {
				if s.Linux.CgroupsPath != "system.slice:cri-shim:c1" {
					t.Errorf("cgroups path %q", s.Linux.CgroupsPath)
				}
			},
		},
		{
			name: "default security",
			check: func(t *testing.T, s *runtimespec.Spec) {
				if s.Linux.Seccomp != nil {
					t.Error("seccomp set without a profile")
				}
				if len(s.Linux.MaskedPaths) != 0 || len(s.Linux.ReadonlyPaths) != 0 {
					t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
				if s.Process.NoNewPrivileges || s.Root.Readonly {
					t.Error("no_new_privs or readonly rootfs by default")
				}
				if s.Process.Rlimits != nil {
					t.Errorf("rlimits %v", s.Process.Rlimits)
				}
				if len(s.Process.Capabilities.Ambient) != 0 {
					t.Errorf("ambient caps %v", s.Process.Capabilities.Ambient)
				}
			},
		},
		{
			name: "security context",
			config: func(c *runtime.ContainerConfig) {
				sc := c.Linux.SecurityContext
				sc.NoNewPrivs, sc.ReadonlyRootfs = true, true
				sc.MaskedPaths, sc.ReadonlyPaths = []string{"/proc/kcore"}, []string{"/proc/sys"}
				sc.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
				sc.Capabilities = &runtime.Capability{AddCapabilities: []string{"sys_admin"}, DropCapabilities: []string{"CHOWN"}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if !s.Process.NoNewPrivileges || !s.Root.Readonly {
					t.Error("no_new_privs / readonly rootfs not set")
				}
				if !slices.Equal(s.Linux.MaskedPaths, []string{"/proc/kcore"}) || !slices.Equal(s.Linux.ReadonlyPaths, []string{"/proc/sys"}) {
					t.Errorf("masked %v readonly %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
				}
				if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != runtimespec.ActErrno {
					t.Errorf("seccomp %+v", s.Linux.Seccomp)
				}
				caps := s.Process.Capabilities.Bounding
				if !slices.Contains(caps, "CAP_SYS_ADMIN") || slices.Contains(caps, "CAP_CHOWN") {
					t.Errorf("caps %v", caps)
				}
				// The sandbox files are read-only with a read-only rootfs.
				if m := containerspectest.MountAt(s, "/etc/hosts"); m == nil || !slices.Contains(m.Options, "ro") {
					t.Errorf("/etc/hosts %+v", m)
				}
			},
		},
		{
			name: "capabilities ALL",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Capabilities = &runtime.Capability{AddCapabilities: []string{"ALL"}, DropCapabilities: []string{"KILL"}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				want := []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_RAW"}
				if !slices.Equal(s.Process.Capabilities.Bounding, want) || !slices.Equal(s.Process.Capabilities.Effective, want) {
					t.Errorf("caps %v, want %v", s.Process.Capabilities.Bounding, want)
				}
			},
		},
		{
			name: "drop ALL",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Capabilities = &runtime.Capability{DropCapabilities: []string{"all"}, AddCapabilities: []string{"NET_RAW"}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if !slices.Equal(s.Process.Capabilities.Bounding, []string{"CAP_NET_RAW"}) {
					t.Errorf("caps %v", s.Process.Capabilities.Bounding)
				}
			},
		},
		{
			name: "seccomp localhost",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: seccompFile}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if s.Linux.Seccomp == nil || len(s.Linux.Seccomp.Syscalls) != 1 || s.Linux.Seccomp.Syscalls[0].Names[0] != "read" {
					t.Errorf("seccomp %+v", s.Linux.Seccomp)
				}
			},
		},
		{
			name: "seccomp localhost missing",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "/nonexistent.json"}
			},
			wantErr: "seccomp",
		},
		{
			name: "seccomp unconfined",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if s.Linux.Seccomp != nil {
					t.Error("seccomp set")
				}
			},
		},
		{
			name: "apparmor localhost without apparmor",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Apparmor = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: "p"}
			},
			wantErr: "AppArmor is not enabled",
		},
		{
			name: "privileged in an unprivileged sandbox",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Privileged = true
			},
			wantErr: "privileged",
		},
		{
			name: "privileged",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.Privileged = true
				c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
				c.Linux.SecurityContext.MaskedPaths = []string{"/proc/kcore"}
			},
			sandbox: func(c *runtime.PodSandboxConfig) {
				c.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{Privileged: true}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if s.Linux.Seccomp != nil || len(s.Linux.MaskedPaths) != 0 {
					t.Errorf("seccomp %v masked %v", s.Linux.Seccomp, s.Linux.MaskedPaths)
				}
				if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") {
					t.Errorf("caps %v", s.Process.Capabilities.Bounding)
				}
				if m := containerspectest.MountAt(s, "/sys"); m == nil || slices.Contains(m.Options, "ro") {
					t.Errorf("/sys %+v", m)
				}
				if m := containerspectest.MountAt(s, "/sys/fs/cgroup"); m == nil || m.Type != "cgroup" || slices.Contains(m.Options, "ro") {
					t.Errorf("/sys/fs/cgroup of a privileged container: %+v, want a writable cgroup mount", m)
				}
			},
		},
		{
			name: "the container's cgroup mounted read-only",
			check: func(t *testing.T, s *runtimespec.Spec) {
				m := containerspectest.MountAt(s, "/sys/fs/cgroup")
				if m == nil || m.Type != "cgroup" || !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "nosuid") {
					t.Errorf("/sys/fs/cgroup %+v, want a read-only cgroup mount", m)
				}
				if i, j := slices.IndexFunc(s.Mounts, func(m runtimespec.Mount) bool { return m.Destination == "/sys" }),
					slices.IndexFunc(s.Mounts, func(m runtimespec.Mount) bool { return m.Destination == "/sys/fs/cgroup" }); i < 0 || i > j {
					t.Errorf("/sys/fs/cgroup (at %d) must come after /sys (at %d)", j, i)
				}
			},
		},
		{
			name: "a mount of the user's replaces the cgroup mount",
			config: func(c *runtime.ContainerConfig) {
				c.Mounts = []*runtime.Mount{{ContainerPath: "/sys/fs/cgroup", HostPath: hostDir}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if m := containerspectest.MountAt(s, "/sys/fs/cgroup"); m == nil || m.Type != "bind" || m.Source != hostDir {
					t.Errorf("/sys/fs/cgroup %+v, want the user's bind mount", m)
				}
			},
		},
		{
			name: "a mount of the user's at /sys drops the default mounts under it",
			config: func(c *runtime.ContainerConfig) {
				c.Mounts = []*runtime.Mount{{ContainerPath: "/sys", HostPath: hostDir}}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				if m := containerspectest.MountAt(s, "/sys/fs/cgroup"); m != nil {
					t.Errorf("/sys/fs/cgroup %+v over the user's /sys", m)
				}
				if m := containerspectest.MountAt(s, "/sys"); m == nil || m.Source != hostDir {
					t.Errorf("/sys %+v", m)
				}
			},
		},
		// Users, resolved through the image's /etc/passwd and /etc/group.
		{
			name:  "root by default",
			input: func(in *containerspec.Input) { in.Image.User = "" },
			check: func(t *testing.T, s *runtimespec.Spec) {
				u := s.Process.User
				if u.UID != 0 || u.GID != 0 {
					t.Errorf("user %+v", u)
				}
			},
		},
		{
			name:  "image user by name",
			input: func(in *containerspec.Input) { in.Image.User = "alice" },
			check: func(t *testing.T, s *runtimespec.Spec) {
				u := s.Process.User
				if u.UID != 1000 || u.GID != 1001 || !slices.Equal(u.AdditionalGids, []uint32{10, 29, 1001}) {
					t.Errorf("user %+v", u)
				}
			},
		},
		{
			name:  "image user uid:gid",
			input: func(in *containerspec.Input) { in.Image.User = "1234:5678" },
			check: func(t *testing.T, s *runtimespec.Spec) {
				u := s.Process.User
				if u.UID != 1234 || u.GID != 5678 {
					t.Errorf("user %+v", u)
				}
			},
		},
		{
			name: "run_as_user overrides the image's, groups merged",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: 1000}
				c.Linux.SecurityContext.SupplementalGroups = []int64{500, 10}
			},
			input: func(in *containerspec.Input) { in.Image.User = "nobody" },
			check: func(t *testing.T, s *runtimespec.Spec) {
				u := s.Process.User
				if u.UID != 1000 || u.GID != 1001 || !slices.Equal(u.AdditionalGids, []uint32{10, 29, 500, 1001}) {
					t.Errorf("user %+v", u)
				}
			},
		},
		{
			name: "strict supplemental groups",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.RunAsUser = &runtime.Int64Value{Value: 1000}
				c.Linux.SecurityContext.SupplementalGroups = []int64{500}
				c.Linux.SecurityContext.SupplementalGroupsPolicy = runtime.SupplementalGroupsPolicy_Strict
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				u := s.Process.User
				if u.UID != 1000 || u.GID != 1001 || !slices.Equal(u.AdditionalGids, []uint32{500, 1001}) {
					t.Errorf("user %+v", u)
				}
			},
		},
		{
			name: "run_as_username and run_as_group",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.RunAsUsername = "alice"
				c.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 3000}
			},
			check: func(t *testing.T, s *runtimespec.Spec) {
				u := s.Process.User
				if u.UID != 1000 || u.GID != 3000 || !slices.Contains(u.AdditionalGids, 10) {
					t.Errorf("user %+v", u)
				}
			},
		},
		{
			name:    "unknown username",
			config:  func(c *runtime.ContainerConfig) { c.Linux.SecurityContext.RunAsUsername = "mallory" },
			wantErr: "mallory",
		},
		{
			name: "run_as_group without user",
			config: func(c *runtime.ContainerConfig) {
				c.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 3000}
			},
			wantErr: "run_as_group",
		},
		{
			name:    "non-root verification",
			input:   func(in *containerspec.Input) { in.RunAsNonRoot = true },
			wantErr: legacy.ErrVerifyNonRoot.Error(),
		},
		{
			name:  "non-root verification passes",
			input: func(in *containerspec.Input) { in.RunAsNonRoot, in.Image.User = true, "nobody" },
			check: func(t *testing.T, s *runtimespec.Spec) {
				if s.Process.User.UID != 65534 {
					t.Errorf("user %+v", s.Process.User)
				}
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := containerspectest.BaseInput(t)
			if c.config != nil {
				c.config(in.Config)
			}
			if c.sandbox != nil {
				c.sandbox(in.SandboxConfig)
			}
			if c.input != nil {
				c.input(&in)
			}
			s, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err %v, want one with %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, s)
		})
	}
}

func TestVerifyNonRootIsSentinel(t *testing.T) {
	in := containerspectest.BaseInput(t)
	in.RunAsNonRoot = true
	_, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t))
	if !errors.Is(err, legacy.ErrVerifyNonRoot) {
		t.Fatalf("err %v, want ErrVerifyNonRoot", err)
	}
}

func TestPropagationMakesMountShared(t *testing.T) {
	var made []string
	in := containerspectest.BaseInput(t)
	in.Host.LookupMount = func(string) (mount.Info, error) { return mount.Info{Mountpoint: "/mnt", Optional: ""}, nil }
	in.Host.MakeMountShared = func(p string) error { made = append(made, p); return nil }
	in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/x", HostPath: t.TempDir(), Propagation: runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL}}
	if _, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(made, []string{"/mnt"}) {
		t.Fatalf("made shared: %v", made)
	}
	// A slave mount is fine for host-to-container.
	made = nil
	in.Host.LookupMount = func(string) (mount.Info, error) { return mount.Info{Mountpoint: "/mnt", Optional: "master:3"}, nil }
	in.Config.Mounts[0].Propagation = runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
	if _, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t)); err != nil {
		t.Fatal(err)
	}
	if len(made) != 0 {
		t.Fatalf("made shared: %v", made)
	}
}

func TestImageVolumeMounts(t *testing.T) {
	root := t.TempDir()
	config := &runtime.ContainerConfig{Mounts: []*runtime.Mount{{ContainerPath: "/covered", HostPath: "/tmp"}}}
	img := &imagespec.ImageConfig{Volumes: map[string]struct{}{"/data": {}, "/covered": {}, "rel": {}}}
	ms, err := containerspec.ImageVolumeMounts(root, config, img)
	if err != nil {
		t.Fatal(err)
	}
	var dsts []string
	for _, m := range ms {
		dsts = append(dsts, m.ContainerPath)
		if fi, err := os.Stat(m.HostPath); err != nil || !fi.IsDir() || !strings.HasPrefix(m.HostPath, root) {
			t.Errorf("volume %s: host dir %s: %v", m.ContainerPath, m.HostPath, err)
		}
	}
	if !slices.Equal(dsts, []string{"/data", "/rel"}) {
		t.Fatalf("volumes %v", dsts)
	}
}

func TestRecursiveReadOnlyMounts(t *testing.T) {
	hostDir := t.TempDir()
	for _, c := range []struct {
		name      string
		mount     *runtime.Mount
		supported bool
		wantErr   string
	}{
		{"applied", &runtime.Mount{ContainerPath: "/m", HostPath: hostDir, Readonly: true, RecursiveReadOnly: true}, true, ""},
		{"needs readonly", &runtime.Mount{ContainerPath: "/m", HostPath: hostDir, RecursiveReadOnly: true}, true, "needs readonly"},
		{"needs private propagation", &runtime.Mount{ContainerPath: "/m", HostPath: hostDir, Readonly: true, RecursiveReadOnly: true,
			Propagation: runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER}, true, "needs private propagation"},
		{"host runc lacks it", &runtime.Mount{ContainerPath: "/m", HostPath: hostDir, Readonly: true, RecursiveReadOnly: true}, false, "not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := containerspectest.BaseInput(t)
			in.Host.RecursiveReadOnly = func() bool { return c.supported }
			in.Config.Mounts = []*runtime.Mount{c.mount}
			s, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !errdefs.IsInvalidArgument(err) {
					t.Fatalf("err %v, want an InvalidArgument with %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			m := containerspectest.MountAt(s, "/m")
			if m == nil || !slices.Contains(m.Options, "ro") || !slices.Contains(m.Options, "rro") {
				t.Fatalf("mount %+v", m)
			}
		})
	}
}

// TestUnsetHostFeaturesAreTheDefaults: a Host that leaves features unset reads them from this
// host (DefaultHost) instead of failing on them; the ones it sets are kept.
func TestUnsetHostFeaturesAreTheDefaults(t *testing.T) {
	in := containerspectest.BaseInput(t)
	in.Host = containerspec.Host{Hostname: func() (string, error) { return "pinned", nil }}
	in.SandboxConfig.Hostname = ""
	in.Config.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 1 << 20, OomScoreAdj: 100}
	s, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t))
	if err != nil {
		t.Fatal(err)
	}
	if !containerspectest.HasEnv(s, "HOSTNAME=pinned") || s.Process.OOMScoreAdj == nil {
		t.Fatalf("env %v, oom_score_adj %v", s.Process.Env, s.Process.OOMScoreAdj)
	}
	in.Config.Mounts = []*runtime.Mount{{ContainerPath: "/m", HostPath: t.TempDir(), Readonly: true, RecursiveReadOnly: true}}
	if _, err := containerspectest.Generate(t, in, containerspectest.Rootfs(t)); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("recursive read-only with the default host: %v, want InvalidArgument", err)
	}
	s = &runtimespec.Spec{}
	containerspec.ApplyResources(s, in.Config.Linux.Resources, containerspec.Host{})
	if s.Linux.Resources.Memory.Limit == nil || *s.Linux.Resources.Memory.Limit != 1<<20 {
		t.Fatalf("resources %+v", s.Linux.Resources.Memory)
	}
}
