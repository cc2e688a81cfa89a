package kuberuntime

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
)

// quietLogs captures the standard logger's entries for the test instead of printing them.
func quietLogs(t *testing.T) *test.Hook {
	hook := test.NewLocal(logrus.StandardLogger())
	out := logrus.StandardLogger().Out
	logrus.SetOutput(io.Discard)
	t.Cleanup(func() { logrus.SetOutput(out); hook.Reset() })
	return hook
}

// The cgroup of a deleted task is removed from each hierarchy where it is, with the cgroups below
// it; one that cannot be removed is left with a warning; a systemd path, a relative or unclean
// path are left alone.
func TestRemoveCgroupLeftovers(t *testing.T) {
	hook := quietLogs(t)
	root := t.TempDir()
	old := cgroupRoot
	cgroupRoot = root
	defer func() { cgroupRoot = old }()
	for _, d := range []string{"memory/kp/id1", "cpu/kp/id1", "pids/kp/id1/nested", "memory/kp/id2", "blkio/kp/id1"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	// Not a cgroup (a regular file in it): its removal fails, and says so.
	os.WriteFile(filepath.Join(root, "blkio/kp/id1/file"), nil, 0o644)
	removeCgroupLeftovers("/kp/id1")
	for d, want := range map[string]bool{"memory/kp/id1": false, "cpu/kp/id1": false, "pids/kp/id1": false,
		"blkio/kp/id1": true, "memory/kp": true, "memory/kp/id2": true} {
		if _, err := os.Stat(filepath.Join(root, d)); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", d, err == nil, want)
		}
	}
	if e := hook.LastEntry(); e == nil || e.Level != logrus.WarnLevel || e.Data["cgroup"] != filepath.Join(root, "blkio/kp/id1") {
		t.Errorf("no warning for the cgroup left in place: %v", e)
	}
	for _, p := range []string{"kp/id2", "/kp/../kp/id2", "kp.slice:cri-shim:id2", "/", ""} {
		removeCgroupLeftovers(p)
	}
	if _, err := os.Stat(filepath.Join(root, "memory/kp/id2")); err != nil {
		t.Fatalf("removed through a path that is not absolute and clean: %v", err)
	}
}

// A process left in the cgroup of a deleted task (the `runc init` of a create whose shim
// containerd forgot) is killed and the cgroup removed, on the host's real cgroup file system.
func TestRemoveCgroupLeftoversKillsWhatRunsInIt(t *testing.T) {
	quietLogs(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: it makes a cgroup and moves a process into it")
	}
	hierarchy := "/sys/fs/cgroup/pids" // cgroup v1 (hybrid hosts)
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		hierarchy = "/sys/fs/cgroup" // cgroup v2 at the root
	}
	parent := fmt.Sprintf("/crishim-leftover-test-%d", os.Getpid())
	dir := filepath.Join(hierarchy, parent, "id1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Skipf("no writable cgroup hierarchy at %s: %v", hierarchy, err)
	}
	t.Cleanup(func() { os.Remove(dir); os.Remove(filepath.Join(hierarchy, parent)) })
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}

	removeCgroupLeftovers(parent + "/id1")
	select {
	case err := <-exited:
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the process in the cgroup ended with %v, want SIGKILL", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the process in the cgroup of a deleted task still runs")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the cgroup is still there: %v", err)
	}
}

// TestHoldsSocket: the process listening on a unix socket is found by the socket's path (how the
// shim of a pod without a pause process is found: its -id is its first container's).
func TestHoldsSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	socks := socketInodes(path)
	if len(socks) != 1 {
		t.Fatalf("socketInodes(%s) = %v, want one", path, socks)
	}
	if !holdsSocket(os.Getpid(), socks) {
		t.Errorf("this process listens on %s but holdsSocket says no", path)
	}
	if holdsSocket(os.Getppid(), socks) {
		t.Errorf("the parent process does not hold %s", path)
	}
	if s := socketInodes(path + "-none"); len(s) != 0 {
		t.Errorf("socketInodes of an unbound path = %v", s)
	}
}
