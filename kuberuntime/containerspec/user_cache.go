package containerspec

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ErrNeedsRootfs is returned by a spec option that has to read the container's rootfs (the image's
// /etc/passwd and /etc/group for the user) when the rootfs does not exist yet: the caller then takes
// the general path, which prepares the snapshot before generating the spec.
var ErrNeedsRootfs = errors.New("spec generation needs the container's rootfs")

// userLookup is the outcome of resolving a user (and its groups) in an image's /etc/passwd and
// /etc/group: what containerd's user options set in the spec.
type userLookup struct {
	uid, gid uint32
	gids     []uint32
	umask    *uint32
}

// UserCache keeps the lookups by image (chain ID) and user: an image's files never change,
// and a container's rootfs is a fresh snapshot of its image at create, so the lookup of a user in
// it is the same for every container of the image; it saves mounting and unmounting the rootfs on
// every CreateContainer. The key holds the image's chain ID (its content) and everything of the
// config the lookup depends on, so an entry never goes stale; the map is bounded.
type UserCache struct {
	mu sync.Mutex
	m  map[string]userLookup
}

const maxUserLookups = 4096

func (c *UserCache) get(key string) (userLookup, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u, ok := c.m[key]
	return u, ok
}

func (c *UserCache) put(key string, u userLookup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxUserLookups {
		c.m = map[string]userLookup{}
	}
	c.m[key] = u
}

// withCachedUserLookup applies lookup (options that read the image's passwd and group files in
// the container's rootfs) through the cache under key: on a hit the spec's user is set from the
// cache without touching the rootfs; on a miss with no rootfs yet it fails with ErrNeedsRootfs; on
// a miss with a rootfs it runs lookup and remembers the outcome. An empty key disables the cache.
func withCachedUserLookup(cache *UserCache, key string, lookup oci.SpecOpts) oci.SpecOpts {
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
				return ErrNeedsRootfs
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
