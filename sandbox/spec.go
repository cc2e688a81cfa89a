package sandbox

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/lsm"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FileMountPoints are the files the pause container's spec binds over in its rootfs (the rest of
// its mounts are directories, or below runc's /dev tmpfs). runc makes a missing one as the
// container starts; a rootfs shared by pause containers has them made beforehand, since two
// runc's making one at once fail (EEXIST).
var FileMountPoints = []string{resolvConfDest}

const resolvConfDest = "/etc/resolv.conf"

// Annotations cri-shim puts on the pause container's spec (the names containerd's CRI uses, which
// OCI hooks and runtimes know).
const (
	AnnotationContainerType      = "io.kubernetes.cri.container-type"
	ContainerTypeSandbox         = "sandbox"
	AnnotationSandboxID          = "io.kubernetes.cri.sandbox-id"
	AnnotationSandboxName        = "io.kubernetes.cri.sandbox-name"
	AnnotationSandboxNamespace   = "io.kubernetes.cri.sandbox-namespace"
	AnnotationSandboxUID         = "io.kubernetes.cri.sandbox-uid"
	AnnotationSandboxLogDir      = "io.kubernetes.cri.sandbox-log-directory"
	AnnotationSandboxImageName   = "io.kubernetes.cri.image-name"
	AnnotationSandboxCPUPeriod   = "io.kubernetes.cri.sandbox-cpu-period"
	AnnotationSandboxCPUQuota    = "io.kubernetes.cri.sandbox-cpu-quota"
	AnnotationSandboxCPUShares   = "io.kubernetes.cri.sandbox-cpu-shares"
	AnnotationSandboxMemory      = "io.kubernetes.cri.sandbox-memory"
	AnnotationSandboxOverheadCPU = "io.kubernetes.cri.sandbox-overhead-cpu-shares"
	AnnotationSandboxOverheadMem = "io.kubernetes.cri.sandbox-overhead-memory"
)

// DefaultSandboxOOMScoreAdj is what the pause container asks for: the kubelet's value, so that the
// kernel kills it last.
const DefaultSandboxOOMScoreAdj = -998

// defaultSandboxCPUShares is the pause container's cpu.shares: it needs next to nothing.
const defaultSandboxCPUShares = 2

// SpecInput is what the pause container's spec is made of.
type SpecInput struct {
	// ID of the sandbox.
	ID string
	// Config is the CRI pod sandbox config.
	Config *runtime.PodSandboxConfig
	// Image is the pause image's config; ImageName its reference.
	Image     imagespec.ImageConfig
	ImageName string
	// NetNSPath is the pod's network namespace (ignored with the host network).
	NetNSPath string
	// Files are the pod's files; the pause container mounts resolv.conf and /dev/shm.
	Files Files
	// OOMScoreAdj is the adjustment requested for the pause process; it is raised to the daemon's
	// own when that is higher (lowering it needs CAP_SYS_RESOURCE).
	OOMScoreAdj int
	// UsernsPath is the pinned user namespace the pause process joins (PinUserns), required with
	// a user namespace of mode POD.
	UsernsPath string
	// RootfsPath, when set, is the pause container's rootfs directory (shared by pause containers;
	// it has no snapshot of its own then).
	RootfsPath string
	// CgroupDriver names the pause container's cgroup (the zero value: cgroupfs).
	CgroupDriver cgroupdriver.Driver
	// SELinux is the host's SELinux, which says once that pods' SELinux options are ignored; nil
	// is this host's.
	SELinux *lsm.SELinux
}

