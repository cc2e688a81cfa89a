package kuberuntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	nri "github.com/containerd/nri/pkg/adaptation"
	nrigen "github.com/containerd/nri/pkg/runtime-tools/generate"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/legacy"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	rtgen "github.com/opencontainers/runtime-tools/generate"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The NRI hooks of the pod and container lifecycle. Each is a no-op when NRI is off. Hooks named
// "...Blocked" expect the caller to hold the plugin-sync block (nriBlockSync); the others take it
// themselves.

func nriErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("NRI plugin: %w", err)
	}
	return fmt.Errorf("NRI plugin: %v", err)
}

// --- pods

// pod is the NRI description of a sandbox.
func (n *nriState) pod(ctx context.Context, sb *podSandbox) *nri.PodSandbox {
	md := sb.config.GetMetadata()
	st := sb.status()
	p := &nri.PodSandbox{
		Id: sb.meta.ID, Name: md.GetName(), Uid: md.GetUid(), Namespace: md.GetNamespace(),
		Labels: maps.Clone(sb.config.GetLabels()), Annotations: maps.Clone(sb.config.GetAnnotations()),
		RuntimeHandler: sb.meta.RuntimeHandler, Pid: st.Pid,
	}
	if st.IP != "" {
		p.Ips = append([]string{st.IP}, st.AdditionalIPs...)
	}
	o := n.obj(n.pods, sb.meta.ID, false)
	var linux *nri.LinuxPodSandbox
	if o != nil {
		linux = o.podLinux.Load()
	}
	if linux == nil {
		spec, _ := n.spec(ctx, sb.meta.ID) // nil when it cannot be read
		linux = podLinux(sb, spec)
		if spec != nil && spec.Linux != nil && o != nil {
			o.podLinux.Store(linux)
		}
	}
	p.Linux = linux
	return p
}

// podLinux is the Linux part of a sandbox's NRI description: from its config, and from its pause
// container's spec (cgroup, namespaces, resources) when spec is not nil.
func podLinux(sb *podSandbox, spec *runtimespec.Spec) *nri.LinuxPodSandbox {
	linux := &nri.LinuxPodSandbox{
		PodOverhead:  criToNRIResources(sb.config.GetLinux().GetOverhead()),
		PodResources: criToNRIResources(sb.config.GetLinux().GetResources()),
		CgroupParent: sb.config.GetLinux().GetCgroupParent(),
	}
	if spec != nil && spec.Linux != nil {
		linux.CgroupsPath = spec.Linux.CgroupsPath
		linux.Namespaces = nri.FromOCILinuxNamespaces(spec.Linux.Namespaces)
		linux.Resources = nri.FromOCILinuxResources(spec.Linux.Resources, nil)
	}
	return linux
}

// podOf is the NRI description of the sandbox id, or one with just the ID when it is gone.
func (n *nriState) podOf(ctx context.Context, id string) *nri.PodSandbox {
	if sb, err := n.r.sandboxes.get(id); err == nil {
		return n.pod(ctx, sb)
	}
	return &nri.PodSandbox{Id: id}
}

// spec loads the OCI spec of a containerd container.
func (n *nriState) spec(ctx context.Context, id string) (*runtimespec.Spec, error) {
	ctx, cancel := context.WithTimeout(n.r.withNS(ctx), 10*time.Second)
	defer cancel()
	cntr, err := n.r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	return cntr.Spec(ctx)
}

