package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/legacy"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestResolvConf(t *testing.T) {
	got, err := ResolvConf(&runtime.DNSConfig{
		Servers: []string{"10.0.0.10", "fd00::10"}, Searches: []string{"ns.svc.cluster.local", "svc.cluster.local"},
		Options: []string{"ndots:5", "edns0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "search ns.svc.cluster.local svc.cluster.local\nnameserver 10.0.0.10\nnameserver fd00::10\noptions ndots:5 edns0\n"
	if got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	if got, _ := ResolvConf(&runtime.DNSConfig{}); got != "" {
		t.Fatalf("empty config: %q", got)
	}
	for _, bad := range []*runtime.DNSConfig{
		{Servers: []string{"dns.example"}},
		{Searches: []string{"a\nnameserver 1.1.1.1"}},
		{Options: []string{""}},
		{Options: []string{"nd ots"}},
		{Searches: []string{strings.Repeat("a", 300)}},
	} {
		if err := legacy.ValidateDNS(bad); err == nil {
			t.Errorf("ValidateDNS(%v) succeeded", bad)
		}
	}
}

func TestBandwidth(t *testing.T) {
	bw, err := Bandwidth(map[string]string{legacy.IngressBandwidthAnnotation: "10M", legacy.EgressBandwidthAnnotation: "1Gi"})
	if err != nil {
		t.Fatal(err)
	}
	if bw.IngressRate != 10_000_000 || bw.EgressRate != 1<<30 || bw.IngressBurst == 0 {
		t.Fatalf("%+v", bw)
	}
	if bw, err := Bandwidth(map[string]string{"x": "y"}); bw != nil || err != nil {
		t.Fatalf("no annotations: %v %v", bw, err)
	}
	for _, bad := range []string{"", "ten", "10X", "1", "2P", "-5M", "99999999999999999999999"} {
		if _, err := Bandwidth(map[string]string{legacy.IngressBandwidthAnnotation: bad}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The pause container's cgroup is named by the driver: a path under cgroupfs, slice:prefix:name
// under systemd (system.slice without a parent: runc's systemd driver refuses containerd's default).
func TestSpecCgroupsPath(t *testing.T) {
	for _, c := range []struct {
		driver       cgroupdriver.Driver
		parent, want string
	}{
		{cgroupdriver.Cgroupfs, "/kubepods/besteffort/pod1", "/kubepods/besteffort/pod1/abc"},
		{"", "/kubepods/besteffort/pod1", "/kubepods/besteffort/pod1/abc"},
		{cgroupdriver.Cgroupfs, "", "/test/abc"}, // containerd's default: /<namespace>/<id>
		{cgroupdriver.Systemd, "/kubepods.slice/kubepods-pod1.slice", "kubepods-pod1.slice:cri-shim:abc"},
		{cgroupdriver.Systemd, "kubepods-pod1.slice", "kubepods-pod1.slice:cri-shim:abc"},
		{cgroupdriver.Systemd, "", "system.slice:cri-shim:abc"},
	} {
		cfg := &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
			Linux:    &runtime.LinuxPodSandboxConfig{CgroupParent: c.parent},
		}
		spec := genSpec(t, SpecInput{ID: "abc", Config: cfg, Image: imagespec.ImageConfig{Cmd: []string{"/pause"}},
			NetNSPath: "/run/netns/abc", CgroupDriver: c.driver})
		if spec.Linux.CgroupsPath != c.want {
			t.Errorf("%q %q: cgroupsPath %q, want %q", c.driver, c.parent, spec.Linux.CgroupsPath, c.want)
		}
	}
}

func genSpec(t *testing.T, in SpecInput) *runtimespec.Spec {
	t.Helper()
	opts, err := SpecOpts(in)
	if err != nil {
		t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), "test")
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: in.ID}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

func nsPath(spec *runtimespec.Spec, typ runtimespec.LinuxNamespaceType) (string, bool) {
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == typ {
			return ns.Path, true
		}
	}
	return "", false
}

func TestSpecPodNamespaces(t *testing.T) {
	cfg := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
		Hostname: "podhost",
		Linux: &runtime.LinuxPodSandboxConfig{
			CgroupParent: "/kubepods/pod-u",
			Sysctls:      map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
			SecurityContext: &runtime.LinuxSandboxSecurityContext{
				RunAsUser: &runtime.Int64Value{Value: 1000}, RunAsGroup: &runtime.Int64Value{Value: 2000},
				SupplementalGroups: []int64{3000},
				Seccomp:            &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault},
				SelinuxOptions:     &runtime.SELinuxOption{Level: "s0:c1,c2"},
			},
			Resources: &runtime.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 1 << 28},
		},
	}
	spec := genSpec(t, SpecInput{
		ID: "abc", Config: cfg, ImageName: "pause:3.10",
		Image:     imagespec.ImageConfig{Entrypoint: []string{"/pause"}, User: "65535:65535", Env: []string{"PATH=/bin"}},
		NetNSPath: "/run/netns/abc", Files: Files{ResolvConf: "/pod/resolv.conf", Shm: "/state/shm"},
		OOMScoreAdj: DefaultSandboxOOMScoreAdj,
	})
	if p, ok := nsPath(spec, runtimespec.NetworkNamespace); !ok || p != "/run/netns/abc" {
		t.Fatalf("net ns: %q %v", p, ok)
	}
	for _, typ := range []runtimespec.LinuxNamespaceType{runtimespec.PIDNamespace, runtimespec.IPCNamespace, runtimespec.UTSNamespace} {
		if p, ok := nsPath(spec, typ); !ok || p != "" {
			t.Fatalf("%s: new namespace expected, got %q %v", typ, p, ok)
		}
	}
	if spec.Hostname != "podhost" || spec.Process.Args[0] != "/pause" || !spec.Root.Readonly {
		t.Fatalf("hostname %q args %v readonly %v", spec.Hostname, spec.Process.Args, spec.Root.Readonly)
	}
	if u := spec.Process.User; u.UID != 1000 || u.GID != 2000 || len(u.AdditionalGids) == 0 || u.AdditionalGids[len(u.AdditionalGids)-1] != 3000 {
		t.Fatalf("user: %+v", u)
	}
	if spec.Linux.Seccomp == nil {
		t.Fatal("RuntimeDefault seccomp missing")
	}
	if spec.Linux.CgroupsPath != "/kubepods/pod-u/abc" || spec.Linux.Sysctl["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Fatalf("cgroup %q sysctls %v", spec.Linux.CgroupsPath, spec.Linux.Sysctl)
	}
	if *spec.Linux.Resources.CPU.Shares != 2 || spec.Annotations[AnnotationSandboxCPUShares] != "512" || spec.Annotations[AnnotationContainerType] != "sandbox" {
		t.Fatalf("resources %+v annotations %v", spec.Linux.Resources.CPU, spec.Annotations)
	}
	if adj := *spec.Process.OOMScoreAdj; adj < DefaultSandboxOOMScoreAdj {
		t.Fatalf("oom_score_adj %d", adj)
	}
	var shm, resolv bool
	for _, m := range spec.Mounts {
		switch m.Destination {
		case "/dev/shm":
			shm = m.Source == "/state/shm" && m.Type == "bind"
		case "/etc/resolv.conf":
			resolv = m.Source == "/pod/resolv.conf"
		}
	}
	if !shm || !resolv {
		t.Fatalf("mounts: %+v", spec.Mounts)
	}
}

