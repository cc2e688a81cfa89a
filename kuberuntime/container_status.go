package kuberuntime

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/legacy"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func (r *ContainerdRuntime) details(c *podContainer) *legacy.ContainerDetails {
	snap := c.snapshot()
	state, rec, pid, res := snap.state, snap.rec, snap.pid, snap.resources
	md := c.config.GetMetadata()
	hash := c.configHash()
	d := &legacy.ContainerDetails{
		ContainerStatus: legacy.ContainerStatus{
			ID: legacy.BuildContainerID(r.Type(), c.meta.ID), Name: md.GetName(), State: state,
			CreatedAt: c.meta.CreatedAt, StartedAt: rec.StartedAt, FinishedAt: rec.FinishedAt,
			ExitCode: int(rec.ExitCode), Image: c.meta.ImageRef, ImageID: c.meta.ImageID,
			ImageRef: c.meta.ImageID, Hash: hash, RestartCount: int(md.GetAttempt()),
			Reason: rec.Reason, Message: joinMessages(rec.Message, rec.TerminationMessage), LogPath: c.meta.LogPath,
		},
		RuntimeMessage: rec.Message,
		SandboxID:      c.meta.SandboxID, Attempt: md.GetAttempt(), Config: c.config,
		ImageName: c.meta.ImageRef, UID: c.meta.UID, GID: c.meta.GID, Groups: c.meta.Groups, Pid: pid,
	}
	// The status names the image by its first tag and references it by digest when it has them,
	// as the kubelet expects.
	if c.meta.RepoTag != "" {
		d.Image = c.meta.RepoTag
	}
	if c.meta.RepoDigest != "" {
		d.ImageRef = c.meta.RepoDigest
	}
	if res != nil {
		d.Resources = proto.Clone(res).(*runtime.LinuxContainerResources)
	}
	d.Mounts = statusMounts(c.config.GetMounts(), c.meta.ImageVolumes)
	return d
}

// joinMessages is the container's message as the kubelet composes it: the runtime's, then the
// termination message.
func joinMessages(runtimeMsg, termination string) string {
	switch {
	case runtimeMsg == "":
		return termination
	case termination == "":
		return runtimeMsg
	}
	return runtimeMsg + ": " + termination
}

// ContainerStatus returns the status of the container id (or a unique prefix of it); verbose
// adds Info["info"]: JSON with the pid, sandbox, config and runtime spec.
func (r *ContainerdRuntime) ContainerStatus(ctx context.Context, id string, verbose bool) (*legacy.ContainerDetails, error) {
	c, err := r.ctrs().store.get(id)
	if err != nil {
		return nil, err
	}
	d := r.details(c)
	if verbose {
		config, err := protojson.Marshal(c.config)
		if err != nil {
			return nil, err
		}
		info := map[string]any{
			"sandboxID": c.meta.SandboxID,
			"pid":       d.Pid,
			"removing":  c.snapshot().removing,
			"imageName": c.meta.ImageName,
			"config":    json.RawMessage(config),
			"rootDir":   c.rootDir,
		}
		b, err := json.Marshal(info)
		if err != nil {
			return nil, err
		}
		// The spec file written at creation (spec_file.go); containerd for older containers.
		if spec := r.runtimeSpecJSON(ctx, c.rootDir, c.meta.ID); spec != nil {
			b = withRawField(b, "runtimeSpec", spec)
		}
		d.Info = map[string]string{"info": string(b)}
	}
	return d, nil
}

// ListContainers returns the containers that match filter, newest first.
func (r *ContainerdRuntime) ListContainers(ctx context.Context, filter *legacy.ContainerFilter) ([]*legacy.ContainerDetails, error) {
	st := r.ctrs()
	var cs []*podContainer
	if filter != nil && filter.ID != "" {
		c, err := st.store.get(filter.ID)
		if err != nil {
			return nil, nil // unknown or ambiguous: nothing
		}
		cs = []*podContainer{c}
	} else {
		cs = st.store.list()
	}
	var out []*legacy.ContainerDetails
	for _, c := range cs {
		// The sandbox is known without building the details: skip the other pods' containers.
		if filter != nil && filter.SandboxID != "" && !strings.HasPrefix(c.meta.SandboxID, filter.SandboxID) {
			continue
		}
		if d := r.details(c); filter.Match(d) {
			out = append(out, d)
		}
	}
	return out, nil
}

