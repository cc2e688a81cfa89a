package kuberuntime

import (
	"context"
	"errors"
	"time"

	"github.com/containerd/containerd/v2/core/sandbox"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
)

// One shim per pod, reached without starting a process.
//
// The runc shim groups a pod's containers in the shim of its pause container (by the
// io.kubernetes.cri.sandbox-id annotation); but to find that shim containerd runs the shim binary
// once more for every container ("containerd-shim-runc-v2 start", a Go program starting up to
// print the address of the shim already there: ~8 ms of StartContainer and its CPU). A container
// whose record names its sandbox (containers.Container.SandboxID), when containerd's sandbox store
// holds that sandbox, is instead connected straight to the pause task's shim, from its bootstrap
// params. That is what containerd's own CRI does; RunPodSandbox makes the sandbox record for pods
// on the runc shim, and CreateContainer names the sandbox in the records of their containers.
//
// containerd then deletes such a container's task without asking its shim to shut down (the shim
// is the sandbox's): the pause task must be the last deleted, or the shim outlives the pod. So a
// stopping sandbox starts no more containers (podSandbox.startMu, .stopping), and its containers'
// tasks, orphans' too, are deleted before the pause task's.

// groupsShims tells whether the runtime type's shim takes a pod's containers in the pause's shim.
func groupsShims(runtimeType string) bool {
	return runtimeType == plugins.RuntimeRuncV2
}

// createSandboxRecord records the sandbox in containerd's sandbox store.
func (r *ContainerdRuntime) createSandboxRecord(ctx context.Context, id, runtimeType string) error {
	now := time.Now().UTC()
	_, err := r.client.SandboxStore().Create(ctx, sandbox.Sandbox{
		ID:        id,
		Labels:    map[string]string{LabelKind: KindSandbox},
		Runtime:   sandbox.RuntimeOpts{Name: runtimeType},
		CreatedAt: now, UpdatedAt: now,
	})
	return err
}

// deleteSandboxRecord removes the sandbox from containerd's sandbox store; absent is fine.
func (r *ContainerdRuntime) deleteSandboxRecord(ctx context.Context, id string) error {
	if err := r.client.SandboxStore().Delete(ctx, id); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	return nil
}

// removeStaleSandboxRecords deletes the sandbox records of containerd's sandbox store (in the
// runtime's namespace) that belong to no known sandbox: a daemon killed between making a record
// and its pause container, or between removing them. It returns the known sandboxes that have one.
func (r *ContainerdRuntime) removeStaleSandboxRecords(ctx context.Context, known map[string]bool) map[string]bool {
	kept := map[string]bool{}
	list, err := r.client.SandboxStore().List(ctx)
	if err != nil {
		logrus.WithError(err).Warn("recover: list containerd's sandbox records")
		return kept
	}
	for _, sb := range list {
		if sb.Labels[LabelKind] != KindSandbox {
			continue
		}
		if known[sb.ID] {
			kept[sb.ID] = true
			continue
		}
		if err := r.deleteSandboxRecord(ctx, sb.ID); err != nil {
			logrus.WithError(err).WithField("sandbox", sb.ID).Warn("recover: delete a stale sandbox record")
			continue
		}
		logrus.WithField("sandbox", sb.ID).Info("recover: deleted the sandbox record of an unknown sandbox")
	}
	return kept
}

// errSandboxStopping: a container start in a sandbox that is being stopped.
var errSandboxStopping = errors.New("sandbox is being stopped")
