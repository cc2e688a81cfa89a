package kuberuntime

import (
	"context"
	"syscall"

	"github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/api/types"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
)

// Tasks by id, through containerd's task service: the hot paths (StartContainer, RunPodSandbox,
// StopContainer, an exit) make no handle of containerd's client per task, which would cost a
// container Get and a task Get and keep the container's record, spec included, in memory for as
// long as the task runs. What needs a handle (exec, attach, resource updates, checkpoint, undo)
// loads one with loadTask.

// loadTask returns a handle of containerd's client on the task of container id.
func (r *ContainerdRuntime) loadTask(ctx context.Context, id string) (containerd.Task, error) {
	c, err := r.client.LoadContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.Task(ctx, nil)
}

// createTask creates container id's task with the given rootfs mounts and stdio, and returns its
// pid.
func (r *ContainerdRuntime) createTask(ctx context.Context, id string, rootfs []mount.Mount, io cio.IO, opts *runcoptions.Options) (uint32, error) {
	cfg := io.Config()
	req := &tasks.CreateTaskRequest{
		ContainerID: id,
		Terminal:    cfg.Terminal,
		Stdin:       cfg.Stdin,
		Stdout:      cfg.Stdout,
		Stderr:      cfg.Stderr,
	}
	for _, m := range rootfs {
		req.Rootfs = append(req.Rootfs, &types.Mount{Type: m.Type, Source: m.Source, Target: m.Target, Options: m.Options})
	}
	if opts != nil {
		a, err := typeurl.MarshalAnyToProto(opts)
		if err != nil {
			return 0, err
		}
		req.Options = a
	}
	resp, err := r.client.TaskService().Create(ctx, req)
	if err != nil {
		return 0, errgrpc.ToNative(err)
	}
	return resp.Pid, nil
}

// startTask starts the created task of id and returns its pid.
func (r *ContainerdRuntime) startTask(ctx context.Context, id string) (uint32, error) {
	resp, err := r.client.TaskService().Start(ctx, &tasks.StartRequest{ContainerID: id})
	if err != nil {
		return 0, errgrpc.ToNative(err)
	}
	return resp.Pid, nil
}

// killDeleteTask kills the task of id (its process, and the others of its cgroup) and deletes it
// once it exited; no task is fine. For the undo of a failed start: not a hot path.
func (r *ContainerdRuntime) killDeleteTask(ctx context.Context, id string) error {
	task, err := r.loadTask(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// deleteExitedTask deletes the task of id, whose process exited; no task is fine. One round trip
// (the client's Task.Delete asks for the status first).
func (r *ContainerdRuntime) deleteExitedTask(ctx context.Context, id string) error {
	_, err := r.client.TaskService().Delete(ctx, &tasks.DeleteTaskRequest{ContainerID: id})
	err = errgrpc.ToNative(err)
	if errdefs.IsFailedPrecondition(err) {
		return r.killDeleteTask(ctx, id) // still there after all: kill it first
	}
	if err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// signalTask sends sig to the task's process; a task that is gone is no error.
func (r *ContainerdRuntime) signalTask(ctx context.Context, id string, sig syscall.Signal) error {
	_, err := r.client.TaskService().Kill(ctx, &tasks.KillRequest{ContainerID: id, Signal: uint32(sig)})
	if err = errgrpc.ToNative(err); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// waitTask returns a channel closed when the task of id has exited, is gone, or ctx ended: a
// wait by id.
func (r *ContainerdRuntime) waitTask(ctx context.Context, id string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.client.TaskService().Wait(ctx, &tasks.WaitRequest{ContainerID: id})
	}()
	return done
}
