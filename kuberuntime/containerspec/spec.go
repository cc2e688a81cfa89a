package containerspec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cap"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/lsm"
	"github.com/cri-shim/cri-shim/lsm/apparmorprofile"
	"github.com/cri-shim/cri-shim/sandbox"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Annotations on a container's OCI spec (the names containerd's CRI uses, which hooks and runtimes
// know).
const (
	AnnotationContainerName = "io.kubernetes.cri.container-name"
	ContainerTypeContainer  = "container"
	AnnotationImageName     = "io.kubernetes.cri.image-name"
	// AnnotationTerminationMessagePath is the kubelet's container annotation naming the file, in
	// the container, of its termination message.
	AnnotationTerminationMessagePath = "io.kubernetes.container.terminationMessagePath"
)

// Paths in the container of the files the sandbox provides.
const (
	etcHostname = "/etc/hostname"
	etcHosts    = "/etc/hosts"
	resolvConf  = "/etc/resolv.conf"
	devShm      = "/dev/shm"
)

// Input is what a container's OCI spec is made of.
type Input struct {
	// ID of the container.
	ID string
	// Config is the CRI container config.
	Config *runtime.ContainerConfig
	// SandboxID, SandboxConfig and SandboxPid are the pod's sandbox, its CRI config and the pid of
	// its pause process (whose namespaces the container joins).
	SandboxID     string
	SandboxConfig *runtime.PodSandboxConfig
	SandboxPid    uint32
	// PodNS, set for a pod without a pause process, are the paths of its pinned namespaces, which
	// the container joins instead of the pause process's.
	PodNS *sandbox.PodNamespaces
	// TargetPid is the pid whose pid namespace the container joins with NamespaceMode_TARGET.
	TargetPid uint32
	// Files are the pod's hostname, hosts, resolv.conf and /dev/shm.
	Files sandbox.Files
	// Image is the image's config; ImageName the name the container was asked to run.
	Image     imagespec.ImageConfig
	ImageName string
	// VolumeMounts are the image's volumes, as bind mounts of dirs of the container's own.
	VolumeMounts []*runtime.Mount
	// ImageChainID is the image's chain ID; UserCache, when set, keeps the user lookups by image
	// (user_cache.go).
	ImageChainID string
	UserCache    *UserCache
	// Host is what the spec reads from the host; what it leaves unset is DefaultHost's.
	Host Host
	// RunAsNonRoot refuses a user that resolves to uid 0 (ErrVerifyNonRoot). CRI has no such field
	// (the kubelet verifies it); the model's own callers (standalone pods) set it.
	RunAsNonRoot bool
	// CgroupDriver names the container's cgroup (the zero value: cgroupfs).
	CgroupDriver cgroupdriver.Driver
}

// Host is what a container's spec depends on from the host it runs on; tests pin it.
type Host struct {
	// SwapAvailable tells whether memory+swap limits can be set.
	SwapAvailable func() bool
	// HugetlbAvailable tells whether the hugetlb cgroup controller is there.
	HugetlbAvailable func() bool
	// CgroupUnified tells whether the host runs cgroup v2.
	CgroupUnified func() bool
	// AppArmor is the host's AppArmor: whether it is there, its loaded profiles, the default one.
	AppArmor *lsm.AppArmor
	// SELinux is the host's SELinux, which says once that SELinux options are ignored.
	SELinux *lsm.SELinux
	// CurrentCaps are the capabilities of the daemon (what "add ALL" gives).
	CurrentCaps func() ([]string, error)
	// LookupMount finds the mount holding a path; MakeMountShared makes a mount point shared.
	LookupMount     func(path string) (mount.Info, error)
	MakeMountShared func(mountpoint string) error
	// RestrictOOMScore raises an oom_score_adj to the daemon's own when that is higher.
	RestrictOOMScore func(adj int) int
	// Hostname is the node's name, the hostname of a pod that sets none.
	Hostname func() (string, error)
	// RecursiveReadOnly tells whether the runtime applies recursive read-only mounts.
	RecursiveReadOnly func() bool
}

// DefaultHost is the host this process runs on. RecursiveReadOnly says no: whether the runtime
// can is the runtime's to tell (its runc's features), so its caller sets it.
func DefaultHost() Host {
	h := Host{
		CgroupUnified:     func() bool { return cgroups.Mode() == cgroups.Unified },
		AppArmor:          apparmorprofile.Host(),
		SELinux:           lsm.HostSELinux(),
		CurrentCaps:       cap.Current,
		LookupMount:       mount.Lookup,
		MakeMountShared:   func(mountpoint string) error { return unix.Mount("", mountpoint, "", unix.MS_SHARED, "") },
		RestrictOOMScore:  sandbox.RestrictOOMScoreAdj,
		Hostname:          os.Hostname,
		RecursiveReadOnly: func() bool { return false },
	}
	h.SwapAvailable = func() bool { return swapControllerAvailable(h.CgroupUnified()) }
	h.HugetlbAvailable = func() bool { return hugetlbControllerAvailable(h.CgroupUnified()) }
	return h
}