// nriRunPodSandbox tells the plugins a sandbox runs; a plugin's error fails it (the plugins then
// get its stop and removal). The caller holds the plugin-sync block until the sandbox is stored.
// pauseSpec (JSON), when the caller has it, spares reading the pause container's spec back from
// containerd.
func (r *ContainerdRuntime) nriRunPodSandboxBlocked(ctx context.Context, sb *podSandbox, pauseSpec []byte) error {
	n := r.nri()
	if n == nil {
		return nil
	}
	o := n.obj(n.pods, sb.meta.ID, true)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.state = nriRunning
	var spec runtimespec.Spec
	if len(pauseSpec) > 0 && o.podLinux.Load() == nil && json.Unmarshal(pauseSpec, &spec) == nil && spec.Linux != nil {
		o.podLinux.Store(podLinux(sb, &spec))
	}
	pod := n.pod(ctx, sb)
	err := n.adapt.RunPodSandbox(ctx, &nri.StateChangeEvent{Pod: pod})
	if err == nil {
		return nil
	}
	cctx, cancel := withoutCancel(ctx, cleanupTimeout)
	defer cancel()
	if err := n.adapt.StopPodSandbox(cctx, &nri.StateChangeEvent{Pod: pod}); err != nil {
		logrus.WithError(err).WithField("sandbox", sb.meta.ID).Warn("NRI: stop of a failed sandbox")
	}
	if err := n.adapt.RemovePodSandbox(cctx, &nri.StateChangeEvent{Pod: pod}); err != nil {
		logrus.WithError(err).WithField("sandbox", sb.meta.ID).Warn("NRI: removal of a failed sandbox")
	}
	n.forget(n.pods, sb.meta.ID, o)
	return nriErr(err)
}

// nriStopPodSandbox tells the plugins, once, that a sandbox stopped: after its containers (whose
// stops are delivered first) and before its network and pause container go.
func (r *ContainerdRuntime) nriStopPodSandbox(ctx context.Context, sb *podSandbox) {
	n := r.nri()
	if n == nil {
		return
	}
	defer n.adapt.BlockPluginSync().Unblock()
	for _, c := range r.ctrs().store.ofSandbox(sb.meta.ID) {
		n.stopContainer(ctx, c)
	}
	n.stopPod(ctx, sb)
}

func (n *nriState) stopPod(ctx context.Context, sb *podSandbox) {
	o := n.obj(n.pods, sb.meta.ID, false)
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state != nriRunning {
		return
	}
	o.state = nriStopped
	if err := n.adapt.StopPodSandbox(ctx, &nri.StateChangeEvent{Pod: n.pod(ctx, sb)}); err != nil {
		logrus.WithError(err).WithField("sandbox", sb.meta.ID).Warn("NRI: StopPodSandbox")
	}
}

// nriRemovePodSandbox tells the plugins a sandbox is removed (stopped first if they were not told).
func (r *ContainerdRuntime) nriRemovePodSandbox(ctx context.Context, sb *podSandbox) {
	n := r.nri()
	if n == nil {
		return
	}
	defer n.adapt.BlockPluginSync().Unblock()
	n.stopPod(ctx, sb)
	o := n.obj(n.pods, sb.meta.ID, false)
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := n.adapt.RemovePodSandbox(ctx, &nri.StateChangeEvent{Pod: n.pod(ctx, sb)}); err != nil {
		logrus.WithError(err).WithField("sandbox", sb.meta.ID).Warn("NRI: RemovePodSandbox")
	}
	n.forget(n.pods, sb.meta.ID, o)
}

// nriUpdatePodSandbox tells the plugins a pod's resources change; a plugin's error fails it.
func (r *ContainerdRuntime) nriUpdatePodSandbox(ctx context.Context, sb *podSandbox, overhead, resources *runtime.LinuxContainerResources) error {
	n := r.nri()
	if n == nil {
		return nil
	}
	defer n.adapt.BlockPluginSync().Unblock()
	_, err := n.adapt.UpdatePodSandbox(ctx, &nri.UpdatePodSandboxRequest{
		Pod: n.pod(ctx, sb), OverheadLinuxResources: criToNRIResources(overhead), LinuxResources: criToNRIResources(resources),
	})
	if err != nil {
		return nriErr(err)
	}
	return nil
}

// nriPostUpdatePodSandbox tells the plugins a pod's resources changed.
func (r *ContainerdRuntime) nriPostUpdatePodSandbox(ctx context.Context, sb *podSandbox) {
	n := r.nri()
	if n == nil {
		return
	}
	defer n.adapt.BlockPluginSync().Unblock()
	if err := n.adapt.PostUpdatePodSandbox(ctx, &nri.StateChangeEvent{Pod: n.pod(ctx, sb)}); err != nil {
		logrus.WithError(err).WithField("sandbox", sb.meta.ID).Warn("NRI: PostUpdatePodSandbox")
	}
}

// --- containers

