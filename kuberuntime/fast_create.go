package kuberuntime

import (
	"context"
	"errors"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
)

// The containerd client's NewContainer and NewTask are general: NewContainer wraps the container's
// creation in a temporary lease (a lease create and a lease delete, each a committed write of
// containerd's metadata database, the delete also a garbage-collection trigger) so that the
// snapshot it prepares first is not collected before the container record refers to it; NewTask
// reads the container record three times and asks the snapshotter for the rootfs mounts before it
// creates the task. On a busy node each of those is a round trip to containerd and a write
// transaction that waits for the disk.
//
// cri-shim knows what it creates, so it does less: the container record is written first (it
// names its snapshot key, which makes the snapshot referenced from the moment it exists: no lease
// needed), then the snapshot is prepared, and its mounts are kept for the task; the task is created
// with one Create call (the runtime and its options are read by containerd from the record) and
// read back once.

// newContainerRecordFirst creates container id: opts fill in the record (spec, labels, runtime,
// extensions) with c.Snapshotter set and c.SnapshotKey empty; the record is created with snapshot key
// id, and then the snapshot is prepared from parent. It returns the rootfs mounts of the snapshot
// (none, and no snapshot, when parent is empty: the spec names its rootfs path) and the record's
// spec (JSON).
// On containerspec.ErrNeedsRootfs from an option nothing has been created. On any other failure
// nothing is left.
func (r *ContainerdRuntime) newContainerRecordFirst(ctx context.Context, id, image, snapshotter, parent string, snapOpts []snapshots.Opt, opts ...containerd.NewContainerOpts) ([]mount.Mount, []byte, error) {
	rec := containers.Container{ID: id, Snapshotter: snapshotter}
	if parent == "" {
		rec.Snapshotter = "" // options that read the rootfs read the spec's root path
	}
	for _, o := range opts {
		if err := o(ctx, r.client, &rec); err != nil {
			return nil, nil, &recordOptsError{err}
		}
	}
	if rec.Runtime.Name == "" {
		return nil, nil, fmt.Errorf("container %s without a runtime: %w", id, errdefs.ErrInvalidArgument)
	}
	rec.Image = image
	if parent == "" {
		// No snapshot of its own (a rootfs path in the spec).
		if _, err := r.client.ContainerService().Create(ctx, rec); err != nil {
			return nil, nil, err
		}
		return []mount.Mount{}, specJSON(rec), nil
	}
	rec.SnapshotKey = id
	if _, err := r.client.ContainerService().Create(ctx, rec); err != nil {
		return nil, nil, err
	}
	mounts, err := r.client.SnapshotService(snapshotter).Prepare(ctx, id, parent, snapOpts...)
	if err != nil {
		cctx, cancel := withoutCancel(ctx, cleanupTimeout)
		defer cancel()
		_ = r.client.ContainerService().Delete(cctx, id)
		return nil, nil, fmt.Errorf("prepare snapshot: %w", err)
	}
	return mounts, specJSON(rec), nil
}

// specJSON is the OCI spec (JSON) of a container record.
func specJSON(rec containers.Container) []byte {
	if rec.Spec == nil {
		return nil
	}
	return rec.Spec.GetValue()
}

// recordOptsError is an option's failure in newContainerRecordFirst: nothing was created.
type recordOptsError struct{ err error }

func (e *recordOptsError) Error() string { return e.err.Error() }

func (e *recordOptsError) Unwrap() error { return e.err }

// deleteContainerRecord takes back newContainerRecordFirst: the record and its snapshot.
func (r *ContainerdRuntime) deleteContainerRecord(ctx context.Context, id, snapshotter string) error {
	errC := r.client.ContainerService().Delete(ctx, id)
	if errdefs.IsNotFound(errC) {
		errC = nil
	}
	errS := r.client.SnapshotService(snapshotter).Remove(ctx, id)
	if errdefs.IsNotFound(errS) {
		errS = nil
	}
	return errors.Join(errC, errS)
}
