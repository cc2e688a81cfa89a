package kuberuntime

import (
	"context"
	"encoding/json"
	"sort"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	"google.golang.org/protobuf/encoding/protojson"
)

// PodSandboxStatus returns the status of the sandbox id (or a unique prefix of it). verbose adds
// Info["info"]: JSON with the pid, netns path, image, runtime handler and type, config and CNI
// result.
func (r *ContainerdRuntime) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*legacy.SandboxStatus, error) {
	sb, err := r.sandboxes.get(id)
	if err != nil {
		return nil, err
	}
	st := sb.status()
	if verbose {
		info, err := r.verboseInfo(ctx, sb, st)
		if err != nil {
			return nil, err
		}
		st.Info = map[string]string{"info": info}
	}
	return st, nil
}

func (r *ContainerdRuntime) verboseInfo(ctx context.Context, sb *podSandbox, st *legacy.SandboxStatus) (string, error) {
	config, err := protojson.Marshal(sb.config)
	if err != nil {
		return "", err
	}
	snap := sb.snapshot()
	cni, exitedAt := snap.cni, snap.exitedAt
	info := map[string]any{
		"pid":                st.Pid,
		"processStatus":      string(st.State),
		"netNamespaceClosed": st.NetNSPath == "" || !sandbox.NetNSPinned(st.NetNSPath),
		"netns":              st.NetNSPath,
		"image":              sb.meta.Image,
		"runtimeHandler":     sb.meta.RuntimeHandler,
		"runtimeType":        sb.meta.RuntimeType,
		"config":             json.RawMessage(config),
		"rootDir":            r.SandboxRootDir(sb.meta.ID),
		"shm":                sb.files.Shm,
		"resolvConf":         sb.files.ResolvConf,
		"hostname":           sb.files.Hostname,
		"hosts":              sb.files.Hosts,
	}
	if !exitedAt.IsZero() {
		info["exitedAt"] = exitedAt.Format(time.RFC3339Nano)
	}
	if cni != nil && cni.Raw != nil {
		info["cniResult"] = cni.Raw
	}
	if overhead, res := r.PodSandboxResources(sb.meta.ID); overhead != nil || res != nil {
		info["podResources"] = map[string]any{"overhead": overhead, "resources": res}
	}
	b, err := json.Marshal(info)
	if err != nil {
		return "", err
	}
	// The spec file written at creation (spec_file.go); containerd for older sandboxes.
	if spec := r.runtimeSpecJSON(ctx, r.SandboxRootDir(sb.meta.ID), sb.meta.ID); spec != nil {
		b = withRawField(b, "runtimeSpec", spec)
	}
	return string(b), nil
}

// ListPodSandbox returns the sandboxes that match filter, newest first.
func (r *ContainerdRuntime) ListPodSandbox(ctx context.Context, filter *legacy.SandboxFilter) ([]*legacy.SandboxStatus, error) {
	var out []*legacy.SandboxStatus
	if filter != nil && filter.ID != "" {
		// An exact ID or a unique prefix; an unknown or ambiguous one lists nothing.
		sb, err := r.sandboxes.get(filter.ID)
		if err != nil {
			return nil, nil
		}
		if st := sb.status(); filter.Match(st) {
			out = append(out, st)
		}
		return out, nil
	}
	for _, sb := range r.sandboxes.list() {
		if st := sb.status(); filter.Match(st) {
			out = append(out, st)
		}
	}
	return out, nil
}

// GetPods returns the pods of the runtime with their sandboxes and containers: with all, every
// pod and container; without, only running containers and the pods that have a ready sandbox or a
// running container.
func (r *ContainerdRuntime) GetPods(ctx context.Context, all bool) ([]*legacy.Pod, error) {
	pods := map[legacy.UID]*legacy.Pod{}
	var order []legacy.UID
	for _, sb := range r.sandboxes.list() {
		st := sb.status()
		if !all && st.State != legacy.SandboxStateReady {
			continue
		}
		p, ok := pods[st.UID]
		if !ok {
			p = &legacy.Pod{ID: st.UID, Name: st.Name, Namespace: st.Namespace}
			pods[st.UID] = p
			order = append(order, st.UID)
		}
		p.Sandboxes = append(p.Sandboxes, legacy.SandboxAsContainer(r.Type(), st))
	}
	for _, sb := range r.sandboxes.list() {
		st := sb.status()
		p, ok := pods[st.UID]
		cs, err := r.ListContainers(ctx, &legacy.ContainerFilter{SandboxID: st.ID})
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.SandboxID != st.ID || (!all && c.State != legacy.ContainerStateRunning) {
				continue
			}
			if !ok {
				p = &legacy.Pod{ID: st.UID, Name: st.Name, Namespace: st.Namespace}
				pods[st.UID], ok = p, true
				order = append(order, st.UID)
			}
			p.Containers = append(p.Containers, &legacy.Container{ID: c.ID, Name: c.Name, Image: c.Image,
				ImageID: c.ImageID, Hash: c.Hash, Created: c.CreatedAt, State: c.State})
		}
	}
	out := make([]*legacy.Pod, 0, len(order))
	for _, uid := range order {
		out = append(out, pods[uid])
	}
	return out, nil
}

// GetPodStatus returns the status of a pod: its sandboxes (newest first) and the IPs of the newest.
func (r *ContainerdRuntime) GetPodStatus(ctx context.Context, uid legacy.UID, name, namespace string) (*legacy.PodStatus, error) {
	ps := &legacy.PodStatus{ID: uid, Name: name, Namespace: namespace}
	// The pod status cache asks for a pod on each of its containers' events: the other pods'
	// sandboxes are skipped without building their status (sorted below).
	for _, sb := range r.sandboxes.unsorted() {
		if legacy.UID(sb.config.GetMetadata().GetUid()) != uid {
			continue
		}
		st := sb.status()
		ps.SandboxStatuses = append(ps.SandboxStatuses, st)
		// The sandbox's own containers only (not a prefix match), straight from the store.
		for _, c := range r.ctrs().store.ofSandbox(st.ID) {
			status := r.details(c).ContainerStatus
			ps.ContainerStatuses = append(ps.ContainerStatuses, &status)
		}
	}
	// Newest first, as ShouldContainerBeRestarted expects.
	sort.SliceStable(ps.ContainerStatuses, func(i, j int) bool {
		return ps.ContainerStatuses[i].CreatedAt.After(ps.ContainerStatuses[j].CreatedAt)
	})
	sort.SliceStable(ps.SandboxStatuses, func(i, j int) bool {
		return ps.SandboxStatuses[i].CreatedAt.After(ps.SandboxStatuses[j].CreatedAt)
	})
	if len(ps.SandboxStatuses) > 0 {
		if newest := ps.SandboxStatuses[0]; newest.IP != "" {
			ps.IPs = append([]string{newest.IP}, newest.AdditionalIPs...)
		}
	}
	return ps, nil
}

// KillPod stops every sandbox of the pod.
func (r *ContainerdRuntime) KillPod(ctx context.Context, pod legacy.Pod) (result legacy.PodSyncResult) {
	for _, s := range pod.Sandboxes {
		result.AddPodSyncResult(r.StopPodSandbox(ctx, s.ID.ID))
	}
	return result
}