func TestSpecHostNamespaces(t *testing.T) {
	cfg := &runtime.PodSandboxConfig{
		Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
		Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
			Privileged: true,
			NamespaceOptions: &runtime.NamespaceOption{
				Network: runtime.NamespaceMode_NODE, Pid: runtime.NamespaceMode_NODE, Ipc: runtime.NamespaceMode_NODE},
		}},
	}
	spec := genSpec(t, SpecInput{ID: "abc", Config: cfg, Image: imagespec.ImageConfig{Cmd: []string{"/pause"}},
		Files: PodFiles("/r", "/s", true)})
	for _, typ := range []runtimespec.LinuxNamespaceType{runtimespec.NetworkNamespace, runtimespec.PIDNamespace, runtimespec.IPCNamespace, runtimespec.UTSNamespace} {
		if _, ok := nsPath(spec, typ); ok {
			t.Fatalf("%s namespace present for a host pod", typ)
		}
	}
	for _, m := range spec.Mounts {
		if m.Destination == "/dev/shm" && m.Source != "/dev/shm" {
			t.Fatalf("host IPC pod gets %s as /dev/shm", m.Source)
		}
	}
	if spec.Linux.Seccomp != nil {
		t.Fatal("privileged pod has seccomp")
	}
}

func TestSpecErrors(t *testing.T) {
	base := func() *runtime.PodSandboxConfig {
		return &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"},
			Linux: &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{}}}
	}
	img := imagespec.ImageConfig{Cmd: []string{"/pause"}}
	if _, err := SpecOpts(SpecInput{Config: base()}); err == nil {
		t.Error("image without entrypoint accepted")
	}
	c := base()
	c.Linux.SecurityContext.RunAsGroup = &runtime.Int64Value{Value: 1}
	if _, err := SpecOpts(SpecInput{Config: c, Image: img}); err == nil {
		t.Error("run_as_group without run_as_user accepted")
	}
	c = base()
	c.Linux.SecurityContext.Seccomp = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost}
	if _, err := SpecOpts(SpecInput{Config: c, Image: img}); err == nil {
		t.Error("localhost seccomp without a ref accepted")
	}
}

func TestFilesWrite(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("mounting /dev/shm needs root")
	}
	dir := t.TempDir()
	HostHosts = filepath.Join(dir, "host-hosts")
	os.WriteFile(HostHosts, []byte("127.0.0.1 localhost\n"), 0o644)
	f := PodFiles(filepath.Join(dir, "root"), filepath.Join(dir, "state"), false)
	cfg := &runtime.PodSandboxConfig{Hostname: "h1", DnsConfig: &runtime.DNSConfig{Servers: []string{"1.2.3.4"}}}
	if err := f.Write(cfg, 1<<20); err != nil {
		t.Fatal(err)
	}
	defer f.Cleanup()
	for p, want := range map[string]string{f.Hostname: "h1\n", f.Hosts: "127.0.0.1 localhost\n", f.ResolvConf: "nameserver 1.2.3.4\n"} {
		if b, _ := os.ReadFile(p); string(b) != want {
			t.Errorf("%s: %q, want %q", p, b, want)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if !strings.Contains(string(mounts), f.Shm+" tmpfs") || !strings.Contains(string(mounts), "size=1024k") {
		t.Fatal("shm not mounted with its size")
	}
	if err := f.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if err := f.Cleanup(); err != nil {
		t.Fatalf("second cleanup: %v", err)
	}
}