// containerTemplate is the static NRI description of a container from its OCI spec.
func containerTemplate(id, sandboxID string, config *runtime.ContainerConfig, spec *runtimespec.Spec) *nri.Container {
	ctr := &nri.Container{
		Id: id, PodSandboxId: sandboxID, Name: config.GetMetadata().GetName(),
		Labels: maps.Clone(config.GetLabels()), Annotations: maps.Clone(config.GetAnnotations()),
	}
	if ctr.Annotations == nil {
		ctr.Annotations = map[string]string{}
	}
	maps.Copy(ctr.Annotations, spec.Annotations)
	if p := spec.Process; p != nil {
		ctr.Args = append([]string(nil), p.Args...)
		ctr.Env = append([]string(nil), p.Env...)
		for _, rl := range p.Rlimits {
			ctr.Rlimits = append(ctr.Rlimits, &nri.POSIXRlimit{Type: rl.Type, Hard: rl.Hard, Soft: rl.Soft})
		}
		ctr.User = &nri.User{Uid: p.User.UID, Gid: p.User.GID, AdditionalGids: append([]uint32(nil), p.User.AdditionalGids...)}
	}
	ctr.Mounts = nri.FromOCIMounts(spec.Mounts)
	ctr.Hooks = nri.FromOCIHooks(spec.Hooks)
	if l := spec.Linux; l != nil {
		ctr.Linux = &nri.LinuxContainer{
			Namespaces:  nri.FromOCILinuxNamespaces(l.Namespaces),
			Devices:     nri.FromOCILinuxDevices(l.Devices),
			Resources:   nri.FromOCILinuxResources(l.Resources, nil),
			CgroupsPath: l.CgroupsPath,
			Sysctl:      maps.Clone(l.Sysctl),
		}
		if spec.Process != nil {
			ctr.Linux.OomScoreAdj = nri.Int(spec.Process.OOMScoreAdj)
		}
	}
	return ctr
}

// container is the NRI description of a container now.
func (n *nriState) container(ctx context.Context, c *podContainer) *nri.Container {
	o := n.obj(n.ctrs, c.meta.ID, false)
	var tmpl *nri.Container
	if o != nil {
		tmpl = o.tmpl.Load()
	}
	if tmpl == nil && !n.pluginsSeen.Load() {
		// No plugin ever joined: the event goes nowhere, nothing to load or keep.
		tmpl = containerTemplate(c.meta.ID, c.meta.SandboxID, c.config, &runtimespec.Spec{})
	}
	if tmpl == nil {
		if spec, err := n.spec(ctx, c.meta.ID); err == nil {
			tmpl = containerTemplate(c.meta.ID, c.meta.SandboxID, c.config, spec)
			if o != nil {
				o.tmpl.Store(tmpl)
			}
		} else {
			tmpl = containerTemplate(c.meta.ID, c.meta.SandboxID, c.config, &runtimespec.Spec{})
		}
	}
	ctr := proto.Clone(tmpl).(*nri.Container)
	snap := c.snapshot()
	state, rec, pid := snap.state, snap.rec, snap.pid
	switch state {
	case legacy.ContainerStateCreated:
		ctr.State = nri.ContainerState_CONTAINER_CREATED
	case legacy.ContainerStateRunning:
		ctr.State = nri.ContainerState_CONTAINER_RUNNING
	case legacy.ContainerStateExited:
		ctr.State = nri.ContainerState_CONTAINER_STOPPED
	default:
		ctr.State = nri.ContainerState_CONTAINER_UNKNOWN
	}
	ctr.Pid = pid
	ctr.CreatedAt = c.meta.CreatedAt.UnixNano()
	if !rec.StartedAt.IsZero() {
		ctr.StartedAt = rec.StartedAt.UnixNano()
	}
	if !rec.FinishedAt.IsZero() {
		ctr.FinishedAt = rec.FinishedAt.UnixNano()
		ctr.ExitCode, ctr.StatusReason, ctr.StatusMessage = rec.ExitCode, rec.Reason, rec.Message
	}
	return ctr
}

