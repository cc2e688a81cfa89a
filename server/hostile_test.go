package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Table tests of hostile CRI requests: every field a kubelet (or whoever reaches the socket)
// controls, with values it should never send. Each must be refused with the documented code,
// never panic (the handlers are called directly, without the recovering interceptor), and never
// answer Unknown or Internal. Valid edge values are checked to pass, so the validation does not
// refuse what a kubelet does send.

var (
	huge     = strings.Repeat("a", 1<<20)
	bigValue = strings.Repeat("v", 300*1024)
)

// hostileIDs are IDs no runtime ever hands out.
var hostileIDs = map[string]string{
	"huge":       huge,
	"dotdot":     "../../../../etc/passwd",
	"slash":      "/",
	"nul":        "abc\x00def",
	"non-hex":    "zzzz-not-an-id",
	"newline":    "abc\ndef",
	"whitespace": "   ",
	"glob":       "*",
}

func codeOf(err error) codes.Code { return status.Code(err) }

// expectCode fails unless err has one of the codes (codes.OK: no error), and on Unknown or
// Internal always.
func expectCode(t *testing.T, what string, err error, want ...codes.Code) {
	t.Helper()
	got := codeOf(err)
	if got == codes.Unknown || got == codes.Internal {
		t.Errorf("%s: code %s: %v", what, got, err)
		return
	}
	for _, w := range want {
		if got == w {
			return
		}
	}
	t.Errorf("%s: got %s (%v), want one of %v", what, got, err, want)
}