// SpecOpts returns the OCI spec options of the pause container, to apply over containerd's default
// spec.
func SpecOpts(in SpecInput) ([]oci.SpecOpts, error) {
	config := in.Config
	sc := config.GetLinux().GetSecurityContext()
	nsOpts := sc.GetNamespaceOptions()

	args := append(append([]string{}, in.Image.Entrypoint...), in.Image.Cmd...)
	if len(args) == 0 {
		return nil, fmt.Errorf("sandbox image %s has neither entrypoint nor cmd", in.ImageName)
	}
	opts := []oci.SpecOpts{
		oci.WithoutRunMount,
		WithoutDefaultSecurity,
		oci.WithEnv(in.Image.Env),
		oci.WithRootFSReadonly(),
		oci.WithProcessArgs(args...),
	}
	if in.RootfsPath != "" {
		opts = append(opts, oci.WithRootFSPath(in.RootfsPath))
	}
	if in.Image.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(in.Image.WorkingDir))
	}
	hostNet := nsOpts.GetNetwork() == runtime.NamespaceMode_NODE
	if hostNet {
		opts = append(opts, oci.WithHostNamespace(runtimespec.NetworkNamespace), oci.WithHostNamespace(runtimespec.UTSNamespace))
	} else {
		opts = append(opts, oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.NetworkNamespace, Path: in.NetNSPath}),
			oci.WithHostname(config.GetHostname()))
	}
	if nsOpts.GetPid() == runtime.NamespaceMode_NODE {
		opts = append(opts, oci.WithHostNamespace(runtimespec.PIDNamespace))
	}
	hostIPC := nsOpts.GetIpc() == runtime.NamespaceMode_NODE
	if hostIPC {
		opts = append(opts, oci.WithHostNamespace(runtimespec.IPCNamespace))
	}
	// No user namespace options (nil) is the host's user namespace, as NODE.
	switch u := nsOpts.GetUsernsOptions(); {
	case u == nil || u.GetMode() == runtime.NamespaceMode_NODE:
	case u.GetMode() == runtime.NamespaceMode_POD:
		if in.UsernsPath == "" || len(u.GetUids()) != 1 || len(u.GetGids()) != 1 {
			return nil, fmt.Errorf("user namespace of mode POD needs a pinned namespace and one uid and one gid mapping")
		}
		uid, gid := u.GetUids()[0], u.GetGids()[0]
		opts = append(opts, WithUsernsPath(in.UsernsPath,
			runtimespec.LinuxIDMapping{ContainerID: uid.GetContainerId(), HostID: uid.GetHostId(), Size: uid.GetLength()},
			runtimespec.LinuxIDMapping{ContainerID: gid.GetContainerId(), HostID: gid.GetHostId(), Size: gid.GetLength()}))
	default:
		return nil, fmt.Errorf("user namespaces of mode %s are not supported", u.GetMode())
	}
	if cg := in.CgroupDriver.CgroupsPath(config.GetLinux().GetCgroupParent(), in.ID); cg != "" {
		opts = append(opts, oci.WithCgroup(cg))
	}

	shm := in.Files.Shm
	if hostIPC || shm == "" {
		shm = "/dev/shm"
	}
	mounts := []runtimespec.Mount{{
		Source: shm, Destination: "/dev/shm", Type: "bind",
		Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
	}}
	if in.Files.ResolvConf != "" {
		mounts = append(mounts, runtimespec.Mount{
			Source: in.Files.ResolvConf, Destination: resolvConfDest, Type: "bind",
			Options: []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
		})
	}
	opts = append(opts, oci.WithoutMounts("/dev/shm"), oci.WithMounts(mounts))

	// Security: user, groups, seccomp, privileged. SELinux options are ignored (the runtime applies
	// no labels and does not start where SELinux enforces), which is said once; the pause container
	// gets no AppArmor profile, as containerd's (CRI has no sandbox-level AppArmor setting).
	if o := sc.GetSelinuxOptions(); o.GetUser()+o.GetRole()+o.GetType()+o.GetLevel() != "" {
		selinux := in.SELinux
		if selinux == nil {
			selinux = lsm.HostSELinux()
		}
		selinux.IgnoredOptions(in.ID)
	}
	user := ""
	switch {
	case sc.GetRunAsUser() != nil && sc.GetRunAsGroup() != nil:
		user = fmt.Sprintf("%d:%d", sc.GetRunAsUser().GetValue(), sc.GetRunAsGroup().GetValue())
	case sc.GetRunAsUser() != nil:
		user = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	case sc.GetRunAsGroup() != nil:
		return nil, fmt.Errorf("run_as_group is set without run_as_user")
	default:
		user = in.Image.User
	}
	if user != "" {
		opts = append(opts, oci.WithUser(user))
	}
	if groups := sc.GetSupplementalGroups(); len(groups) > 0 {
		opts = append(opts, withSupplementalGroups(groups))
	}
	if sc.GetPrivileged() {
		opts = append(opts, oci.WithWriteableSysfs)
	} else {
		sp, err := seccompOpts(sc)
		if err != nil {
			return nil, err
		}
		if sp != nil {
			opts = append(opts, sp)
		}
	}

	sysctls := config.GetLinux().GetSysctls()
	if len(sysctls) > 0 {
		opts = append(opts, withSysctls(sysctls))
	}
	opts = append(opts, withCPUShares(defaultSandboxCPUShares), withOOMScoreAdj(in.OOMScoreAdj))

	ann := map[string]string{
		AnnotationContainerType:    ContainerTypeSandbox,
		AnnotationSandboxID:        in.ID,
		AnnotationSandboxName:      config.GetMetadata().GetName(),
		AnnotationSandboxNamespace: config.GetMetadata().GetNamespace(),
		AnnotationSandboxUID:       config.GetMetadata().GetUid(),
		AnnotationSandboxLogDir:    config.GetLogDirectory(),
		AnnotationSandboxImageName: in.ImageName,
	}
	if res := config.GetLinux().GetResources(); res != nil {
		ann[AnnotationSandboxCPUPeriod] = strconv.FormatInt(res.GetCpuPeriod(), 10)
		ann[AnnotationSandboxCPUQuota] = strconv.FormatInt(res.GetCpuQuota(), 10)
		ann[AnnotationSandboxCPUShares] = strconv.FormatInt(res.GetCpuShares(), 10)
		ann[AnnotationSandboxMemory] = strconv.FormatInt(res.GetMemoryLimitInBytes(), 10)
	}
	if oh := config.GetLinux().GetOverhead(); oh != nil {
		ann[AnnotationSandboxOverheadCPU] = strconv.FormatInt(oh.GetCpuShares(), 10)
		ann[AnnotationSandboxOverheadMem] = strconv.FormatInt(oh.GetMemoryLimitInBytes(), 10)
	}
	opts = append(opts, oci.WithAnnotations(ann))
	return opts, nil
}