// nriCreation is one CreateContainer's part in NRI: it holds the plugin-sync block from the NRI
// CreateContainer request until the container is in the store (done).
type nriCreation struct {
	n      *nriState
	sb     *podSandbox
	id     string
	config *runtime.ContainerConfig
	block  *nri.PluginSyncBlock
	obj    *nriObj
	tmpl   *nri.Container
	// injectCDI injects the CDI devices a plugin adds.
	injectCDI func(*runtimespec.Spec, []string) error
}

// nriCreateContainer starts the NRI part of creating container id (nil when NRI is off).
func (r *ContainerdRuntime) nriCreateContainer(sb *podSandbox, id string, config *runtime.ContainerConfig) *nriCreation {
	n := r.nri()
	if n == nil {
		return nil
	}
	return &nriCreation{n: n, sb: sb, id: id, config: config, block: n.adapt.BlockPluginSync(), injectCDI: r.nriCDIInjector}
}

// adjust asks the plugins about the container, from its generated OCI spec, and applies their
// adjustments to the spec (env, args, annotations, mounts, hooks, devices, resources, rlimits,
// namespaces, sysctls, OOM score, cgroups path). A plugin's error fails the creation.
func (h *nriCreation) adjust() containerd.NewContainerOpts {
	return func(ctx context.Context, _ *containerd.Client, c *containers.Container) error {
		if h == nil {
			return nil
		}
		spec := &runtimespec.Spec{}
		if err := json.Unmarshal(c.Spec.GetValue(), spec); err != nil {
			return fmt.Errorf("NRI: container spec: %w", err)
		}
		n := h.n
		tmpl := containerTemplate(h.id, h.sb.meta.ID, h.config, spec)
		tmpl.State = nri.ContainerState_CONTAINER_CREATED
		h.obj = n.obj(n.ctrs, h.id, true)
		h.obj.mu.Lock()
		h.obj.state = nriCreated
		rpl, err := n.adapt.CreateContainer(ctx, &nri.CreateContainerRequest{Pod: n.pod(ctx, h.sb), Container: tmpl})
		h.obj.mu.Unlock()
		if err != nil {
			return nriErr(err)
		}
		n.applyAsync(rpl.GetUpdate(), rpl.GetEvict())
		if adj := rpl.GetAdjust(); adj != nil {
			g := nrigen.SpecGenerator(&rtgen.Generator{Config: spec}, nrigen.WithCDIDeviceInjector(h.injectCDI))
			if err := g.Adjust(adj); err != nil {
				return fmt.Errorf("NRI: adjust the container spec: %w", err)
			}
			a, err := typeurl.MarshalAny(spec)
			if err != nil {
				return fmt.Errorf("NRI: adjusted spec: %w", err)
			}
			c.Spec = a
			tmpl = containerTemplate(h.id, h.sb.meta.ID, h.config, spec)
		}
		h.tmpl = tmpl
		return nil
	}
}

// created records the stored container and tells the plugins (PostCreateContainer).
func (h *nriCreation) created(ctx context.Context, c *podContainer) {
	if h == nil || h.obj == nil {
		return
	}
	h.obj.mu.Lock()
	defer h.obj.mu.Unlock()
	if h.n.pluginsSeen.Load() {
		h.obj.tmpl.Store(h.tmpl)
	}
	if err := h.n.adapt.PostCreateContainer(ctx, &nri.StateChangeEvent{Pod: h.n.pod(ctx, h.sb), Container: h.n.container(ctx, c)}); err != nil {
		logrus.WithError(err).WithField("container", c.meta.ID).Warn("NRI: PostCreateContainer")
	}
}

// done releases the plugin-sync block.
func (h *nriCreation) done() {
	if h != nil {
		h.block.Unblock()
	}
}