func TestHostileIDs(t *testing.T) {
	w := newFuzzWorld(t)
	ctx := context.Background()
	// Each RPC taking an ID, with the codes an unknown ID may get: NotFound (or InvalidArgument
	// for a malformed one); stop and remove of an unknown object succeed (idempotent, as the
	// kubelet expects).
	calls := map[string]struct {
		call func(id string) error
		want []codes.Code
	}{
		"StopPodSandbox": {func(id string) error {
			_, err := w.srv.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: id})
			return err
		}, []codes.Code{codes.OK, codes.NotFound, codes.InvalidArgument}},
		"RemovePodSandbox": {func(id string) error {
			_, err := w.srv.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: id})
			return err
		}, []codes.Code{codes.OK, codes.NotFound, codes.InvalidArgument}},
		"PodSandboxStatus": {func(id string) error {
			_, err := w.srv.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"PodSandboxStats": {func(id string) error {
			_, err := w.srv.PodSandboxStats(ctx, &runtime.PodSandboxStatsRequest{PodSandboxId: id})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"PortForward": {func(id string) error {
			_, err := w.srv.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: id, Port: []int32{80}})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"UpdatePodSandboxResources": {func(id string) error {
			_, err := w.srv.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: id})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"CreateContainer": {func(id string) error {
			_, err := w.srv.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: id, Config: containerConfig("x")})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"StartContainer": {func(id string) error {
			_, err := w.srv.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"StopContainer": {func(id string) error {
			_, err := w.srv.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 1})
			return err
		}, []codes.Code{codes.OK, codes.NotFound, codes.InvalidArgument}},
		"RemoveContainer": {func(id string) error {
			_, err := w.srv.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: id})
			return err
		}, []codes.Code{codes.OK, codes.NotFound, codes.InvalidArgument}},
		"ContainerStatus": {func(id string) error {
			_, err := w.srv.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id, Verbose: true})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"ContainerStats": {func(id string) error {
			_, err := w.srv.ContainerStats(ctx, &runtime.ContainerStatsRequest{ContainerId: id})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"UpdateContainerResources": {func(id string) error {
			_, err := w.srv.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: id, Linux: &runtime.LinuxContainerResources{}})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"ReopenContainerLog": {func(id string) error {
			_, err := w.srv.ReopenContainerLog(ctx, &runtime.ReopenContainerLogRequest{ContainerId: id})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"ExecSync": {func(id string) error {
			_, err := w.srv.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"Exec": {func(id string) error {
			_, err := w.srv.Exec(ctx, &runtime.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
		"Attach": {func(id string) error {
			_, err := w.srv.Attach(ctx, &runtime.AttachRequest{ContainerId: id, Stdout: true})
			return err
		}, []codes.Code{codes.NotFound, codes.InvalidArgument}},
	}
	n := 0
	for name, c := range calls {
		expectCode(t, name+" with an empty ID", c.call(""), codes.InvalidArgument)
		for idName, id := range hostileIDs {
			expectCode(t, fmt.Sprintf("%s with a %s ID", name, idName), c.call(id), c.want...)
			n++
		}
	}
	// The world is intact: nothing the hostile IDs did touched the real objects.
	if st, err := w.srv.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: w.running}); err != nil || st.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("running container after the hostile IDs: %v %v", st, err)
	}
	// List filters with hostile IDs match nothing, without error.
	for idName, id := range hostileIDs {
		l, err := w.srv.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{Id: id, PodSandboxId: id}})
		if err != nil || len(l.Containers) != 0 {
			t.Errorf("ListContainers with a %s ID: %v %v", idName, l, err)
		}
		p, err := w.srv.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{Filter: &runtime.PodSandboxFilter{Id: id}})
		if err != nil || len(p.Items) != 0 {
			t.Errorf("ListPodSandbox with a %s ID: %v %v", idName, p, err)
		}
	}
	t.Logf("%d RPCs x %d hostile IDs (+ empty) = %d calls", len(calls), len(hostileIDs), n+len(calls))
}

// hostilePod is a valid pod config changed by mut.
func hostilePod(mut func(c *runtime.PodSandboxConfig)) *runtime.PodSandboxConfig {
	c := podConfig("hostile")
	c.LogDirectory = "/var/log/pods/ns_hostile_uid"
	c.Linux = &runtime.LinuxPodSandboxConfig{}
	mut(c)
	return c
}

func TestHostileSandboxConfigs(t *testing.T) {
	bad := map[string]func(c *runtime.PodSandboxConfig){
		"name oversized":         func(c *runtime.PodSandboxConfig) { c.Metadata.Name = strings.Repeat("n", 254) },
		"name control char":      func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "a\x01b" },
		"name escape sequence":   func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "a\x1b[31mred" },
		"name carriage return":   func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "a\rb" },
		"name tab":               func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "a\tb" },
		"name NUL":               func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "a\x00b" },
		"name slash":             func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "../etc" },
		"name DEL":               func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "a\x7f" },
		"namespace oversized":    func(c *runtime.PodSandboxConfig) { c.Metadata.Namespace = huge },
		"namespace newline":      func(c *runtime.PodSandboxConfig) { c.Metadata.Namespace = "ns\nx" },
		"uid empty":              func(c *runtime.PodSandboxConfig) { c.Metadata.Uid = "" },
		"uid control char":       func(c *runtime.PodSandboxConfig) { c.Metadata.Uid = "u\x02" },
		"uid slash":              func(c *runtime.PodSandboxConfig) { c.Metadata.Uid = "u/../../x" },
		"hostname oversized":     func(c *runtime.PodSandboxConfig) { c.Hostname = strings.Repeat("h", 300) },
		"hostname control char":  func(c *runtime.PodSandboxConfig) { c.Hostname = "h\x07" },
		"hostname newline":       func(c *runtime.PodSandboxConfig) { c.Hostname = "h\n127.0.0.1 evil" },
		"log_directory relative": func(c *runtime.PodSandboxConfig) { c.LogDirectory = "var/log/pods/x" },
		"log_directory dotdot":   func(c *runtime.PodSandboxConfig) { c.LogDirectory = "/var/log/pods/../../../etc" },
		"log_directory NUL":      func(c *runtime.PodSandboxConfig) { c.LogDirectory = "/var/log/\x00x" },
		"labels oversized":       func(c *runtime.PodSandboxConfig) { c.Labels = map[string]string{"k": bigValue} },
		"labels empty key":       func(c *runtime.PodSandboxConfig) { c.Labels = map[string]string{"": "v"} },
		"labels NUL":             func(c *runtime.PodSandboxConfig) { c.Labels = map[string]string{"k\x00": "v"} },
		"annotations oversized":  func(c *runtime.PodSandboxConfig) { c.Annotations = map[string]string{"k": bigValue} },
		"sysctl dotdot":          func(c *runtime.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"../../../etc/passwd": "x"} },
		"sysctl slash dotdot":    func(c *runtime.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"net/../../x": "1"} },
		"sysctl empty":           func(c *runtime.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"": "1"} },
		"sysctl empty segment":   func(c *runtime.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"net..core": "1"} },
		"sysctl NUL":             func(c *runtime.PodSandboxConfig) { c.Linux.Sysctls = map[string]string{"kernel.x\x00": "1"} },
		"sysctl value newline": func(c *runtime.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1\n0"}
		},
		"cgroup_parent dotdot":     func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = "/kubepods/../../x" },
		"cgroup_parent control":    func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = "/kubepods\n" },
		"resources cpu_shares < 0": func(c *runtime.PodSandboxConfig) { c.Linux.Resources = &runtime.LinuxContainerResources{CpuShares: -2} },
		"resources memory < 0": func(c *runtime.PodSandboxConfig) {
			c.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: -1}
		},
		"overhead cpu_period < 0": func(c *runtime.PodSandboxConfig) {
			c.Linux.Overhead = &runtime.LinuxContainerResources{CpuPeriod: -100}
		},
		"overhead oom_score_adj": func(c *runtime.PodSandboxConfig) {
			c.Linux.Overhead = &runtime.LinuxContainerResources{OomScoreAdj: 5000}
		},
		"dns server not an IP": func(c *runtime.PodSandboxConfig) { c.DnsConfig = &runtime.DNSConfig{Servers: []string{"not-an-ip"}} },
		"dns option injection": func(c *runtime.PodSandboxConfig) {
			c.DnsConfig = &runtime.DNSConfig{Options: []string{"ndots:5\nnameserver 6.6.6.6"}}
		},
		"dns search with space": func(c *runtime.PodSandboxConfig) { c.DnsConfig = &runtime.DNSConfig{Searches: []string{"a b"}} },
		"dns too many searches": func(c *runtime.PodSandboxConfig) {
			c.DnsConfig = &runtime.DNSConfig{Searches: strings.Split(strings.Repeat("s,", 40), ",")[:40]}
		},
		"dns too many servers": func(c *runtime.PodSandboxConfig) {
			c.DnsConfig = &runtime.DNSConfig{Servers: strings.Split(strings.Repeat("1.1.1.1,", 20), ",")[:20]}
		},
		"port container 0": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 0, HostPort: 80}}
		},
		"port container 65536":    func(c *runtime.PodSandboxConfig) { c.PortMappings = []*runtime.PortMapping{{ContainerPort: 65536}} },
		"port container negative": func(c *runtime.PodSandboxConfig) { c.PortMappings = []*runtime.PortMapping{{ContainerPort: -80}} },
		"port host 70000": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: 70000}}
		},
		"port host negative": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: -1}}
		},
		"port bad protocol": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, Protocol: 99}}
		},
		"port host_ip not an IP": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostIp: "999.1.1.1"}}
		},
		"bandwidth annotation bogus": func(c *runtime.PodSandboxConfig) {
			c.Annotations = map[string]string{"kubernetes.io/ingress-bandwidth": "lots"}
		},
	}
	good := map[string]func(c *runtime.PodSandboxConfig){
		"plain":            func(c *runtime.PodSandboxConfig) {},
		"name 253":         func(c *runtime.PodSandboxConfig) { c.Metadata.Name = strings.Repeat("n", 253) },
		"unicode name":     func(c *runtime.PodSandboxConfig) { c.Metadata.Name = "pöd-ü" },
		"hostname 63":      func(c *runtime.PodSandboxConfig) { c.Hostname = strings.Repeat("h", 63) },
		"no log_directory": func(c *runtime.PodSandboxConfig) { c.LogDirectory = "" },
		"sysctls kubelet uses": func(c *runtime.PodSandboxConfig) {
			c.Linux.Sysctls = map[string]string{"kernel.shm_rmid_forced": "1", "net.ipv4.ip_local_port_range": "1024 65000", "net/ipv4/conf/eth0.100/forwarding": "1"}
		},
		"cgroup_parent":  func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = "/kubepods/besteffort/poduid" },
		"systemd cgroup": func(c *runtime.PodSandboxConfig) { c.Linux.CgroupParent = "kubepods-besteffort-poduid.slice" },
		"ports": func(c *runtime.PodSandboxConfig) {
			c.PortMappings = []*runtime.PortMapping{{ContainerPort: 80, HostPort: 0}, {ContainerPort: 53, HostPort: 65535, Protocol: runtime.Protocol_UDP}, {ContainerPort: 132, Protocol: runtime.Protocol_SCTP}}
		},
		"dns": func(c *runtime.PodSandboxConfig) {
			c.DnsConfig = &runtime.DNSConfig{Servers: []string{"10.0.0.10", "fd00::a"}, Searches: []string{"ns.svc.cluster.local"}, Options: []string{"ndots:5"}}
		},
		"overhead": func(c *runtime.PodSandboxConfig) {
			c.Linux.Overhead = &runtime.LinuxContainerResources{CpuQuota: -1, MemorySwapLimitInBytes: -1, OomScoreAdj: -998, CpusetCpus: "0-1,3"}
		},
		"annotations 200KiB": func(c *runtime.PodSandboxConfig) {
			c.Annotations = map[string]string{"k": strings.Repeat("v", 200*1024)}
		},
	}
	ctx := context.Background()
	for name, mut := range bad {
		w := newFuzzWorld(t)
		_, err := w.srv.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: hostilePod(mut)})
		expectCode(t, "RunPodSandbox, "+name, err, codes.InvalidArgument)
	}
	for name, mut := range good {
		w := newFuzzWorld(t)
		_, err := w.srv.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: hostilePod(mut)})
		expectCode(t, "RunPodSandbox, valid "+name, err, codes.OK)
	}
	t.Logf("%d hostile and %d valid sandbox configs", len(bad), len(good))
}

