package kuberuntime

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// cgroupRoot is where the cgroup hierarchies are mounted (a variable for tests).
var cgroupRoot = "/sys/fs/cgroup"

// removeCgroupLeftovers removes the cgroup of a deleted task (its OCI cgroupsPath) from every
// hierarchy where it is still there. runc removes it when the task is deleted, except when its
// create was cut short: the daemon killed under a RunPodSandbox or StartContainer takes its managed
// containerd down, which cancels `runc create`, and containerd's clean-up of the dead shim then
// leaves the cgroups behind, empty, or holding the `runc init` of a create whose shim containerd
// forgot (both found by the kill -9 chaos test in test/reliability). The path is the deleted
// task's own (its parent and its ID), so whatever still runs in it is a leftover of that create:
// it is killed, and the cgroups are removed once empty, within cgroupLeftoverWait. A systemd scope
// ("slice:prefix:name") is found where runc's systemd driver made it; systemd stops an empty scope
// unit by itself, so its directory goes the same way.
func removeCgroupLeftovers(cgroupsPath string) {
	dir, ok := cgroupdriver.Dir(cgroupsPath)
	if !ok || !filepath.IsAbs(dir) || filepath.Clean(dir) != dir || dir == "/" {
		return
	}
	dirs := []string{filepath.Join(cgroupRoot, dir)} // cgroup v2 at the root
	if ents, err := os.ReadDir(cgroupRoot); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				dirs = append(dirs, filepath.Join(cgroupRoot, e.Name(), dir))
			}
		}
	}
	deadline := time.Now().Add(cgroupLeftoverWait)
	for {
		left := dirs[:0]
		for _, d := range dirs {
			err := removeCgroupTree(d)
			switch {
			case err == nil:
				logrus.WithField("cgroup", d).Debug("removed a cgroup left by an interrupted task create")
			case errors.Is(err, fs.ErrNotExist):
			case errors.Is(err, syscall.EBUSY):
				left = append(left, d) // its processes are still exiting
			default:
				logrus.WithError(err).WithField("cgroup", d).Warn("cgroup of a deleted task left in place")
			}
		}
		dirs = left
		if len(dirs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, d := range dirs {
				logrus.WithFields(logrus.Fields{"cgroup": d, "pids": cgroupProcs(d)}).Warn("cgroup of a deleted task still busy: left in place")
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cgroupLeftoverWait bounds how long removeCgroupLeftovers waits for killed processes to leave.
var cgroupLeftoverWait = 2 * time.Second

// removeCgroupTree kills the processes in cgroup dir and the cgroups below it (a container may
// have made some), and removes them, the deepest first; the error is dir's own removal's.
func removeCgroupTree(dir string) error {
	var tree []string
	filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err == nil && de.IsDir() {
			tree = append(tree, p)
		}
		return nil
	})
	for _, d := range tree {
		killCgroupProcs(d)
	}
	for i := len(tree) - 1; i > 0; i-- {
		os.Remove(tree[i])
	}
	return os.Remove(dir)
}

// killCgroupProcs SIGKILLs the processes in cgroup dir.
func killCgroupProcs(dir string) {
	for _, pid := range cgroupProcs(dir) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			logrus.WithFields(logrus.Fields{"cgroup": dir, "pid": pid}).Info("killed a process left in the cgroup of a deleted task")
		}
	}
}

// cgroupProcs are the pids in cgroup dir's cgroup.procs (none when it cannot be read).
func cgroupProcs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// specCgroupsPath is the cgroupsPath in a containerd container's OCI spec ("" when unknown).
func specCgroupsPath(ctx context.Context, c containerd.Container) string {
	s, err := c.Spec(ctx)
	if err != nil || s.Linux == nil {
		return ""
	}
	return s.Linux.CgroupsPath
}

// shimSocket is the socket of the shim of task (or group) id, named as containerd's
// shim.SocketAddress names it; "" when the daemon's containerd address is not known.
func (r *ContainerdRuntime) shimSocket(id string) string {
	cc, ok := r.client.Conn().(*grpc.ClientConn)
	if !ok {
		return ""
	}
	address := strings.TrimPrefix(cc.Target(), "unix://")
	sum := sha256.Sum256([]byte(filepath.Join(address, r.namespace, id)))
	return fmt.Sprintf("/run/containerd/s/%x", sum)
}

// killOrphanShim kills the runc shim of task id when it outlived its task. When containerd is
// stopped while it starts a shim (the daemon killed under a RunPodSandbox takes its managed
// containerd down), the shim process runs but its bundle lacks the address containerd needs to
// find it again: containerd removes the bundle and forgets the shim, which then waits forever
// (found by the kill -9 chaos test). It is called once the pod's pause container is deleted, when
// no task of the pod can be left in that shim; only a shim of this runtime's containerd, namespace
// and id matches.
func (r *ContainerdRuntime) killOrphanShim(id string) {
	cc, ok := r.client.Conn().(*grpc.ClientConn)
	if !ok {
		return
	}
	address := strings.TrimPrefix(cc.Target(), "unix://")
	// A live shim listens on its socket: no socket, no shim, and no need to look through /proc.
	sock := r.shimSocket(id)
	if _, err := os.Stat(sock); err != nil {
		return
	}
	killed := false
	defer func() {
		if killed {
			os.Remove(sock)
		}
	}()
	listeners := socketInodes(sock)
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte("containerd-shim")) {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) == 0 || !strings.HasPrefix(filepath.Base(args[0]), "containerd-shim") {
			continue
		}
		flags := map[string]string{}
		for i := 1; i+1 < len(args); i++ {
			if strings.HasPrefix(args[i], "-") {
				flags[strings.TrimLeft(args[i], "-")] = args[i+1]
			}
		}
		if flags["namespace"] != r.namespace || flags["address"] != address {
			continue
		}
		// A pod without a pause process has its shim started by its first container's task
		// (with that container's id), listening on the pod's socket all the same.
		if flags["id"] != id && !holdsSocket(pid, listeners) {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			killed = true
			logrus.WithFields(logrus.Fields{"sandbox": id, "pid": pid}).Info("killed a shim left by an interrupted task create")
		}
	}
}

// socketInodes are the fd link names ("socket:[inode]") of the unix sockets bound at path, from
// /proc/net/unix (the daemon's network namespace, which the shims share).
func socketInodes(path string) map[string]bool {
	b, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		// Num RefCount Protocol Flags Type St Inode Path
		f := strings.Fields(line)
		if len(f) == 8 && f[7] == path {
			out["socket:["+f[6]+"]"] = true
		}
	}
	return out
}

// holdsSocket tells whether process pid has one of the sockets open.
func holdsSocket(pid int, sockets map[string]bool) bool {
	if len(sockets) == 0 {
		return false
	}
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && sockets[l] {
			return true
		}
	}
	return false
}
