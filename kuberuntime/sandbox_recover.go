package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// recover rebuilds the sandbox store from the pause containers in containerd, and removes what
// belongs to no sandbox (network namespaces, pod dirs).
func (r *ContainerdRuntime) recover(ctx context.Context) error {
	ctx = r.withNS(ctx)
	cs, err := r.client.Containers(ctx, fmt.Sprintf(`labels.%q==%q`, LabelKind, KindSandbox))
	if err != nil {
		return err
	}
	r.removeStaleLeases(ctx)
	known := map[string]bool{}
	for _, c := range cs {
		sb, err := r.loadSandbox(ctx, c)
		if err != nil && !errors.Is(err, errBadSandboxMetadata) {
			logrus.WithError(err).WithField("sandbox", c.ID()).Warn("recover sandbox: skipped")
			continue
		}
		if err != nil {
			// Half made (no metadata), or written by a daemon of another layout: no CRI call
			// could see it, so nothing would ever remove it; remove it now, with its pod.
			logrus.WithError(err).WithField("sandbox", c.ID()).Warn("recover sandbox: removing it")
			r.removeUnrecoverableSandbox(ctx, c)
			continue
		}
		known[sb.meta.ID] = true
		r.sandboxes.add(sb)
	}
	records := r.removeStaleSandboxRecords(ctx, known) // shim_grouping.go
	r.recoverPodShims(ctx, records)                    // pod_shim.go
	// An unknown sandbox's network first: its DEL needs the netns and the journal in its state dir
	// (network_journal.go). A state dir whose DEL failed stays, for CleanStaleNetNS to retry.
	unreleased := map[string]bool{}
	if entries, err := os.ReadDir(r.sandboxesState()); err == nil {
		for _, e := range entries {
			if !known[e.Name()] && !r.releaseUnknownSandboxNetwork(ctx, e.Name()) {
				unreleased[e.Name()] = true
			}
		}
	}
	unknown := map[string]bool{}
	for _, dir := range []string{r.netnsDir(), r.sandboxesRoot(), r.sandboxesState()} {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if !known[e.Name()] {
				unknown[e.Name()] = true
			}
		}
	}
	for id := range unknown {
		logrus.WithField("sandbox", id).Info("removing what is left of an unknown sandbox")
		if err := errors.Join(sandbox.RemoveNetNS(r.podNetNSPath(id)), r.removeSandboxDirs(id, unreleased[id])); err != nil {
			logrus.WithError(err).WithField("sandbox", id).Warn("remove what is left of an unknown sandbox")
		}
	}
	logrus.WithField("sandboxes", len(known)).Debug("sandbox store rebuilt")
	return nil
}

// removeUnrecoverableSandbox removes a pause container that no sandbox can be rebuilt from, with
// everything of its pod, in the order a RemovePodSandbox keeps: first the pod's containers (found
// by their label, before initContainers could take them for orphans), then the pause task. The
// containers' tasks may live in the pause's shim (shim_grouping.go), and containerd asks that
// shim to shut down only when the pause task is deleted, which the shim ignores while it still
// serves a container: the pause task deleted first would leave the shim running forever. The
// sandbox record goes with removeStaleSandboxRecords. Whatever fails stays for the next start to
// retry, the pause container included, so that the pod's containers are still found by it.
func (r *ContainerdRuntime) removeUnrecoverableSandbox(ctx context.Context, c containerd.Container) {
	log := logrus.WithField("sandbox", c.ID())
	if err := r.removeLabelledPodContainers(ctx, c.ID()); err != nil {
		log.WithError(err).Warn("remove the containers of an unrecoverable sandbox")
		return
	}
	if task, err := c.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			log.WithError(err).Warn("delete the pause task of an unrecoverable sandbox")
			return
		}
	} else if !errdefs.IsNotFound(err) {
		log.WithError(err).Warn("load the pause task of an unrecoverable sandbox")
		return
	}
	cg := specCgroupsPath(ctx, c)
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		log.WithError(err).Warn("remove unrecoverable sandbox")
		return
	}
	// No task of the pod is left: a shim still there was forgotten by containerd. It goes first,
	// so that no create it still runs puts a process back into the cgroups.
	r.killOrphanShim(c.ID())
	removeCgroupLeftovers(cg) // cgroup_leftovers.go
}

