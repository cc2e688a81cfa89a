package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
)

// removingMarker, a file in a container's root dir, says that RemoveContainer answered and the
// container's deletion from containerd is still to finish. A daemon that starts and finds it
// finishes the removal instead of recovering the container.
const removingMarker = "removing"

// pendingRemovals are the containers RemoveContainer answered for whose containerd deletion runs
// in the background.
type pendingRemovals struct {
	mu sync.Mutex
	m  map[string]pendingRemoval
}

type pendingRemoval struct {
	sandboxID string
	done      chan struct{}
}

func (r *ContainerdRuntime) removals() *pendingRemovals {
	r.removalsOnce.Do(func() { r.removalsState = &pendingRemovals{m: map[string]pendingRemoval{}} })
	return r.removalsState
}

func (p *pendingRemovals) add(c *podContainer) chan struct{} {
	done := make(chan struct{})
	p.mu.Lock()
	p.m[c.meta.ID] = pendingRemoval{sandboxID: c.meta.SandboxID, done: done}
	p.mu.Unlock()
	return done
}

func (p *pendingRemovals) finish(id string, done chan struct{}) {
	p.mu.Lock()
	delete(p.m, id)
	p.mu.Unlock()
	close(done)
}

func (p *pendingRemovals) has(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.m[id]
	return ok
}

// wait waits for the pending removals of a sandbox's containers (all with sandboxID "").
func (p *pendingRemovals) wait(ctx context.Context, sandboxID string) error {
	p.mu.Lock()
	var chs []chan struct{}
	for _, pr := range p.m {
		if sandboxID == "" || pr.sandboxID == sandboxID {
			chs = append(chs, pr.done)
		}
	}
	p.mu.Unlock()
	for _, ch := range chs {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// removeContainerAsync answers RemoveContainer for a stopped container (the caller holds c.op and
// has stopped it): the container leaves the store (NotFound, gone from lists, its name free)
// once the removing marker is written, and the deletion of its task, containerd container,
// snapshot and dirs goes on in the background (the exited task's deletion, which the exit handler
// started, takes tens of milliseconds). It releases c.op when the deletion is over. false: the
// marker could not be written; the caller removes it synchronously.
func (r *ContainerdRuntime) removeContainerAsync(c *podContainer) bool {
	if err := os.WriteFile(filepath.Join(c.rootDir, removingMarker), nil, 0o600); err != nil {
		logrus.WithError(err).WithField("container", c.meta.ID).Warn("write removing marker; removing synchronously")
		return false
	}
	st := r.ctrs()
	p := r.removals()
	done := p.add(c)
	st.store.remove(c)
	r.emitContainerEvent(legacy.ContainerEventDeleted, c)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer c.op.Unlock()
		defer p.finish(c.meta.ID, done)
		// Not cancelled with the daemon: a graceful shutdown lets the deletion finish.
		ctx, cancel := withoutCancel(r.withNS(r.bg), cleanupTimeout)
		defer cancel()
		if err := r.finishRemoveContainer(ctx, c); err != nil {
			// The marker stays: the next start, or the pod's removal, finishes it.
			logrus.WithError(err).WithField("container", c.meta.ID).Warn("remove container in the background")
			return
		}
		logrus.WithField("container", c.meta.ID).Debug("container removed")
	}()
	return true
}

// finishRemoveContainer (after NRI was told) deletes a stopped container's task, containerd container (with its
// snapshot), stdio, image volumes and dirs. The store is not touched.
func (r *ContainerdRuntime) finishRemoveContainer(ctx context.Context, c *podContainer) error {
	// The exit handler deletes the exited task after recording the exit: let it finish.
	if err := c.waitTaskGone(ctx); err != nil {
		return err
	}
	if task, err := r.loadTask(ctx, c.meta.ID); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task: %w", err)
		}
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("load task: %w", err)
	}
	if cntr, err := r.loadContainer(ctx, c.meta.ID); err == nil {
		if err := cntr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete container: %w", err)
		}
		removeCgroupLeftovers(c.meta.CgroupsPath) // cgroup_leftovers.go
	} else if !errdefs.IsNotFound(err) {
		return fmt.Errorf("load container: %w", err)
	}
	c.closeIO()
	if err := r.unmountImageVolumes(ctx, c.meta.ID, c.rootDir, c.meta.ImageVolumes); err != nil {
		// Never RemoveAll through a mounted image.
		return fmt.Errorf("remove image volumes: %w", err)
	}
	// The root dir, with the removing marker, goes last.
	if err := errors.Join(os.RemoveAll(c.stateDir), os.RemoveAll(c.rootDir)); err != nil {
		logrus.WithError(err).WithField("container", c.meta.ID).Warn("remove container dirs")
	}
	return nil
}

// finishRemoveAtStart finishes, at daemon start, the removal of a container whose removing marker
// is there: it tells whether it found the marker (the container is then not recovered). Its dirs
// and image volumes go with the unknown ones.
func (r *ContainerdRuntime) finishRemoveAtStart(ctx context.Context, cntr containerd.Container) bool {
	if _, err := os.Stat(filepath.Join(r.containersRoot(), cntr.ID(), removingMarker)); err != nil {
		return false
	}
	log := logrus.WithField("container", cntr.ID())
	log.Info("recover container: finishing its removal")
	if task, err := cntr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			log.WithError(err).Warn("delete the task of a removed container")
		}
	}
	if err := cntr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		log.WithError(err).Warn("delete a removed container")
	}
	return true
}

// waitTaskGone waits until the exit handler has deleted the container's exited task (it does so in
// the background after recording the exit); no exit handled yet is nothing to wait for.
func (c *podContainer) waitTaskGone(ctx context.Context) error {
	gone := c.taskGoneCh()
	if gone == nil {
		return nil
	}
	select {
	case <-gone:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
