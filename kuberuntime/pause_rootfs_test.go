package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
)

// The shared pause rootfs gets its file mount points made once, before any pause container: runc's
// of pause containers starting at once would race to make them (EEXIST fails one of them).
func TestMakeFileMountPoints(t *testing.T) {
	root := t.TempDir()
	paths := []string{"/etc/resolv.conf", "/a/b/c"}
	for range 2 { // again: what exists is left as it is
		if err := makeFileMountPoints(root, paths); err != nil {
			t.Fatal(err)
		}
		for _, p := range paths {
			st, err := os.Lstat(filepath.Join(root, p))
			if err != nil || !st.Mode().IsRegular() {
				t.Fatalf("%s: %v %v", p, st, err)
			}
		}
	}
	// An existing file is not truncated.
	if err := os.WriteFile(filepath.Join(root, "etc/resolv.conf"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := makeFileMountPoints(root, paths); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/resolv.conf")); string(b) != "x" {
		t.Fatalf("resolv.conf now %q", b)
	}
}

// An image whose /etc is a symlink out of the rootfs: the mount point is made inside the rootfs,
// never where the link points on the host.
func TestMakeFileMountPointsStaysInRoot(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	// the link's target, taken inside the rootfs, exists there too
	if err := os.MkdirAll(filepath.Join(root, outside), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := makeFileMountPoints(root, []string{"/etc/resolv.conf"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "resolv.conf")); err == nil {
		t.Fatal("mount point made outside the rootfs, through the symlink")
	}
	if _, err := os.Stat(filepath.Join(root, outside, "resolv.conf")); err != nil {
		t.Fatalf("mount point not made inside the rootfs: %v", err)
	}
}

// makeFileMountPoints leaves no descriptor open in the rootfs, not even one for the garbage
// collector to close: one would keep the mount busy, and the unmount of the shared rootfs at the
// daemon's stop would fail (EBUSY).
func TestMakeFileMountPointsLeavesNoFd(t *testing.T) {
	root := t.TempDir()
	inRoot := func() (n int) {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, root) {
				n++
			}
		}
		return n
	}
	for range 2 { // made, then found
		if err := makeFileMountPoints(root, []string{"/etc/resolv.conf", "/etc/hostname", "/a/b"}); err != nil {
			t.Fatal(err)
		}
		if n := inRoot(); n != 0 {
			t.Fatalf("%d descriptors left open in the rootfs", n)
		}
	}
}

// A closing runtime gives the shared pause rootfs to no new pod, and waits (bounded) for the pods
// given it to have made or undone their pause task before it looks for pause tasks using it.
func TestClosePauseRootfsWaitsForUsers(t *testing.T) {
	r := &ContainerdRuntime{}
	r.pauseRootfs.users = 1
	released := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(r.releasePauseRootfsUser) }
	if r.closePauseRootfs(10 * time.Millisecond) {
		t.Fatal("closed while a pod was being made on the rootfs")
	}
	go func() { defer close(released); release() }()
	if !r.closePauseRootfs(10 * time.Second) {
		t.Fatal("not closed after the last user released it")
	}
	<-released
	_, _, err := r.sharedPauseRootfs(context.Background(), "overlayfs", "sha256:0")
	if !errdefs.IsUnavailable(err) {
		t.Fatalf("shared pause rootfs after close: %v, want Unavailable", err)
	}
	if !r.closePauseRootfs(0) {
		t.Fatal("closing again with no user")
	}
}