func seccompOpts(sc *runtime.LinuxSandboxSecurityContext) (oci.SpecOpts, error) {
	if p := sc.GetSeccomp(); p != nil {
		switch p.GetProfileType() {
		case runtime.SecurityProfile_Unconfined:
			return nil, nil
		case runtime.SecurityProfile_RuntimeDefault:
			return seccomp.WithDefaultProfile(), nil
		case runtime.SecurityProfile_Localhost:
			if p.GetLocalhostRef() == "" {
				return nil, fmt.Errorf("seccomp: localhost profile without localhost_ref")
			}
			return seccomp.WithProfile(p.GetLocalhostRef()), nil
		}
		return nil, fmt.Errorf("seccomp: unknown profile type %v", p.GetProfileType())
	}
	//nolint:staticcheck // the deprecated field is still sent by older kubelets
	switch pp := sc.GetSeccompProfilePath(); {
	case pp == "" || pp == "unconfined":
		return nil, nil
	case pp == "runtime/default" || pp == "docker/default":
		return seccomp.WithDefaultProfile(), nil
	case strings.HasPrefix(pp, "localhost/"):
		return seccomp.WithProfile(strings.TrimPrefix(pp, "localhost/")), nil
	default:
		return nil, fmt.Errorf("seccomp: unknown profile %q", pp)
	}
}

// WithoutDefaultSecurity clears what containerd's default spec sets on its own (AppArmor profile,
// rlimits, seccomp), so that only what the CRI config asks for applies.
func WithoutDefaultSecurity(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
	if s.Process == nil {
		s.Process = &runtimespec.Process{}
	}
	s.Process.ApparmorProfile = ""
	s.Process.Rlimits = nil
	if s.Linux != nil {
		s.Linux.Seccomp = nil
	}
	return nil
}

func withSupplementalGroups(groups []int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		if s.Process == nil {
			s.Process = &runtimespec.Process{}
		}
		for _, g := range groups {
			s.Process.User.AdditionalGids = append(s.Process.User.AdditionalGids, uint32(g))
		}
		return nil
	}
}

func withSysctls(sysctls map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		if s.Linux == nil {
			s.Linux = &runtimespec.Linux{}
		}
		if s.Linux.Sysctl == nil {
			s.Linux.Sysctl = map[string]string{}
		}
		for k, v := range sysctls {
			s.Linux.Sysctl[k] = v
		}
		return nil
	}
}

func withCPUShares(shares uint64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		if s.Linux == nil {
			s.Linux = &runtimespec.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &runtimespec.LinuxResources{}
		}
		if s.Linux.Resources.CPU == nil {
			s.Linux.Resources.CPU = &runtimespec.LinuxCPU{}
		}
		s.Linux.Resources.CPU.Shares = &shares
		return nil
	}
}

func withOOMScoreAdj(adj int) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		if s.Process == nil {
			s.Process = &runtimespec.Process{}
		}
		a := RestrictOOMScoreAdj(adj)
		s.Process.OOMScoreAdj = &a
		return nil
	}
}

// RestrictOOMScoreAdj raises adj to the daemon's own oom_score_adj when that is higher: a process
// without CAP_SYS_RESOURCE cannot lower it, and runc would fail.
func RestrictOOMScoreAdj(adj int) int {
	b, err := os.ReadFile("/proc/self/oom_score_adj")
	if err != nil {
		return adj
	}
	own, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return adj
	}
	return max(adj, own)
}