// orDefault is h with DefaultHost's features where h has none.
func (h Host) orDefault() Host {
	d := DefaultHost()
	pick := func(f *func() bool, def func() bool) {
		if *f == nil {
			*f = def
		}
	}
	pick(&h.SwapAvailable, d.SwapAvailable)
	pick(&h.HugetlbAvailable, d.HugetlbAvailable)
	pick(&h.CgroupUnified, d.CgroupUnified)
	pick(&h.RecursiveReadOnly, d.RecursiveReadOnly)
	if h.CurrentCaps == nil {
		h.CurrentCaps = d.CurrentCaps
	}
	if h.AppArmor == nil {
		h.AppArmor = d.AppArmor
	}
	if h.SELinux == nil {
		h.SELinux = d.SELinux
	}
	if h.LookupMount == nil {
		h.LookupMount = d.LookupMount
	}
	if h.MakeMountShared == nil {
		h.MakeMountShared = d.MakeMountShared
	}
	if h.RestrictOOMScore == nil {
		h.RestrictOOMScore = d.RestrictOOMScore
	}
	if h.Hostname == nil {
		h.Hostname = d.Hostname
	}
	return h
}

// Opts returns the OCI spec options of a container, to apply over containerd's
// default spec when the container is created on its snapshot (the user is resolved through the
// image's /etc/passwd and /etc/group then).
func Opts(in Input) ([]oci.SpecOpts, error) {
	in.Host = in.Host.orDefault()
	sc := in.Config.GetLinux().GetSecurityContext()

	opts := []oci.SpecOpts{
		oci.WithoutRunMount,
		sandbox.WithoutDefaultSecurity,
	}
	process, err := processOpts(in)
	if err != nil {
		return nil, err
	}
	opts = append(opts, process...)

	// Security: privileged needs a privileged sandbox.
	privileged := sc.GetPrivileged()
	if privileged && !in.SandboxConfig.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, fmt.Errorf("no privileged container allowed in a sandbox that is not privileged: %w", errdefs.ErrInvalidArgument)
	}
	if in.Host.CgroupUnified() && !privileged {
		opts = append(opts, oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.CgroupNamespace}))
	}

	// The pod's user namespace, if it has one: the container joins it, its mounts are idmapped.
	userns, usernsOpts, err := containerUserns(in)
	if err != nil {
		return nil, err
	}
	mountOpt, err := withContainerMounts(in.Config, extraMounts(in, userns), userns != nil, in.Host)
	if err != nil {
		return nil, err
	}
	opts = append(opts, mountOpt)

	security, err := securityOpts(in, privileged)
	if err != nil {
		return nil, err
	}
	opts = append(opts, security...)
	resources, err := resourceOpts(in)
	if err != nil {
		return nil, err
	}
	opts = append(opts, resources...)
	opts = append(opts, usernsOpts...)
	namespaces, err := namespaceOpts(in)
	if err != nil {
		return nil, err
	}
	opts = append(opts, namespaces...)

	// The user, resolved through the image's files, then the groups.
	userOpts, err := userSpecOpts(sc, in.Image.User, in.RunAsNonRoot)
	if err != nil {
		return nil, err
	}
	opts = append(opts, withCachedUserLookup(in.UserCache, userLookupKey(in.ImageChainID, in.Image.User, sc, in.RunAsNonRoot), withImageRootfs(userOpts...)))

	lsm, err := lsmOpts(in, privileged)
	if err != nil {
		return nil, err
	}
	opts = append(opts, lsm...)
	return append(opts, withContainerAnnotations(in)), nil
}

// processOpts are the options of the container's process: its command from the CRI config and
// the image, working directory, terminal and environment.
func processOpts(in Input) ([]oci.SpecOpts, error) {
	config := in.Config
	args, err := processArgs(config, &in.Image)
	if err != nil {
		return nil, err
	}
	opts := []oci.SpecOpts{oci.WithProcessArgs(args...), oci.WithDefaultPathEnv, oci.WithNewPrivileges}
	if wd := config.GetWorkingDir(); wd != "" {
		opts = append(opts, oci.WithProcessCwd(wd))
	} else if in.Image.WorkingDir != "" {
		opts = append(opts, oci.WithProcessCwd(in.Image.WorkingDir))
	}
	if config.GetTty() {
		opts = append(opts, oci.WithTTY)
	}

	hostname := in.SandboxConfig.GetHostname()
	if hostname == "" {
		h, err := in.Host.Hostname()
		if err != nil {
			return nil, err
		}
		hostname = h
	}
	// The image's env, then the CRI's replacing it (one WithEnv does not dedupe within itself).
	opts = append(opts, oci.WithEnv([]string{"HOSTNAME=" + hostname}), oci.WithEnv(in.Image.Env))
	for _, e := range config.GetEnvs() {
		opts = append(opts, oci.WithEnv([]string{e.GetKey() + "=" + string(e.GetValue())}))
	}
	return opts, nil
}

