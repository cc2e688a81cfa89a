package containerspec

import (
	"context"
	"errors"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestCachedUserLookup(t *testing.T) {
	calls := 0
	lookup := func(_ context.Context, _ oci.Client, c *containers.Container, s *runtimespec.Spec) error {
		calls++
		if c.SnapshotKey == "" {
			t.Fatal("lookup ran without a rootfs")
		}
		s.Process.User.UID, s.Process.User.GID = 1000, 1001
		s.Process.User.AdditionalGids = []uint32{1001, 20}
		return nil
	}
	var cache UserCache
	opt := withCachedUserLookup(&cache, "img|u", lookup)
	ctx := context.Background()

	// No rootfs yet and nothing cached: the caller must take the general path.
	s := &runtimespec.Spec{Process: &runtimespec.Process{}}
	if err := opt(ctx, nil, &containers.Container{ID: "a", Snapshotter: "overlayfs"}, s); !errors.Is(err, ErrNeedsRootfs) {
		t.Fatalf("miss without rootfs: err = %v, want ErrNeedsRootfs", err)
	}
	if calls != 0 {
		t.Fatalf("lookup ran %d times without a rootfs", calls)
	}
	// With a rootfs: looked up, and remembered.
	if err := opt(ctx, nil, &containers.Container{ID: "a", Snapshotter: "overlayfs", SnapshotKey: "a"}, s); err != nil {
		t.Fatal(err)
	}
	if calls != 1 || s.Process.User.UID != 1000 {
		t.Fatalf("after the miss: calls %d, user %+v", calls, s.Process.User)
	}
	// A later container of the same image and user: from the cache, no rootfs needed.
	s2 := &runtimespec.Spec{Process: &runtimespec.Process{}}
	if err := opt(ctx, nil, &containers.Container{ID: "b", Snapshotter: "overlayfs"}, s2); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("cached lookup ran the lookup again (%d calls)", calls)
	}
	if s2.Process.User.UID != 1000 || s2.Process.User.GID != 1001 || len(s2.Process.User.AdditionalGids) != 2 {
		t.Fatalf("cached user = %+v", s2.Process.User)
	}
	// The cached groups are a copy: changing one spec's groups does not change the next one's.
	s2.Process.User.AdditionalGids[0] = 7
	s3 := &runtimespec.Spec{Process: &runtimespec.Process{}}
	if err := opt(ctx, nil, &containers.Container{ID: "c", Snapshotter: "overlayfs"}, s3); err != nil {
		t.Fatal(err)
	}
	if s3.Process.User.AdditionalGids[0] != 1001 {
		t.Fatalf("cache entry shared with a spec: %v", s3.Process.User.AdditionalGids)
	}
	// A failed lookup is not cached.
	failing := withCachedUserLookup(&cache, "img|nobody", func(context.Context, oci.Client, *containers.Container, *runtimespec.Spec) error {
		return errors.New("no such user")
	})
	if err := failing(ctx, nil, &containers.Container{ID: "d", Snapshotter: "overlayfs", SnapshotKey: "d"}, s3); err == nil {
		t.Fatal("failed lookup succeeded")
	}
	if _, ok := cache.get("img|nobody"); ok {
		t.Fatal("failed lookup was cached")
	}
	// No key: no cache, the lookup always runs (with whatever rootfs the container has).
	nokey := withCachedUserLookup(&cache, "", lookup)
	if err := nokey(ctx, nil, &containers.Container{ID: "e", Snapshotter: "overlayfs", SnapshotKey: "e"}, s3); err != nil || calls != 2 {
		t.Fatalf("uncached lookup: err %v, calls %d", err, calls)
	}
}

func TestUserLookupKeyCoversTheInputs(t *testing.T) {
	i64 := func(v int64) *runtime.Int64Value { return &runtime.Int64Value{Value: v} }
	base := func() *runtime.LinuxContainerSecurityContext { return &runtime.LinuxContainerSecurityContext{} }
	variants := []struct {
		chain, imageUser string
		sc               *runtime.LinuxContainerSecurityContext
		nonRoot          bool
	}{
		{"sha256:a", "", base(), false},
		{"sha256:b", "", base(), false},
		{"sha256:a", "nobody", base(), false},
		{"sha256:a", "", base(), true},
		{"sha256:a", "", &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000)}, false},
		{"sha256:a", "", &runtime.LinuxContainerSecurityContext{RunAsUser: i64(1000), RunAsGroup: i64(5)}, false},
		{"sha256:a", "", &runtime.LinuxContainerSecurityContext{RunAsUsername: "www"}, false},
		{"sha256:a", "", &runtime.LinuxContainerSecurityContext{SupplementalGroups: []int64{4}}, false},
		{"sha256:a", "", &runtime.LinuxContainerSecurityContext{SupplementalGroupsPolicy: runtime.SupplementalGroupsPolicy_Strict}, false},
	}
	seen := map[string]int{}
	for i, v := range variants {
		k := userLookupKey(v.chain, v.imageUser, v.sc, v.nonRoot)
		if j, dup := seen[k]; dup {
			t.Fatalf("variants %d and %d share the key %q", j, i, k)
		}
		seen[k] = i
	}
	if k := userLookupKey("", "", base(), false); k != "" {
		t.Fatalf("no chain ID: key %q, want none", k)
	}
}