// removeStaleLeases deletes the temporary leases (the containerd client's WithLease, labelled
// with an expiry) that a daemon killed in the middle of a call left: the call that made each
// would have deleted it, and none is in flight while the daemon starts. Left alone, they would
// pin their snapshots and content for 24 hours (found by the kill -9 chaos test).
func (r *ContainerdRuntime) removeStaleLeases(ctx context.Context) {
	ls, err := r.client.LeasesService().List(ctx)
	if err != nil {
		logrus.WithError(err).Warn("recover: list leases")
		return
	}
	for _, l := range ls {
		if _, temporary := l.Labels["containerd.io/gc.expire"]; !temporary {
			continue
		}
		if err := r.client.LeasesService().Delete(ctx, l); err != nil && !errdefs.IsNotFound(err) {
			logrus.WithError(err).WithField("lease", l.ID).Warn("recover: delete a stale lease")
			continue
		}
		logrus.WithField("lease", l.ID).Info("recover: deleted a lease left by a killed daemon")
	}
}

// errBadSandboxMetadata: a pause container without usable sandbox metadata, which nothing can
// recover (as opposed to a failure to reach containerd, which a later start may not meet).
var errBadSandboxMetadata = errors.New("no usable sandbox metadata")

func (r *ContainerdRuntime) loadSandbox(ctx context.Context, c containerd.Container) (*podSandbox, error) {
	info, err := c.Info(ctx)
	if err != nil {
		return nil, err
	}
	ext, ok := info.Extensions[sandboxExtensionID]
	if !ok {
		return nil, fmt.Errorf("%w: none", errBadSandboxMetadata)
	}
	v, err := typeurl.UnmarshalAny(ext)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errBadSandboxMetadata, err)
	}
	meta, ok := v.(*sandboxMetadata)
	if !ok {
		return nil, fmt.Errorf("%w: of type %T", errBadSandboxMetadata, v)
	}
	config := &runtime.PodSandboxConfig{}
	if err := proto.Unmarshal(meta.Config, config); err != nil {
		return nil, fmt.Errorf("%w: config: %w", errBadSandboxMetadata, err)
	}
	hostIPC := config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE
	sb := &podSandbox{
		meta:   *meta,
		config: config,
		files:  sandbox.PodFiles(r.SandboxRootDir(meta.ID), r.SandboxStateDir(meta.ID), hostIPC),
		state:  legacy.SandboxStateNotReady,
	}
	// Until a stop tears it down, assume the network may hold something (an IP lease, port
	// mappings): CNI DEL is harmless when it holds nothing.
	sb.netUp = !sb.hostNetwork()
	if meta.PauseLess {
		if r.pauseLessReady(sb) { // sandbox_pauseless.go
			sb.state = legacy.SandboxStateReady
		}
		return sb, nil
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		return sb, nil // no task: stopped
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status != containerd.Running {
		return sb, nil
	}
	if !meta.NetworkReady {
		// Half made when the daemon died (RunPodSandbox never finished): NotReady, for the
		// kubelet to stop and remove. Its pause process is killed now, so that nothing runs under
		// a sandbox the kubelet sees as not ready (found by the kill -9 chaos test in
		// test/reliability, which checks the CRI view against containerd's tasks); the stop still
		// tears the network down.
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			logrus.WithError(err).WithField("sandbox", meta.ID).Warn("recover: kill the pause of a half-made sandbox")
		} else {
			removeCgroupLeftovers(specCgroupsPath(ctx, c))
		}
		return sb, nil
	}
	sb.state, sb.pid = legacy.SandboxStateReady, task.Pid()
	r.monitorExit(sb, nil) // the exit monitor's reconciliation finds an exit meanwhile
	return sb, nil
}

// removeLabelledPodContainers deletes the containers labelled with the sandbox's ID from
// containerd, their tasks killed first: the pod's containers when no record of the pod is left
// to find them by.
func (r *ContainerdRuntime) removeLabelledPodContainers(ctx context.Context, sandboxID string) error {
	cs, err := r.listPodContainers(ctx, sandboxID)
	if err != nil {
		return err
	}
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if task, err := c.Task(ctx, nil); err == nil {
				if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
					errs[i] = err
					return
				}
			}
			if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