// securityOpts are the container's masked and read-only paths, devices, capabilities,
// privileges and read-only root.
func securityOpts(in Input, privileged bool) ([]oci.SpecOpts, error) {
	config := in.Config
	sc := config.GetLinux().GetSecurityContext()
	// The kubelet sends the masked and read-only paths it wants (the defaults unless procMount is
	// Unmasked); none are added by default.
	opts := []oci.SpecOpts{oci.WithMaskedPaths([]string{}), oci.WithReadonlyPaths([]string{})}
	if p := sc.GetMaskedPaths(); p != nil {
		opts = append(opts, oci.WithMaskedPaths(p))
	}
	if p := sc.GetReadonlyPaths(); p != nil {
		opts = append(opts, oci.WithReadonlyPaths(p))
	}
	opts = append(opts, WithDevices(config))
	capsOpt, err := withCapabilities(sc, in.Host)
	if err != nil {
		return nil, err
	}
	opts = append(opts, capsOpt)
	if privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithHostDevices, oci.WithAllDevicesAllowed,
			oci.WithWriteableSysfs, oci.WithWriteableCgroupfs)
	}
	opts = append(opts, withoutAmbientCaps)
	if sc.GetNoNewPrivs() {
		opts = append(opts, oci.WithNoNewPrivileges)
	}
	if sc.GetReadonlyRootfs() {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	return opts, nil
}

// resourceOpts are the container's resources, OOM score and cgroup.
func resourceOpts(in Input) ([]oci.SpecOpts, error) {
	res := in.Config.GetLinux().GetResources()
	resOpt, err := withResources(res, in.Host)
	if err != nil {
		return nil, err
	}
	opts := []oci.SpecOpts{resOpt, withContainerOOMScoreAdj(res.GetOomScoreAdj(), in.Host)}
	if cg := in.CgroupDriver.CgroupsPath(in.SandboxConfig.GetLinux().GetCgroupParent(), in.ID); cg != "" {
		opts = append(opts, oci.WithCgroup(cg))
	}
	return opts, nil
}

// namespaceOpts: the sandbox's network, IPC and UTS namespaces; its PID namespace unless the
// container wants its own, or the target container's.
func namespaceOpts(in Input) ([]oci.SpecOpts, error) {
	if in.PodNS != nil {
		return pinnedNamespaceOpts(in)
	}
	if in.SandboxPid == 0 {
		return nil, fmt.Errorf("sandbox %s has no running pause process: %w", in.SandboxID, errdefs.ErrFailedPrecondition)
	}
	opts := []oci.SpecOpts{
		oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.NetworkNamespace, Path: nsPath(in.SandboxPid, "net")}),
		oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.IPCNamespace, Path: nsPath(in.SandboxPid, "ipc")}),
		oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.UTSNamespace, Path: nsPath(in.SandboxPid, "uts")}),
	}
	nsOpts := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	switch nsOpts.GetPid() {
	case runtime.NamespaceMode_CONTAINER:
		opts = append(opts, oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.PIDNamespace}))
	case runtime.NamespaceMode_TARGET:
		if in.TargetPid == 0 {
			return nil, fmt.Errorf("target container %q of the pid namespace is not running: %w", nsOpts.GetTargetId(), errdefs.ErrFailedPrecondition)
		}
		opts = append(opts, oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.PIDNamespace, Path: nsPath(in.TargetPid, "pid")}))
	default: // POD, and NODE (the pause process is then in the host's)
		opts = append(opts, oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.PIDNamespace, Path: nsPath(in.SandboxPid, "pid")}))
	}
	return opts, nil
}

// pinnedNamespaceOpts: the pinned network, IPC and UTS namespaces of a pod without a pause process
// (the host's where it has none of its own); a PID namespace of the container's own, the target
// container's, or the host's: such a pod has no PID namespace to share (its containers are made
// with the kubelet's default, CONTAINER).
func pinnedNamespaceOpts(in Input) ([]oci.SpecOpts, error) {
	ns := in.PodNS
	join := func(t runtimespec.LinuxNamespaceType, path string) oci.SpecOpts {
		if path == "" {
			return oci.WithHostNamespace(t)
		}
		return oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: t, Path: path})
	}
	opts := []oci.SpecOpts{
		join(runtimespec.NetworkNamespace, ns.Net),
		join(runtimespec.IPCNamespace, ns.IPC),
		join(runtimespec.UTSNamespace, ns.UTS),
	}
	nsOpts := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	switch nsOpts.GetPid() {
	case runtime.NamespaceMode_TARGET:
		if in.TargetPid == 0 {
			return nil, fmt.Errorf("target container %q of the pid namespace is not running: %w", nsOpts.GetTargetId(), errdefs.ErrFailedPrecondition)
		}
		opts = append(opts, oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.PIDNamespace, Path: nsPath(in.TargetPid, "pid")}))
	case runtime.NamespaceMode_NODE:
		opts = append(opts, oci.WithHostNamespace(runtimespec.PIDNamespace))
	default:
		// CONTAINER; and POD (no options at all), which the pod's own options overrule: the pod
		// shares no PID namespace, so the container gets one of its own.
		opts = append(opts, oci.WithLinuxNamespace(runtimespec.LinuxNamespace{Type: runtimespec.PIDNamespace}))
	}
	return opts, nil
}

