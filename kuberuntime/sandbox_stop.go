package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/sirupsen/logrus"
)

// StopPodSandbox stops the sandbox's containers, then its pause container while CNI DEL runs. It is
// idempotent, and succeeds when the network is gone already.
func (r *ContainerdRuntime) StopPodSandbox(ctx context.Context, id string) (result legacy.PodSyncResult) {
	sb, err := r.sandboxes.get(id)
	if err != nil {
		result.Fail(err)
		return result
	}
	sb.op.Lock()
	defer sb.op.Unlock()
	r.stopLocked(r.withNS(ctx), sb, &result)
	return result
}

func (r *ContainerdRuntime) stopLocked(ctx context.Context, sb *podSandbox, result *legacy.PodSyncResult) {
	id := sb.meta.ID
	md := sb.config.GetMetadata()
	fullName := legacy.BuildPodFullName(md.GetName(), md.GetNamespace())

	// No container starts from now on (shim_grouping.go); starts under way finish first.
	sb.startMu.Lock()
	sb.stopping = true
	sb.startMu.Unlock()
	t0 := time.Now()
	result.AddSyncResult(r.containers().StopPodContainers(ctx, id)...)
	tContainers := time.Since(t0)
	r.nriStopPodSandbox(ctx, sb)

	var wg sync.WaitGroup
	var tPause, tNet time.Duration
	killResult := legacy.NewSyncResult(legacy.KillPodSandbox, fullName)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer func(t time.Time) { tPause = time.Since(t) }(time.Now())
		stop := func() error { return r.deletePauseTask(ctx, id) }
		if sb.meta.PauseLess {
			stop = func() error {
				if err := r.stopPauseLess(id); err != nil { // sandbox_pauseless.go
					return err
				}
				// Its tasks are deleted (StopPodContainers waited for them): the shim can go.
				r.shutdownPodShim(ctx, sb) // pod_shim.go
				return nil
			}
		}
		if err := stop(); err != nil {
			killResult.Fail(legacy.ErrKillContainer, err.Error())
			return
		}
		// After the containers' stopped events (StopPodContainers returned once their exits
		// were recorded), as containerd's CRI.
		if sb.setStopped(time.Now()) {
			r.emitSandboxEvent(legacy.ContainerEventStopped, sb)
		}
		r.podSandboxChanged(sb, time.Now())
	}()
	netUp := sb.snapshot().netUp
	var netResult *legacy.SyncResult
	if netUp && !sb.hostNetwork() && r.net != nil {
		netResult = legacy.NewSyncResult(legacy.TeardownNetwork, fullName)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func(t time.Time) { tNet = time.Since(t) }(time.Now())
			if err := r.net.Teardown(ctx, id, sb.meta.NetNSPath, sb.config); err != nil {
				netResult.Fail(legacy.ErrTeardownNetwork, err.Error())
				return
			}
			sb.markNetworkDown()
		}()
	}
	wg.Wait()
	logrus.WithFields(logrus.Fields{"sandbox": id, "containers": tContainers, "pause": tPause, "network": tNet}).Debug("sandbox stopped")
	result.AddSyncResult(killResult)
	if netResult != nil {
		result.AddSyncResult(netResult)
	}
	netUp = sb.snapshot().netUp
	if killResult.Error == nil && !netUp {
		// Nothing runs in the pod any more: its netns and /dev/shm can go.
		if err := sandbox.RemoveNetNS(sb.meta.NetNSPath); err != nil {
			logrus.WithError(err).WithField("sandbox", id).Warn("remove netns")
		}
		if err := sb.files.Cleanup(); err != nil {
			logrus.WithError(err).WithField("sandbox", id).Warn("unmount pod shm")
		}
	}
}