func hostileContainer(mut func(c *runtime.ContainerConfig)) *runtime.ContainerConfig {
	c := containerConfig("hostile")
	c.Linux = &runtime.LinuxContainerConfig{}
	mut(c)
	return c
}

func TestHostileContainerConfigs(t *testing.T) {
	mnt := func(ctr, host string) func(c *runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) { c.Mounts = []*runtime.Mount{{ContainerPath: ctr, HostPath: host}} }
	}
	dev := func(ctr, host, perm string) func(c *runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) {
			c.Devices = []*runtime.Device{{ContainerPath: ctr, HostPath: host, Permissions: perm}}
		}
	}
	res := func(r *runtime.LinuxContainerResources) func(c *runtime.ContainerConfig) {
		return func(c *runtime.ContainerConfig) { c.Linux.Resources = r }
	}
	bad := map[string]func(c *runtime.ContainerConfig){
		"no metadata":                 func(c *runtime.ContainerConfig) { c.Metadata = nil },
		"name empty":                  func(c *runtime.ContainerConfig) { c.Metadata.Name = "" },
		"name oversized":              func(c *runtime.ContainerConfig) { c.Metadata.Name = huge },
		"name control char":           func(c *runtime.ContainerConfig) { c.Metadata.Name = "c\x1b]0;pwned\x07" },
		"name slash":                  func(c *runtime.ContainerConfig) { c.Metadata.Name = "../c" },
		"image empty":                 func(c *runtime.ContainerConfig) { c.Image = &runtime.ImageSpec{} },
		"log_path absolute":           func(c *runtime.ContainerConfig) { c.LogPath = "/etc/cron.d/evil" },
		"log_path dotdot":             func(c *runtime.ContainerConfig) { c.LogPath = "../../../etc/shadow" },
		"log_path dotdot inside":      func(c *runtime.ContainerConfig) { c.LogPath = "c/../../x.log" },
		"log_path NUL":                func(c *runtime.ContainerConfig) { c.LogPath = "c\x00.log" },
		"log_path newline":            func(c *runtime.ContainerConfig) { c.LogPath = "c\n.log" },
		"mount empty container_path":  mnt("", "/tmp"),
		"mount relative":              mnt("data", "/tmp"),
		"mount dotdot":                mnt("/data/../../etc", "/tmp"),
		"mount NUL":                   mnt("/data\x00", "/tmp"),
		"mount empty host_path":       mnt("/data", ""),
		"mount relative host_path":    mnt("/data", "tmp"),
		"mount dotdot host_path":      mnt("/data", "/var/lib/kubelet/../../../etc"),
		"device relative":             dev("dev/null", "/dev/null", "rw"),
		"device dotdot host":          dev("/dev/x", "/dev/../etc/shadow", "rw"),
		"device bad permissions":      dev("/dev/x", "/dev/null", "rwx"),
		"working_dir relative":        func(c *runtime.ContainerConfig) { c.WorkingDir = "tmp" },
		"working_dir NUL":             func(c *runtime.ContainerConfig) { c.WorkingDir = "/tmp\x00" },
		"env empty key":               func(c *runtime.ContainerConfig) { c.Envs = []*runtime.KeyValue{{Key: "", Value: []byte("x")}} },
		"env key with =":              func(c *runtime.ContainerConfig) { c.Envs = []*runtime.KeyValue{{Key: "A=B", Value: []byte("x")}} },
		"env NUL value":               func(c *runtime.ContainerConfig) { c.Envs = []*runtime.KeyValue{{Key: "A", Value: []byte("x\x00y")}} },
		"env oversized":               func(c *runtime.ContainerConfig) { c.Envs = []*runtime.KeyValue{{Key: "A", Value: []byte(huge + huge)}} },
		"command NUL":                 func(c *runtime.ContainerConfig) { c.Command = []string{"sh\x00", "-c"} },
		"args oversized":              func(c *runtime.ContainerConfig) { c.Args = []string{huge, huge} },
		"labels oversized":            func(c *runtime.ContainerConfig) { c.Labels = map[string]string{"k": bigValue} },
		"annotations oversized":       func(c *runtime.ContainerConfig) { c.Annotations = map[string]string{"k": bigValue} },
		"resources cpu_shares < 0":    res(&runtime.LinuxContainerResources{CpuShares: -1}),
		"resources cpu_period < 0":    res(&runtime.LinuxContainerResources{CpuPeriod: -1}),
		"resources cpu_quota < -1":    res(&runtime.LinuxContainerResources{CpuQuota: -2}),
		"resources memory < 0":        res(&runtime.LinuxContainerResources{MemoryLimitInBytes: -4096}),
		"resources swap < -1":         res(&runtime.LinuxContainerResources{MemorySwapLimitInBytes: -2}),
		"resources oom_score_adj":     res(&runtime.LinuxContainerResources{OomScoreAdj: -1001}),
		"resources cpuset garbage":    res(&runtime.LinuxContainerResources{CpusetCpus: "0-1;rm -rf"}),
		"resources hugepage size":     res(&runtime.LinuxContainerResources{HugepageLimits: []*runtime.HugepageLimit{{PageSize: "../2MB", Limit: 1}}}),
		"resources unified traversal": res(&runtime.LinuxContainerResources{Unified: map[string]string{"../../cgroup.procs": "1"}}),
	}
	good := map[string]func(c *runtime.ContainerConfig){
		"plain":              func(c *runtime.ContainerConfig) {},
		"log_path subdir":    func(c *runtime.ContainerConfig) { c.LogPath = "hostile/0.log" },
		"log_path clean dot": func(c *runtime.ContainerConfig) { c.LogPath = "a/../b.log" },
		"no log_path":        func(c *runtime.ContainerConfig) { c.LogPath = "" },
		"mount":              mnt("/data", "/var/lib/kubelet/pods/uid/volumes/x"),
		"device":             dev("/dev/fuse", "/dev/fuse", "rwm"),
		"working_dir":        func(c *runtime.ContainerConfig) { c.WorkingDir = "/srv" },
		"env": func(c *runtime.ContainerConfig) {
			c.Envs = []*runtime.KeyValue{{Key: "PATH", Value: []byte("/bin")}, {Key: "EMPTY"}}
		},
		"resources": res(&runtime.LinuxContainerResources{CpuQuota: -1, CpuPeriod: 100000, CpuShares: 2, MemoryLimitInBytes: 1 << 30, OomScoreAdj: 1000, CpusetCpus: "0", Unified: map[string]string{"memory.high": "max"}}),
		"image volume": func(c *runtime.ContainerConfig) {
			c.Mounts = []*runtime.Mount{{ContainerPath: "/img", Readonly: true, Image: &runtime.ImageSpec{Image: "busybox"}}}
		},
	}
	ctx := context.Background()
	for name, mut := range bad {
		w := newFuzzWorld(t)
		_, err := w.srv.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: w.sandbox, Config: hostileContainer(mut)})
		expectCode(t, "CreateContainer, "+name, err, codes.InvalidArgument)
	}
	for name, mut := range good {
		w := newFuzzWorld(t)
		_, err := w.srv.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: w.sandbox, Config: hostileContainer(mut)})
		expectCode(t, "CreateContainer, valid "+name, err, codes.OK)
	}
	// Updates of resources go through the same checks.
	w := newFuzzWorld(t)
	for name, r := range map[string]*runtime.LinuxContainerResources{
		"cpu_shares < 0": {CpuShares: -1}, "memory < 0": {MemoryLimitInBytes: -1}, "oom_score_adj": {OomScoreAdj: 2000}, "cpuset": {CpusetMems: "x"},
	} {
		_, err := w.srv.UpdateContainerResources(ctx, &runtime.UpdateContainerResourcesRequest{ContainerId: w.running, Linux: r})
		expectCode(t, "UpdateContainerResources, "+name, err, codes.InvalidArgument)
		_, err = w.srv.UpdatePodSandboxResources(ctx, &runtime.UpdatePodSandboxResourcesRequest{PodSandboxId: w.sandbox, Resources: r})
		expectCode(t, "UpdatePodSandboxResources, "+name, err, codes.InvalidArgument)
	}
	t.Logf("%d hostile and %d valid container configs", len(bad), len(good))
}

