package legacy

import (
	"os"
	"path/filepath"
	"testing"
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
