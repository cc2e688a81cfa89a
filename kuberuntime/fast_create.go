package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"sync"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
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

// errNeedsRootfs is returned by a spec option that has to read the container's rootfs (the image's
// /etc/passwd and /etc/group for the user) when the rootfs does not exist yet: the caller then takes
// the general path, which prepares the snapshot before generating the spec.
var errNeedsRootfs = errors.New("spec generation needs the container's rootfs")

// newContainerRecordFirst creates container id: opts fill in the record (spec, labels, runtime,
// extensions) with c.Snapshotter set and c.SnapshotKey empty; the record is created with snapshot key
// id, and then the snapshot is prepared from parent. It returns the rootfs mounts of the snapshot
// (none, and no snapshot, when parent is empty: the spec names its rootfs path) and the record's
// spec (JSON).
// On errNeedsRootfs from an option nothing has been created. On any other failure nothing is left.
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

// userLookup is the outcome of resolving a user (and its groups) in an image's /etc/passwd and
// /etc/group: what containerd's user options set in the spec.
type userLookup struct {
	uid, gid uint32
	gids     []uint32
	umask    *uint32
}

// userLookupCache keeps the lookups by image (chain ID) and user: an image's files never change,
// and a container's rootfs is a fresh snapshot of its image at create, so the lookup of a user in
// it is the same for every container of the image; it saves mounting and unmounting the rootfs on
// every CreateContainer. The key holds the image's chain ID (its content) and everything of the
// config the lookup depends on, so an entry never goes stale; the map is bounded.
type userLookupCache struct {
	mu sync.Mutex
	m  map[string]userLookup
}

const maxUserLookups = 4096

func (c *userLookupCache) get(key string) (userLookup, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.m[key]
	return u, ok
}

func (c *userLookupCache) put(key string, u userLookup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxUserLookups {
		c.m = map[string]userLookup{}
	}
	c.m[key] = u
}

// withCachedUserLookup applies lookup (options that read the image's passwd and group files in
// the container's rootfs) through the cache under key: on a hit the spec's user is set from the
// cache without touching the rootfs; on a miss with no rootfs yet it fails with errNeedsRootfs; on
// a miss with a rootfs it runs lookup and remembers the outcome. An empty key disables the cache.
func withCachedUserLookup(cache *userLookupCache, key string, lookup oci.SpecOpts) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *runtimespec.Spec) error {
		if s.Process == nil {
			s.Process = &runtimespec.Process{}
		}
		if cache != nil && key != "" {
			if u, ok := cache.get(key); ok {
				s.Process.User.UID, s.Process.User.GID = u.uid, u.gid
				s.Process.User.AdditionalGids = append([]uint32(nil), u.gids...)
				if u.umask != nil {
					v := *u.umask
					s.Process.User.Umask = &v
				}
				return nil
			}
			if c.SnapshotKey == "" && c.Snapshotter != "" {
				return errNeedsRootfs
			}
		}
		if err := lookup(ctx, client, c, s); err != nil {
			return err
		}
		if cache != nil && key != "" {
			u := userLookup{uid: s.Process.User.UID, gid: s.Process.User.GID, gids: append([]uint32(nil), s.Process.User.AdditionalGids...)}
			if s.Process.User.Umask != nil {
				v := *s.Process.User.Umask
				u.umask = &v
			}
			cache.put(key, u)
		}
		return nil
	}
}

// userLookupKey is the cache key of the user lookup of a container of the image with chainID: the
// image's user and every field of the security context the lookup reads.
func userLookupKey(chainID, imageUser string, sc *runtime.LinuxContainerSecurityContext, nonRoot bool) string {
	if chainID == "" {
		return ""
	}
	k := fmt.Sprintf("%s|%q|%q|%d|%v", chainID, imageUser, sc.GetRunAsUsername(), sc.GetSupplementalGroupsPolicy(), nonRoot)
	if u := sc.GetRunAsUser(); u != nil {
		k += fmt.Sprintf("|u%d", u.GetValue())
	}
	if g := sc.GetRunAsGroup(); g != nil {
		k += fmt.Sprintf("|g%d", g.GetValue())
	}
	return k + fmt.Sprintf("|%v", sc.GetSupplementalGroups())
}