// lsmOpts: AppArmor (only when the host has it) and seccomp, after the capabilities (the default
// seccomp profile depends on them). SELinux options are ignored (the runtime applies no labels; it
// does not start where SELinux enforces), which the host's SELinux says once.
func lsmOpts(in Input, privileged bool) ([]oci.SpecOpts, error) {
	sc := in.Config.GetLinux().GetSecurityContext()
	var opts []oci.SpecOpts
	aa, err := apparmorOpt(sc, in.Host.AppArmor)
	if err != nil {
		return nil, err
	}
	if aa != nil {
		opts = append(opts, aa)
	}
	if !privileged {
		sp, err := containerSeccompOpt(sc)
		if err != nil {
			return nil, err
		}
		if sp != nil {
			opts = append(opts, sp)
		}
	}
	if hasSELinuxOptions(sc.GetSelinuxOptions()) {
		in.Host.SELinux.IgnoredOptions(in.ID)
	}
	return opts, nil
}

// withContainerAnnotations annotates the spec with the container's type, pod and name.
func withContainerAnnotations(in Input) oci.SpecOpts {
	md := in.SandboxConfig.GetMetadata()
	return oci.WithAnnotations(map[string]string{
		sandbox.AnnotationContainerType:    ContainerTypeContainer,
		sandbox.AnnotationSandboxID:        in.SandboxID,
		sandbox.AnnotationSandboxName:      md.GetName(),
		sandbox.AnnotationSandboxNamespace: md.GetNamespace(),
		sandbox.AnnotationSandboxUID:       md.GetUid(),
		AnnotationContainerName:            in.Config.GetMetadata().GetName(),
		AnnotationImageName:                in.ImageName,
	})
}

func nsPath(pid uint32, ns string) string { return fmt.Sprintf("/proc/%d/ns/%s", pid, ns) }

// processArgs is the command line: the CRI command replaces the image's entrypoint, the CRI args
// its cmd (an entrypoint without command keeps the image's), as Docker and the kubelet define.
// $(VAR) references are expanded with the container's env.
func processArgs(config *runtime.ContainerConfig, image *imagespec.ImageConfig) ([]string, error) {
	var envs []legacy.EnvVar
	for _, e := range config.GetEnvs() {
		envs = append(envs, legacy.EnvVar{Name: e.GetKey(), Value: string(e.GetValue())})
	}
	command, args := legacy.ExpandContainerCommandAndArgs(config.GetCommand(), config.GetArgs(), envs)
	if len(command) == 0 {
		if len(args) == 0 {
			args = slices.Clone(image.Cmd)
		}
		if len(image.Entrypoint) != 1 || image.Entrypoint[0] != "" {
			command = slices.Clone(image.Entrypoint)
		}
	}
	all := append(command, args...)
	if len(all) == 0 {
		return nil, fmt.Errorf("no command specified and the image has neither entrypoint nor cmd: %w", errdefs.ErrInvalidArgument)
	}
	return all, nil
}

// extraMounts are the sandbox's files and the image's volumes, each unless a CRI mount takes its
// place; idmapped with the pod's user namespace mapping when it has one (not /dev/shm, an empty
// tmpfs open to all).
func extraMounts(in Input, userns *legacy.PodUsernsMapping) []*runtime.Mount {
	uids, gids := userns.CriMappings()
	sc := in.Config.GetLinux().GetSecurityContext()
	criMounts := in.Config.GetMounts()
	var out []*runtime.Mount
	add := func(dst, src string, ro, idmap bool) {
		if src == "" || inMounts(dst, criMounts) {
			return
		}
		if _, err := os.Stat(src); err != nil {
			return
		}
		m := &runtime.Mount{ContainerPath: dst, HostPath: src, Readonly: ro}
		if idmap {
			m.UidMappings, m.GidMappings = uids, gids
		}
		out = append(out, m)
	}
	add(etcHostname, in.Files.Hostname, sc.GetReadonlyRootfs(), true)
	add(etcHosts, in.Files.Hosts, sc.GetReadonlyRootfs(), true)
	add(resolvConf, in.Files.ResolvConf, sc.GetReadonlyRootfs(), true)
	shm := in.Files.Shm
	if shm == "" || in.SandboxConfig.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE {
		shm = devShm
	}
	add(devShm, shm, false, false)
	for _, v := range in.VolumeMounts {
		if !inMounts(v.GetContainerPath(), criMounts) {
			if uids != nil && len(v.GetUidMappings())+len(v.GetGidMappings()) == 0 {
				v = proto.Clone(v).(*runtime.Mount)
				v.UidMappings, v.GidMappings = uids, gids
			}
			out = append(out, v)
		}
	}
	return out
}

func inMounts(dst string, mounts []*runtime.Mount) bool {
	for _, m := range mounts {
		if filepath.Clean(m.GetContainerPath()) == filepath.Clean(dst) {
			return true
		}
	}
	return false
}

