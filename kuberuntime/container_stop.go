package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/moby/sys/signal"
	"github.com/sirupsen/logrus"
)

// StopContainer stops a running container: the image's stop signal (SIGTERM by default), then
// SIGKILL once timeout passed. A container that does not run is left as it is.
func (r *ContainerdRuntime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	c, err := r.ctrs().store.get(id)
	if err != nil {
		return err
	}
	if err := r.stopContainer(r.withNS(ctx), c, timeout); err != nil {
		return err
	}
	r.nriStopContainer(ctx, c)
	return nil
}

func (r *ContainerdRuntime) stopContainer(ctx context.Context, c *podContainer, timeout time.Duration) error {
	state := c.snapshot().state
	if state != legacy.ContainerStateRunning {
		return nil
	}
	log := logrus.WithField("container", c.meta.ID)
	// A wait of our own, besides the monitor's: it also ends when the task is gone already (the
	// runtime was closed, or another daemon deleted it).
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	waitCh := r.waitTask(wctx, c.meta.ID)
	if timeout > 0 {
		sig := syscall.SIGTERM
		if c.meta.StopSignal != "" {
			if s, err := signal.ParseSignal(c.meta.StopSignal); err == nil {
				sig = s
			} else {
				log.WithError(err).Warn("unknown stop signal; using SIGTERM")
			}
		}
		if err := r.signalTask(ctx, c.meta.ID, sig); err != nil {
			if r.exitBeingHandled(c) {
				return r.afterTaskExit(c)
			}
			return fmt.Errorf("%w: signal %v: %w", legacy.ErrKillContainer, sig, err)
		}
		select {
		case <-c.exited:
			return nil
		case <-waitCh:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return r.afterTaskExit(c)
		case <-time.After(timeout):
			log.WithField("timeout", timeout).Debug("container did not stop in time; killing it")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := r.signalTask(ctx, c.meta.ID, syscall.SIGKILL); err != nil {
		if r.exitBeingHandled(c) {
			return r.afterTaskExit(c)
		}
		return fmt.Errorf("%w: SIGKILL: %w", legacy.ErrKillContainer, err)
	}
	select {
	case <-c.exited:
		return nil
	case <-waitCh:
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.afterTaskExit(c)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exitBeingHandled tells whether the task of c has exited and the exit monitor is handling it
// (handleContainerExit): it deletes the task right away, while the output drains, before the
// container's state says Exited. A signal sent in that window can fail ("ttrpc: closed" once the
// shim connection of the deleted task is closed), and the container is stopped all the same.
func (r *ContainerdRuntime) exitBeingHandled(c *podContainer) bool {
	return c.exitHandled()
}

// afterTaskExit waits, briefly, for the exit monitor to record the exit of a task that is gone.
func (r *ContainerdRuntime) afterTaskExit(c *podContainer) error {
	select {
	case <-c.exited:
	case <-r.bg.Done():
	case <-time.After(10 * time.Second):
	}
	return nil
}

// RemoveContainer removes a container: killed first when it runs, then its task, containerd
// container, snapshot and dirs. The log file stays (the kubelet owns it). An absent container is
// no error. It answers once the container is stopped and out of the store (a removing marker
// written); the deletion from containerd finishes in the background (container_remove.go).
func (r *ContainerdRuntime) RemoveContainer(ctx context.Context, id string) error {
	return r.removeContainer(ctx, id, true)
}

// removeContainer is RemoveContainer; with async false it answers only once everything is deleted.
func (r *ContainerdRuntime) removeContainer(ctx context.Context, id string, async bool) error {
	st := r.ctrs()
	c, err := st.store.get(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	ctx = r.withNS(ctx)
	c.markRemoving()
	c.op.Lock()
	if _, err := st.store.get(c.meta.ID); err != nil {
		c.op.Unlock()
		return nil // removed meanwhile
	}
	if err := r.stopContainer(ctx, c, 0); err != nil {
		c.op.Unlock()
		return fmt.Errorf("stop container before removing it: %w", err)
	}
	r.nriRemoveContainer(ctx, c)
	if async && r.removeContainerAsync(c) {
		return nil // c.op is released by the background deletion
	}
	defer c.op.Unlock()
	if err := r.finishRemoveContainer(ctx, c); err != nil {
		return err
	}
	st.store.remove(c)
	r.emitContainerEvent(legacy.ContainerEventDeleted, c)
	logrus.WithField("container", c.meta.ID).Debug("container removed")
	return nil
}

// containerManagerHooks stops and removes a pod's containers for StopPodSandbox and
// RemovePodSandbox, keeping the container store in step.
type containerManagerHooks struct{ r *ContainerdRuntime }

func (h containerManagerHooks) StopPodContainers(ctx context.Context, sandboxID string) []*legacy.SyncResult {
	cs := h.r.ctrs().store.ofSandbox(sandboxID)
	results := make([]*legacy.SyncResult, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		results[i] = legacy.NewSyncResult(legacy.KillContainer, c.config.GetMetadata().GetName())
		wg.Add(1)
		go func(res *legacy.SyncResult, c *podContainer) {
			defer wg.Done()
			if err := h.r.stopContainer(h.r.withNS(ctx), c, 0); err != nil {
				res.Fail(legacy.ErrKillContainer, err.Error())
				return
			}
			// The exited task is deleted in the background; the pause task shares its shim, and
			// deleting both at once can close the shim under the pause's delete ("ttrpc: closed").
			_ = c.waitTaskGone(ctx) // a cancelled ctx fails the pause's delete anyway
		}(results[i], c)
	}
	wg.Wait()
	// Containers of the sandbox the store does not know (half made): by their labels.
	results = append(results, h.orphans(ctx, sandboxID, false)...)
	return results
}

func (h containerManagerHooks) RemovePodContainers(ctx context.Context, sandboxID string) error {
	cs := h.r.ctrs().store.ofSandbox(sandboxID)
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func(i int, c *podContainer) {
			defer wg.Done()
			errs[i] = h.r.removeContainer(ctx, c.meta.ID, false)
		}(i, c)
	}
	wg.Wait()
	// Containers removed earlier whose deletion still runs: not to be taken for orphans.
	if err := h.r.removals().wait(ctx, sandboxID); err != nil {
		errs = append(errs, err)
	}
	for _, res := range h.orphans(ctx, sandboxID, true) {
		if res.Error != nil {
			errs = append(errs, fmt.Errorf("%s: %s", res.Target, res.Message))
		}
	}
	return errors.Join(errs...)
}

// orphans kills (and with remove, deletes) the containerd containers of the sandbox that the
// store does not hold.
func (h containerManagerHooks) orphans(ctx context.Context, sandboxID string, remove bool) []*legacy.SyncResult {
	ctx = h.r.withNS(ctx)
	list, err := h.r.listPodContainers(ctx, sandboxID)
	if err != nil {
		res := legacy.NewSyncResult(legacy.KillContainer, sandboxID)
		res.Fail(legacy.ErrKillContainer, fmt.Sprintf("list the pod's containers: %v", err))
		return []*legacy.SyncResult{res}
	}
	var out []*legacy.SyncResult
	for _, cntr := range list {
		if _, err := h.r.ctrs().store.get(cntr.ID()); err == nil || h.r.removals().has(cntr.ID()) {
			continue
		}
		res := legacy.NewSyncResult(legacy.KillContainer, cntr.ID())
		out = append(out, res)
		if err := killTask(ctx, cntr); err != nil {
			res.Fail(legacy.ErrKillContainer, err.Error())
			continue
		}
		if !remove {
			continue
		}
		if task, err := cntr.Task(ctx, nil); err == nil {
			if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
				res.Fail(legacy.ErrKillContainer, err.Error())
				continue
			}
		}
		if err := cntr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			res.Fail(legacy.ErrKillContainer, err.Error())
			continue
		}
		if err := h.r.unmountImageVolumes(ctx, cntr.ID(), filepath.Join(h.r.containersRoot(), cntr.ID()), nil); err != nil {
			res.Fail(legacy.ErrKillContainer, err.Error())
		}
	}
	return out
}