// resourcesFromSpec returns the CRI resources of a spec.
func resourcesFromSpec(s *runtimespec.Spec) *runtime.LinuxContainerResources {
	out := &runtime.LinuxContainerResources{}
	if s.Process != nil && s.Process.OOMScoreAdj != nil {
		out.OomScoreAdj = int64(*s.Process.OOMScoreAdj)
	}
	if s.Linux == nil || s.Linux.Resources == nil {
		return out
	}
	res := s.Linux.Resources
	if c := res.CPU; c != nil {
		if c.Period != nil {
			out.CpuPeriod = int64(*c.Period)
		}
		if c.Quota != nil {
			out.CpuQuota = *c.Quota
		}
		if c.Shares != nil {
			out.CpuShares = int64(*c.Shares)
		}
		out.CpusetCpus, out.CpusetMems = c.Cpus, c.Mems
	}
	if m := res.Memory; m != nil {
		if m.Limit != nil {
			out.MemoryLimitInBytes = *m.Limit
		}
		if m.Swap != nil {
			out.MemorySwapLimitInBytes = *m.Swap
		}
	}
	for _, h := range res.HugepageLimits {
		out.HugepageLimits = append(out.HugepageLimits, &runtime.HugepageLimit{PageSize: h.Pagesize, Limit: h.Limit})
	}
	if len(res.Unified) > 0 {
		out.Unified = map[string]string{}
		for k, v := range res.Unified {
			out.Unified[k] = v
		}
	}
	return out
}

// UpdateContainerResources changes the resources of a created or running container: in its
// stored spec, and in its cgroup when it runs. oom_score_adj cannot change.
func (r *ContainerdRuntime) UpdateContainerResources(ctx context.Context, id string, resources *runtime.LinuxContainerResources) error {
	if resources == nil {
		return nil
	}
	c, err := r.ctrs().store.get(id)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	state := c.snapshot().state
	if state != legacy.ContainerStateCreated && state != legacy.ContainerStateRunning {
		return fmt.Errorf("container %s is %s: %w", c.meta.ID, state, errdefs.ErrFailedPrecondition)
	}
	ctx = r.withNS(ctx)
	if resources, err = r.nriUpdateContainer(ctx, c, resources); err != nil {
		return err
	}
	cntr, err := r.loadContainer(ctx, c.meta.ID)
	if err != nil {
		return err
	}
	spec, err := cntr.Spec(ctx)
	if err != nil {
		return err
	}
	containerspec.ApplyResources(spec, resources, specHost())
	var specJSON []byte
	if err := cntr.Update(ctx, func(_ context.Context, _ *containerd.Client, ci *containers.Container) error {
		a, err := typeurl.MarshalAnyToProto(spec)
		if err != nil {
			return err
		}
		ci.Spec = a
		specJSON = a.GetValue()
		return nil
	}); err != nil {
		return fmt.Errorf("update container spec: %w", err)
	}
	writeSpecFile(c.rootDir, specJSON, false) // the verbose status's copy (spec_file.go)
	if state == legacy.ContainerStateRunning {
		task, err := r.loadTask(ctx, c.meta.ID)
		if err == nil {
			err = task.Update(ctx, containerd.WithResources(spec.Linux.Resources))
		}
		if err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("update the running container's resources: %w", err)
		}
	}
	err = c.setResources(resourcesFromSpec(spec))
	if err == nil {
		r.nriPostUpdateContainer(ctx, c)
	}
	return err
}

// ReopenContainerLog reopens the log file of a running container.
func (r *ContainerdRuntime) ReopenContainerLog(ctx context.Context, id string) error {
	c, err := r.ctrs().store.get(id)
	if err != nil {
		return err
	}
	snap := c.snapshot()
	state, ctrIO := snap.state, snap.io
	if state != legacy.ContainerStateRunning || ctrIO == nil {
		return fmt.Errorf("container %s is not running: %w", c.meta.ID, errdefs.ErrFailedPrecondition)
	}
	if ctrIO.log == nil {
		return nil
	}
	// Something else than a regular file at the path (a FIFO planted after the rotation) is
	// refused at once; the log goes on into the file it had (which the kubelet renamed back).
	if err := ctrIO.log.Reopen(); err != nil {
		err = logOpenError(err)
		logrus.WithError(err).WithField("container", c.meta.ID).Warn("reopen container log")
		return err
	}
	return nil
}