// ImageVolumeMounts are the image's volumes as dirs under root (created here), except those a CRI
// mount covers.
func ImageVolumeMounts(root string, config *runtime.ContainerConfig, image *imagespec.ImageConfig) ([]*runtime.Mount, error) {
	dsts := make([]string, 0, len(image.Volumes))
	for dst := range image.Volumes {
		dsts = append(dsts, dst)
	}
	sort.Strings(dsts)
	var out []*runtime.Mount
	for i, dst := range dsts {
		if !strings.HasPrefix(dst, "/") {
			dst = filepath.Join("/", dst)
		}
		if inMounts(dst, config.GetMounts()) {
			continue
		}
		src := filepath.Join(root, "volumes", strconv.Itoa(i))
		if err := os.MkdirAll(src, 0o755); err != nil {
			return nil, fmt.Errorf("image volume %s: %w", dst, err)
		}
		out = append(out, &runtime.Mount{ContainerPath: dst, HostPath: src})
	}
	return out, nil
}

// withContainerMounts adds the CRI mounts and the extra ones (sorted so that a parent is mounted
// before what is below it), dropping the default mounts they cover. Idmapped mounts (uid and gid
// mappings) need the pod's user namespace (userns).
func withContainerMounts(config *runtime.ContainerConfig, extra []*runtime.Mount, userns bool, host Host) (oci.SpecOpts, error) {
	mounts := slices.Clone(config.GetMounts())
	mounts = append(mounts, extra...)
	sort.SliceStable(mounts, func(i, j int) bool {
		return strings.Count(filepath.Clean(mounts[i].GetContainerPath()), "/") < strings.Count(filepath.Clean(mounts[j].GetContainerPath()), "/")
	})
	type resolved struct {
		m   *runtime.Mount
		src string
	}
	var list []resolved
	for _, m := range mounts {
		dst, src := m.GetContainerPath(), m.GetHostPath()
		if dst == "" || !filepath.IsAbs(dst) {
			return nil, fmt.Errorf("mount container_path %q must be an absolute path: %w", dst, errdefs.ErrInvalidArgument)
		}
		// Image volumes are host path mounts of their mounted image by now (image_volume.go).
		if m.GetImage() != nil && m.GetImage().GetImage() != "" {
			return nil, fmt.Errorf("mount %s: image volume not mounted: %w", dst, errdefs.ErrInvalidArgument)
		}
		if src == "" {
			return nil, fmt.Errorf("mount %s: empty host_path: %w", dst, errdefs.ErrInvalidArgument)
		}
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("mount %s: host path %q: %w", dst, src, errdefs.ErrInvalidArgument)
		}
		real, err := filepath.EvalSymlinks(src)
		if err != nil {
			return nil, fmt.Errorf("mount %s: resolve host path %q: %w", dst, src, err)
		}
		if m.GetRecursiveReadOnly() {
			// As the CRI API defines it: only for read-only mounts that do not propagate.
			switch {
			case !m.GetReadonly():
				return nil, fmt.Errorf("mount %s: recursive read-only needs readonly: %w", dst, errdefs.ErrInvalidArgument)
			case m.GetPropagation() != runtime.MountPropagation_PROPAGATION_PRIVATE:
				return nil, fmt.Errorf("mount %s: recursive read-only needs private propagation, got %s: %w", dst, m.GetPropagation(), errdefs.ErrInvalidArgument)
			case !host.RecursiveReadOnly():
				return nil, fmt.Errorf("mount %s: recursive read-only mounts are not supported by this host's runc: %w", dst, errdefs.ErrInvalidArgument)
			}
		}
		if err := checkMountMappings(m, userns); err != nil {
			return nil, fmt.Errorf("mount %s: %w", dst, err)
		}
		list = append(list, resolved{m, real})
	}
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		if s.Linux == nil {
			s.Linux = &runtimespec.Linux{}
		}
		set := map[string]bool{}
		for _, r := range list {
			set[filepath.Clean(r.m.GetContainerPath())] = true
		}
		// The container's cgroup, read-only (writable when privileged, below), as containerd's
		// CRI and CRI-O mount it: what runtimes (JVMs, Go's GOMAXPROCS) read their limits from.
		defaults := append(s.Mounts, runtimespec.Mount{
			Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
			Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
		})
		s.Mounts = nil
		for _, m := range defaults {
			dst := filepath.Clean(m.Destination)
			if set[dst] || set["/dev"] && strings.HasPrefix(dst, "/dev/") || set["/sys"] && strings.HasPrefix(dst, "/sys/") {
				continue
			}
			s.Mounts = append(s.Mounts, m)
		}
		for _, r := range list {
			options := []string{"rbind"}
			switch r.m.GetPropagation() {
			case runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL:
				if err := ensurePropagation(host, r.src, false); err != nil {
					return err
				}
				options = append(options, "rshared")
				s.Linux.RootfsPropagation = "rshared"
			case runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER:
				if err := ensurePropagation(host, r.src, true); err != nil {
					return err
				}
				options = append(options, "rslave")
				if s.Linux.RootfsPropagation != "rshared" {
					s.Linux.RootfsPropagation = "rslave"
				}
			default:
				options = append(options, "rprivate")
			}
			if r.m.GetReadonly() {
				options = append(options, "ro")
				if r.m.GetRecursiveReadOnly() {
					options = append(options, "rro")
				}
			} else {
				options = append(options, "rw")
			}
			s.Mounts = append(s.Mounts, runtimespec.Mount{
				Source: r.src, Destination: r.m.GetContainerPath(), Type: "bind", Options: options,
				UIDMappings: specMappings(r.m.GetUidMappings()), GIDMappings: specMappings(r.m.GetGidMappings()),
			})
		}
		return nil
	}, nil
}