// deletePauseTask kills the pause process and deletes its task; no task is fine.
func (r *ContainerdRuntime) deletePauseTask(ctx context.Context, id string) error {
	task, err := r.loadTask(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load pause task: %w", err)
	}
	st, err := task.Status(ctx)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pause task status: %w", err)
	}
	t0 := time.Now()
	if st.Status == containerd.Running || st.Status == containerd.Paused || st.Status == containerd.Created && task.Pid() != 0 {
		// The pause process is alone in the sandbox's cgroup: SIGKILL to it is enough (no
		// runc kill --all, which freezes the cgroup).
		exitCh, err := task.Wait(ctx)
		if err != nil {
			return fmt.Errorf("wait pause task: %w", err)
		}
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("kill pause task: %w", err)
		}
		select {
		case <-exitCh:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t1 := time.Now()
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		// The shim may go away under the call (its last task deleted): gone is gone.
		if _, lerr := r.loadTask(ctx, id); errdefs.IsNotFound(lerr) {
			return nil
		}
		return fmt.Errorf("delete pause task: %w", err)
	}
	logrus.WithFields(logrus.Fields{"sandbox": id, "kill": t1.Sub(t0), "delete": time.Since(t1)}).Trace("pause task deleted")
	return nil
}

// RemovePodSandbox removes a sandbox with its containers, network namespace and files; a running
// sandbox is stopped first. An absent sandbox is no error.
func (r *ContainerdRuntime) RemovePodSandbox(ctx context.Context, id string) error {
	sb, err := r.sandboxes.get(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx = r.withNS(ctx)
	sb.op.Lock()
	defer sb.op.Unlock()
	if _, err := r.sandboxes.get(sb.meta.ID); err != nil {
		return nil // removed meanwhile
	}
	snap := sb.snapshot()
	running := snap.state == legacy.SandboxStateReady || snap.netUp
	if running {
		var res legacy.PodSyncResult
		r.stopLocked(ctx, sb, &res)
		if err := res.Error(); err != nil {
			return fmt.Errorf("stop sandbox before removing it: %w", err)
		}
	}
	if err := r.containers().RemovePodContainers(ctx, sb.meta.ID); err != nil {
		return fmt.Errorf("remove the pod's containers: %w", err)
	}
	if err := r.deletePauseTask(ctx, sb.meta.ID); err != nil {
		return err
	}
	if sb.meta.PauseLess {
		r.shutdownPodShim(ctx, sb) // pod_shim.go; what still serves a task is killed below
	}
	if c, err := r.client.LoadContainer(ctx, sb.meta.ID); err == nil {
		cg := specCgroupsPath(ctx, c)
		if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete pause container: %w", err)
		}
		// The orphan shim first: a create it still runs would put a process back into the cgroups.
		r.killOrphanShim(sb.meta.ID)
		removeCgroupLeftovers(cg) // cgroup_leftovers.go
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("load pause container: %w", err)
	}
	if sb.meta.GroupedShim {
		if err := r.deleteSandboxRecord(ctx, sb.meta.ID); err != nil {
			return fmt.Errorf("delete the sandbox record: %w", err)
		}
	}
	var errs []error
	errs = append(errs, sandbox.RemoveNetNS(sb.meta.NetNSPath), sb.files.Cleanup())
	if err := os.RemoveAll(r.SandboxRootDir(sb.meta.ID)); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(r.SandboxStateDir(sb.meta.ID)); err != nil {
		errs = append(errs, err)
	}
	r.nriRemovePodSandbox(ctx, sb)
	r.sandboxes.remove(sb)
	// After its containers' deleted events (RemovePodContainers returned), with the status the
	// sandbox had as it left the store.
	r.emitSandboxEvent(legacy.ContainerEventDeleted, sb)
	r.podSandboxChanged(sb, time.Now())
	if err := errors.Join(errs...); err != nil {
		logrus.WithError(err).WithField("sandbox", sb.meta.ID).Warn("remove sandbox files")
	}
	return nil
}

// containers stops and removes a pod's containers with the container manager's store in step.
func (r *ContainerdRuntime) containers() containerManagerHooks { return containerManagerHooks{r} }

// listPodContainers lists the sandbox's containers in containerd by their labels.
func (r *ContainerdRuntime) listPodContainers(ctx context.Context, sandboxID string) ([]containerd.Container, error) {
	return r.client.Containers(ctx, fmt.Sprintf(`labels.%q==%q,labels.%q==%q`, LabelKind, KindContainer, LabelSandboxID, sandboxID))
}

// killTask SIGKILLs a running task and waits for it to exit; the task stays (with its exit status).
func killTask(ctx context.Context, c containerd.Container) error {
	task, err := c.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := task.Status(ctx)
	if err != nil {
		return err
	}
	if st.Status == containerd.Stopped {
		return nil
	}
	exitCh, err := task.Wait(ctx)
	if err != nil {
		return err
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	select {
	case <-exitCh:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
