package kuberuntime

import (
	"os"
	"path/filepath"
	"testing"
)

// The cgroup of a deleted task is removed from each hierarchy where it is empty; a busy one
// (here: not empty), a systemd path, a relative or unclean path are left alone.
func TestRemoveCgroupLeftovers(t *testing.T) {
	root := t.TempDir()
	old := cgroupRoot
	cgroupRoot = root
	defer func() { cgroupRoot = old }()
	for _, d := range []string{"memory/kp/id1", "cpu/kp/id1", "pids/kp/id1/busy", "memory/kp/id2"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	removeCgroupLeftovers("/kp/id1")
	for d, want := range map[string]bool{"memory/kp/id1": false, "cpu/kp/id1": false, "pids/kp/id1": true, "memory/kp": true, "memory/kp/id2": true} {
		if _, err := os.Stat(filepath.Join(root, d)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", d, err == nil, want)
		}
	}
	for _, p := range []string{"kp/id2", "/kp/../kp/id2", "kp.slice:cri-shim:id2", "/", ""} {
		removeCgroupLeftovers(p)
	}
	if _, err := os.Stat(filepath.Join(root, "memory/kp/id2")); err != nil {
		t.Fatalf("removed through a path that is not absolute and clean: %v", err)
	}
}