// ensurePropagation makes sure the mount holding path propagates to the container: shared (or,
// with slaveOK, a slave); a private mount is made shared.
func ensurePropagation(host Host, path string, slaveOK bool) error {
	info, err := host.LookupMount(path)
	if err != nil {
		return fmt.Errorf("find the mount of %s: %w", path, err)
	}
	for _, opt := range strings.Fields(info.Optional) {
		if strings.HasPrefix(opt, "shared:") || slaveOK && strings.HasPrefix(opt, "master:") {
			return nil
		}
	}
	if err := host.MakeMountShared(info.Mountpoint); err != nil {
		return fmt.Errorf("make mount %s (of %s) shared: %w", info.Mountpoint, path, err)
	}
	logrus.WithFields(logrus.Fields{"path": path, "mountpoint": info.Mountpoint}).Info("made the mount shared for mount propagation")
	return nil
}

// WithDevices adds the host devices the config asks for.
func WithDevices(config *runtime.ContainerConfig) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *runtimespec.Spec) error {
		for _, d := range config.GetDevices() {
			p, err := filepath.EvalSymlinks(d.GetHostPath())
			if err != nil {
				return fmt.Errorf("device %s: %w", d.GetHostPath(), err)
			}
			perms := d.GetPermissions()
			if perms == "" {
				perms = "rwm"
			}
			if err := oci.WithDevices(p, d.GetContainerPath(), perms)(ctx, client, c, s); err != nil {
				return fmt.Errorf("device %s: %w", d.GetHostPath(), err)
			}
		}
		return nil
	}
}

// withCapabilities applies add and drop: ALL first, so that the others still refine it
// (add ALL, drop CHOWN).
func withCapabilities(sc *runtime.LinuxContainerSecurityContext, host Host) (oci.SpecOpts, error) {
	c := sc.GetCapabilities()
	if c == nil {
		return func(context.Context, oci.Client, *containers.Container, *runtimespec.Spec) error { return nil }, nil
	}
	var opts []oci.SpecOpts
	isAll := func(s string) bool { return strings.EqualFold(s, "ALL") }
	if slices.ContainsFunc(c.GetAddCapabilities(), isAll) {
		all, err := host.CurrentCaps()
		if err != nil {
			return nil, fmt.Errorf("current capabilities: %w", err)
		}
		opts = append(opts, oci.WithCapabilities(all))
	}
	if slices.ContainsFunc(c.GetDropCapabilities(), isAll) {
		opts = append(opts, oci.WithCapabilities(nil))
	}
	capName := func(s string) string {
		s = strings.ToUpper(s)
		if !strings.HasPrefix(s, "CAP_") {
			s = "CAP_" + s
		}
		return s
	}
	var add, drop []string
	for _, s := range c.GetAddCapabilities() {
		if !isAll(s) {
			add = append(add, capName(s))
		}
	}
	for _, s := range c.GetDropCapabilities() {
		if !isAll(s) {
			drop = append(drop, capName(s))
		}
	}
	if len(add) > 0 {
		opts = append(opts, oci.WithAddedCapabilities(add))
	}
	if len(drop) > 0 {
		opts = append(opts, oci.WithDroppedCapabilities(drop))
	}
	return oci.Compose(opts...), nil
}

func withoutAmbientCaps(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
	if s.Process != nil && s.Process.Capabilities != nil {
		s.Process.Capabilities.Ambient = nil
	}
	return nil
}

// hugetlbAbsentSaid is set once the absence of the hugetlb controller was logged: the kubelet sends
// hugepage limits for every container, and the host does not change.
var hugetlbAbsentSaid atomic.Bool

// logHugetlbAbsent says once at warning level that hugepage limits are ignored, then at debug.
func logHugetlbAbsent() {
	if hugetlbAbsentSaid.CompareAndSwap(false, true) {
		logrus.Warn("hugetlb cgroup controller is absent: hugepage limits ignored (said once; later containers at debug level)")
		return
	}
	logrus.Debug("hugetlb cgroup controller is absent: hugepage limits ignored")
}

// withResources sets the cgroup limits of the CRI resources.
func withResources(r *runtime.LinuxContainerResources, host Host) (oci.SpecOpts, error) {
	if r == nil {
		return func(context.Context, oci.Client, *containers.Container, *runtimespec.Spec) error { return nil }, nil
	}
	if len(r.GetHugepageLimits()) > 0 && !host.HugetlbAvailable() {
		logHugetlbAbsent()
	}
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		ApplyResources(s, r, host)
		return nil
	}, nil
}