// undo tells the plugins that were asked about a container that failed afterwards that it stopped
// and was removed. It runs after done.
func (h *nriCreation) undo(ctx context.Context) {
	if h == nil || h.obj == nil {
		return
	}
	n := h.n
	defer n.adapt.BlockPluginSync().Unblock()
	h.obj.mu.Lock()
	defer h.obj.mu.Unlock()
	ctr := h.tmpl
	if ctr == nil {
		ctr = &nri.Container{Id: h.id, PodSandboxId: h.sb.meta.ID, Name: h.config.GetMetadata().GetName()}
	}
	pod := n.pod(ctx, h.sb)
	if _, err := n.adapt.StopContainer(ctx, &nri.StopContainerRequest{Pod: pod, Container: ctr}); err != nil {
		logrus.WithError(err).WithField("container", h.id).Warn("NRI: stop of a failed container")
	}
	if err := n.adapt.RemoveContainer(ctx, &nri.StateChangeEvent{Pod: pod, Container: ctr}); err != nil {
		logrus.WithError(err).WithField("container", h.id).Warn("NRI: removal of a failed container")
	}
	n.forget(n.ctrs, h.id, h.obj)
}

// nriStartContainerBlocked tells the plugins a container is about to start (its task exists with
// pid); a plugin's error fails the start. The caller holds the plugin-sync block.
func (r *ContainerdRuntime) nriStartContainerBlocked(ctx context.Context, c *podContainer, pid uint32) error {
	n := r.nri()
	if n == nil {
		return nil
	}
	o := n.obj(n.ctrs, c.meta.ID, true)
	o.mu.Lock()
	defer o.mu.Unlock()
	ctr := n.container(ctx, c)
	ctr.Pid = pid
	err := n.adapt.StartContainer(ctx, &nri.StateChangeEvent{Pod: n.podOf(ctx, c.meta.SandboxID), Container: ctr})
	o.state = nriRunning
	if err != nil {
		return nriErr(err)
	}
	return nil
}

// nriPostStartContainerBlocked tells the plugins a container started. The caller holds the
// plugin-sync block.
func (r *ContainerdRuntime) nriPostStartContainerBlocked(ctx context.Context, c *podContainer) {
	n := r.nri()
	if n == nil {
		return
	}
	if err := n.adapt.PostStartContainer(ctx, &nri.StateChangeEvent{Pod: n.podOf(ctx, c.meta.SandboxID), Container: n.container(ctx, c)}); err != nil {
		logrus.WithError(err).WithField("container", c.meta.ID).Warn("NRI: PostStartContainer")
	}
}

// nriStopContainer tells the plugins, once, that a container stopped.
func (r *ContainerdRuntime) nriStopContainer(ctx context.Context, c *podContainer) {
	n := r.nri()
	if n == nil {
		return
	}
	defer n.adapt.BlockPluginSync().Unblock()
	n.stopContainer(ctx, c)
}

func (n *nriState) stopContainer(ctx context.Context, c *podContainer) {
	o := n.obj(n.ctrs, c.meta.ID, false)
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.state != nriCreated && o.state != nriRunning {
		return
	}
	o.state = nriStopped
	rpl, err := n.adapt.StopContainer(ctx, &nri.StopContainerRequest{Pod: n.podOf(ctx, c.meta.SandboxID), Container: n.container(ctx, c)})
	if err != nil {
		logrus.WithError(err).WithField("container", c.meta.ID).Warn("NRI: StopContainer")
		return
	}
	n.applyAsync(rpl.GetUpdate(), nil)
}

// nriContainerExited tells the plugins, in the background, that a container's process exited.
func (r *ContainerdRuntime) nriContainerExited(c *podContainer) {
	if r.nri() == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(r.bg, cleanupTimeout)
		defer cancel()
		r.nriStopContainer(ctx, c)
	}()
}