func TestHostileStreamingRequests(t *testing.T) {
	w := newFuzzWorld(t)
	ctx := context.Background()
	execs := map[string]*runtime.ExecRequest{
		"no cmd":          {ContainerId: w.running, Stdout: true},
		"empty cmd":       {ContainerId: w.running, Cmd: []string{}, Stdout: true},
		"NUL in cmd":      {ContainerId: w.running, Cmd: []string{"sh", "-c\x00"}, Stdout: true},
		"oversized cmd":   {ContainerId: w.running, Cmd: []string{huge, huge}, Stdout: true},
		"no stream":       {ContainerId: w.running, Cmd: []string{"sh"}},
		"tty with stderr": {ContainerId: w.running, Cmd: []string{"sh"}, Tty: true, Stdout: true, Stderr: true},
	}
	for name, req := range execs {
		_, err := w.srv.Exec(ctx, req)
		expectCode(t, "Exec, "+name, err, codes.InvalidArgument)
		_, err = w.srv.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: req.ContainerId, Cmd: req.Cmd})
		if len(req.Cmd) == 0 || name == "NUL in cmd" || name == "oversized cmd" {
			expectCode(t, "ExecSync, "+name, err, codes.InvalidArgument)
		}
	}
	_, err := w.srv.ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: w.running, Cmd: []string{"true"}, Timeout: -1})
	expectCode(t, "ExecSync, negative timeout", err, codes.InvalidArgument)
	_, err = w.srv.Exec(ctx, &runtime.ExecRequest{ContainerId: w.created, Cmd: []string{"true"}, Stdout: true})
	expectCode(t, "Exec in a container that does not run", err, codes.FailedPrecondition)
	for _, ports := range [][]int32{{0}, {-1}, {65536}, {80, 1 << 30}, {-2147483648}} {
		_, err := w.srv.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: w.sandbox, Port: ports})
		expectCode(t, fmt.Sprintf("PortForward %v", ports), err, codes.InvalidArgument)
	}
	for _, ports := range [][]int32{{1}, {65535}, {80, 443}, nil} {
		_, err := w.srv.PortForward(ctx, &runtime.PortForwardRequest{PodSandboxId: w.sandbox, Port: ports})
		expectCode(t, fmt.Sprintf("PortForward %v", ports), err, codes.OK)
	}
	_, err = w.srv.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: w.running, Timeout: -5})
	expectCode(t, "StopContainer, negative timeout", err, codes.InvalidArgument)
	// A request is never modified by the handler (proto.Clone before rewriting IDs).
	req := &runtime.ExecRequest{ContainerId: w.running, Cmd: []string{"true"}, Stdout: true}
	orig := proto.Clone(req)
	if _, err := w.srv.Exec(ctx, req); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(req, orig) {
		t.Fatalf("Exec modified its request")
	}
}