// ApplyResources writes r into s's Linux resources (for create and for updates), as far as the
// host has the controllers.
func ApplyResources(s *runtimespec.Spec, r *runtime.LinuxContainerResources, host Host) {
	host = host.orDefault()
	if s.Linux == nil {
		s.Linux = &runtimespec.Linux{}
	}
	if s.Linux.Resources == nil {
		s.Linux.Resources = &runtimespec.LinuxResources{}
	}
	res := s.Linux.Resources
	if res.CPU == nil {
		res.CPU = &runtimespec.LinuxCPU{}
	}
	if res.Memory == nil {
		res.Memory = &runtimespec.LinuxMemory{}
	}
	if p := uint64(r.GetCpuPeriod()); p != 0 {
		res.CPU.Period = &p
	}
	if q := r.GetCpuQuota(); q != 0 {
		res.CPU.Quota = &q
	}
	if sh := uint64(r.GetCpuShares()); sh != 0 {
		res.CPU.Shares = &sh
	}
	if c := r.GetCpusetCpus(); c != "" {
		res.CPU.Cpus = c
	}
	if m := r.GetCpusetMems(); m != "" {
		res.CPU.Mems = m
	}
	limit, swap := r.GetMemoryLimitInBytes(), r.GetMemorySwapLimitInBytes()
	if limit != 0 {
		res.Memory.Limit = &limit
		// No swap beyond the memory limit unless asked for.
		if swap == 0 && host.SwapAvailable() {
			res.Memory.Swap = &limit
		}
	}
	if swap != 0 && host.SwapAvailable() {
		res.Memory.Swap = &swap
	}
	if host.HugetlbAvailable() {
		res.HugepageLimits = nil
		for _, h := range r.GetHugepageLimits() {
			res.HugepageLimits = append(res.HugepageLimits, runtimespec.LinuxHugepageLimit{Pagesize: h.GetPageSize(), Limit: h.GetLimit()})
		}
	}
	if u := r.GetUnified(); len(u) > 0 {
		if host.CgroupUnified() {
			if res.Unified == nil {
				res.Unified = map[string]string{}
			}
			for k, v := range u {
				res.Unified[k] = v
			}
		} else {
			logrus.WithField("unified", u).Warn("cgroup v2 (unified) resources ignored on a cgroup v1 host")
		}
	}
}

// withContainerOOMScoreAdj sets oom_score_adj, raised to the daemon's own when that is higher.
func withContainerOOMScoreAdj(adj int64, host Host) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		if s.Process == nil {
			s.Process = &runtimespec.Process{}
		}
		a := host.RestrictOOMScore(int(adj))
		s.Process.OOMScoreAdj = &a
		return nil
	}
}

// userString is the user the container runs as: run_as_username or run_as_user, with
// run_as_group; "" when the CRI sets none (the image's user applies).
func userString(sc *runtime.LinuxContainerSecurityContext) (string, error) {
	user := sc.GetRunAsUsername()
	if user == "" && sc.GetRunAsUser() != nil {
		user = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	}
	if sc.GetRunAsGroup() != nil {
		if user == "" {
			return "", fmt.Errorf("run_as_group is set without run_as_user or run_as_username: %w", errdefs.ErrInvalidArgument)
		}
		user += ":" + strconv.FormatInt(sc.GetRunAsGroup().GetValue(), 10)
	}
	return user, nil
}

// userSpecOpts resolves the user (and its groups from the image's /etc/group unless the policy is
// Strict), adds the supplemental groups, and verifies run_as_non_root.
// withImageRootfs applies opts, which read the image's /etc/passwd and /etc/group, with the
// container's snapshot mounted once for all of them: each of containerd's user and group options
// mounts and unmounts the snapshot by itself otherwise (two mounts and two umounts per create,
// and umount contends with every other mount on the node). Without a snapshot (the spec's root
// path is the rootfs) the options read the root path, as they do by themselves.
func withImageRootfs(opts ...oci.SpecOpts) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *runtimespec.Spec) error {
		apply := func(c *containers.Container) error {
			for _, o := range opts {
				if err := o(ctx, client, c, s); err != nil {
					return err
				}
			}
			return nil
		}
		if c.Snapshotter == "" && c.SnapshotKey == "" {
			return apply(c)
		}
		if c.Snapshotter == "" {
			return errors.New("no snapshotter set for container")
		}
		mounts, err := client.SnapshotService(c.Snapshotter).Mounts(ctx, c.SnapshotKey)
		if err != nil {
			return err
		}
		return mount.WithReadonlyTempMount(ctx, mounts, func(root string) error {
			saved := s.Root
			s.Root = &runtimespec.Root{Path: root}
			defer func() { s.Root = saved }()
			local := *c
			local.Snapshotter, local.SnapshotKey = "", ""
			return apply(&local)
		})
	}
}