// nriRemoveContainer tells the plugins a container is removed (stopped first if they were not
// told).
func (r *ContainerdRuntime) nriRemoveContainer(ctx context.Context, c *podContainer) {
	n := r.nri()
	if n == nil {
		return
	}
	defer n.adapt.BlockPluginSync().Unblock()
	n.stopContainer(ctx, c)
	o := n.obj(n.ctrs, c.meta.ID, false)
	if o == nil {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := n.adapt.RemoveContainer(ctx, &nri.StateChangeEvent{Pod: n.podOf(ctx, c.meta.SandboxID), Container: n.container(ctx, c)}); err != nil {
		logrus.WithError(err).WithField("container", c.meta.ID).Warn("NRI: RemoveContainer")
	}
	n.forget(n.ctrs, c.meta.ID, o)
}

// nriUpdateContainer asks the plugins about a resource update; they may change it. A plugin's error
// fails the update. Updates NRI itself asked for pass unchanged.
func (r *ContainerdRuntime) nriUpdateContainer(ctx context.Context, c *podContainer, res *runtime.LinuxContainerResources) (*runtime.LinuxContainerResources, error) {
	n := r.nri()
	if n == nil || isNRIInternal(ctx) {
		return res, nil
	}
	defer n.adapt.BlockPluginSync().Unblock()
	rpl, err := n.adapt.UpdateContainer(ctx, &nri.UpdateContainerRequest{
		Pod: n.podOf(ctx, c.meta.SandboxID), Container: n.container(ctx, c), LinuxResources: criToNRIResources(res),
	})
	if err != nil {
		return nil, nriErr(err)
	}
	updates := rpl.GetUpdate()
	n.applyAsync(nil, rpl.GetEvict())
	if len(updates) == 0 {
		return res, nil
	}
	n.applyAsync(updates[:len(updates)-1], nil)
	mine := updates[len(updates)-1].GetLinux().GetResources()
	if mine == nil {
		return res, nil
	}
	out := nriToCRIResources(mine)
	out.OomScoreAdj = res.GetOomScoreAdj()
	return out, nil
}

// nriPostUpdateContainer tells the plugins a container's resources changed.
func (r *ContainerdRuntime) nriPostUpdateContainer(ctx context.Context, c *podContainer) {
	n := r.nri()
	if n == nil || isNRIInternal(ctx) {
		return
	}
	defer n.adapt.BlockPluginSync().Unblock()
	if err := n.adapt.PostUpdateContainer(ctx, &nri.StateChangeEvent{Pod: n.podOf(ctx, c.meta.SandboxID), Container: n.container(ctx, c)}); err != nil {
		logrus.WithError(err).WithField("container", c.meta.ID).Warn("NRI: PostUpdateContainer")
	}
}

// --- resources

// criToNRIResources converts CRI resources (nil: nil); unset (zero) values stay unset.
func criToNRIResources(res *runtime.LinuxContainerResources) *nri.LinuxResources {
	if res == nil {
		return nil
	}
	out := &nri.LinuxResources{Memory: &nri.LinuxMemory{}, Cpu: &nri.LinuxCPU{
		Cpus: res.GetCpusetCpus(), Mems: res.GetCpusetMems(),
	}}
	if v := res.GetMemoryLimitInBytes(); v != 0 {
		out.Memory.Limit = nri.Int64(v)
	}
	if v := res.GetMemorySwapLimitInBytes(); v != 0 {
		out.Memory.Swap = nri.Int64(v)
	}
	if v := res.GetCpuShares(); v != 0 {
		out.Cpu.Shares = nri.UInt64(uint64(v))
	}
	if v := res.GetCpuQuota(); v != 0 {
		out.Cpu.Quota = nri.Int64(v)
	}
	if v := res.GetCpuPeriod(); v != 0 {
		out.Cpu.Period = nri.UInt64(uint64(v))
	}
	for _, h := range res.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, &nri.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	out.Unified = maps.Clone(res.GetUnified())
	return out
}

// nriToCRIResources converts NRI resources to CRI's; what CRI cannot express (block I/O and RDT
// classes, device rules, pids) is left out.
func nriToCRIResources(res *nri.LinuxResources) *runtime.LinuxContainerResources {
	out := &runtime.LinuxContainerResources{
		CpusetCpus: res.GetCpu().GetCpus(), CpusetMems: res.GetCpu().GetMems(),
		MemoryLimitInBytes:     res.GetMemory().GetLimit().GetValue(),
		MemorySwapLimitInBytes: res.GetMemory().GetSwap().GetValue(),
		CpuShares:              int64(res.GetCpu().GetShares().GetValue()),
		CpuQuota:               res.GetCpu().GetQuota().GetValue(),
		CpuPeriod:              int64(res.GetCpu().GetPeriod().GetValue()),
		Unified:                maps.Clone(res.GetUnified()),
	}
	for _, h := range res.GetHugepageLimits() {
		out.HugepageLimits = append(out.HugepageLimits, &runtime.HugepageLimit{PageSize: h.GetPageSize(), Limit: h.GetLimit()})
	}
	return out
}