func userSpecOpts(sc *runtime.LinuxContainerSecurityContext, imageUser string, nonRoot bool) ([]oci.SpecOpts, error) {
	user, err := userString(sc)
	if err != nil {
		return nil, err
	}
	// The user whose groups are looked up: the name or uid part.
	groupsOf := "0"
	switch {
	case sc.GetRunAsUsername() != "":
		groupsOf = sc.GetRunAsUsername()
	case sc.GetRunAsUser() != nil:
		groupsOf = strconv.FormatInt(sc.GetRunAsUser().GetValue(), 10)
	case imageUser != "":
		groupsOf, _, _ = strings.Cut(imageUser, ":")
	}
	if user == "" {
		user = imageUser
	}
	var opts []oci.SpecOpts
	if user != "" {
		withUser := oci.WithUser(user)
		opts = append(opts, func(ctx context.Context, cl oci.Client, c *containers.Container, s *runtimespec.Spec) error {
			if err := withUser(ctx, cl, c, s); err != nil {
				return fmt.Errorf("user %q: %w", user, err)
			}
			return nil
		})
	} else {
		opts = append(opts, oci.WithUserID(0))
	}
	switch sc.GetSupplementalGroupsPolicy() {
	case runtime.SupplementalGroupsPolicy_Merge:
		opts = append(opts, oci.WithAdditionalGIDs(groupsOf))
	case runtime.SupplementalGroupsPolicy_Strict:
	default:
		return nil, fmt.Errorf("unknown supplemental groups policy %v: %w", sc.GetSupplementalGroupsPolicy(), errdefs.ErrInvalidArgument)
	}
	opts = append(opts, withSupplementalGIDs(sc.GetSupplementalGroups()))
	if nonRoot {
		opts = append(opts, verifyNonRoot)
	}
	return opts, nil
}

// withSupplementalGIDs adds groups to the process's, each once, sorted.
func withSupplementalGIDs(groups []int64) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		if s.Process == nil {
			s.Process = &runtimespec.Process{}
		}
		gids := slices.Clone(s.Process.User.AdditionalGids)
		for _, g := range groups {
			if g < 0 || g > 1<<31-1 {
				return fmt.Errorf("supplemental group %d out of range: %w", g, errdefs.ErrInvalidArgument)
			}
			gids = append(gids, uint32(g))
		}
		slices.Sort(gids)
		s.Process.User.AdditionalGids = slices.Compact(gids)
		return nil
	}
}

func verifyNonRoot(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
	if s.Process != nil && s.Process.User.UID == 0 {
		return fmt.Errorf("%w: the container has run_as_non_root and would run as root (uid 0)", legacy.ErrVerifyNonRoot)
	}
	return nil
}

// containerSeccompOpt is the seccomp profile: RuntimeDefault (containerd's default profile),
// Unconfined (none; also the default when nothing is set) or a Localhost profile file.
func containerSeccompOpt(sc *runtime.LinuxContainerSecurityContext) (oci.SpecOpts, error) {
	if p := sc.GetSeccomp(); p != nil {
		switch p.GetProfileType() {
		case runtime.SecurityProfile_Unconfined:
			return nil, nil
		case runtime.SecurityProfile_RuntimeDefault:
			return seccomp.WithDefaultProfile(), nil
		case runtime.SecurityProfile_Localhost:
			if p.GetLocalhostRef() == "" {
				return nil, fmt.Errorf("seccomp: localhost profile without localhost_ref: %w", errdefs.ErrInvalidArgument)
			}
			return localSeccompProfile(p.GetLocalhostRef())
		}
		return nil, fmt.Errorf("seccomp: unknown profile type %v: %w", p.GetProfileType(), errdefs.ErrInvalidArgument)
	}
	//nolint:staticcheck // the deprecated field is still sent by older kubelets
	switch pp := sc.GetSeccompProfilePath(); {
	case pp == "" || pp == "unconfined":
		return nil, nil
	case pp == "runtime/default" || pp == "docker/default":
		return seccomp.WithDefaultProfile(), nil
	case strings.HasPrefix(pp, "localhost/"):
		return localSeccompProfile(strings.TrimPrefix(pp, "localhost/"))
	default:
		return nil, fmt.Errorf("seccomp: unknown profile %q: %w", pp, errdefs.ErrInvalidArgument)
	}
}

func localSeccompProfile(path string) (oci.SpecOpts, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("seccomp: localhost profile %q is not an absolute path: %w", path, errdefs.ErrInvalidArgument)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("seccomp: localhost profile: %v: %w", err, errdefs.ErrInvalidArgument)
	}
	return seccomp.WithProfile(path), nil
}

// swapControllerAvailable tells whether memory+swap limits can be set (cgroup v1 memsw, or v2
// memory.swap.max).
func swapControllerAvailable(unified bool) bool {
	if unified {
		_, err := os.Stat("/sys/fs/cgroup/memory.swap.max")
		if err == nil {
			return true
		}
		// The root cgroup has no memory.swap.max: look at our own cgroup.
		b, err := os.ReadFile("/proc/self/cgroup")
		if err != nil {
			return false
		}
		_, p, _ := strings.Cut(strings.TrimSpace(string(b)), "::")
		_, err = os.Stat(filepath.Join("/sys/fs/cgroup", p, "memory.swap.max"))
		return err == nil
	}
	_, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
	return err == nil
}

func hugetlbControllerAvailable(unified bool) bool {
	if unified {
		b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		return err == nil && slices.Contains(strings.Fields(string(b)), "hugetlb")
	}
	_, err := os.Stat("/sys/fs/cgroup/hugetlb")
	return err == nil
}
