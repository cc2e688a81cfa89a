package standalone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cri-shim/cri-shim/legacy"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/mountinfo"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// A volumeMount with a subPath cannot be given to the runtime as <volume>/<subPath>: a container
// that can write the volume replaces that path with a symlink (to /, say), and the runtime,
// which trusts its host paths, follows it on the host at the next start and bind-mounts what it
// points to (CVE-2017-1002101's pattern). As the kubelet does, the manager resolves the subPath
// itself, inside the volume (pathrs-lite: openat2 RESOLVE_IN_ROOT, or a checked O_NOFOLLOW
// walk), before each start of the container, bind-mounts the opened handle (/proc/self/fd/N) at
// a path of its own under the root-only volume root (<volume root>/<uid>/volume-subpaths/
// <volume>/<container>/<index>, as the kubelet's volume-subpaths), and gives the runtime that
// path. The mounts go with the pod (removeVolumes).

// subPathDir is the dir of a pod's subPath mounts under its volume dir.
const subPathDir = "volume-subpaths"

// SubPath is a volumeMount with a subPath.
type SubPath struct {
	// Volume is the volume's host path (an emptyDir's dir, a hostPath's path), trusted.
	Volume string
	// Path is the subPath, relative; it is resolved inside Volume.
	Path string
	// Target is where the manager mounts it; the container's mount names it.
	Target string
}

// prepareSubPath resolves sp.Path inside sp.Volume (creating it as a directory with the volume's
// mode when missing, as the kubelet does) and bind-mounts it at sp.Target, replacing what an
// earlier start mounted there.
func prepareSubPath(sp SubPath) error {
	root, err := os.OpenFile(sp.Volume, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("volume: %w", err)
	}
	defer root.Close()
	h, err := pathrs.OpenatInRoot(root, sp.Path)
	if errors.Is(err, os.ErrNotExist) {
		h, err = mkdirInVolume(root, sp.Path)
	}
	if err != nil {
		return err
	}
	defer h.Close()
	var src unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &src); err != nil {
		return err
	}
	if err := unmountAll(sp.Target); err != nil {
		return err
	}
	// The target's dirs are made by the manager under the root-only volume root: no one else
	// can put links there.
	if err := os.MkdirAll(filepath.Dir(sp.Target), 0o700); err != nil {
		return err
	}
	isDir := src.Mode&unix.S_IFMT == unix.S_IFDIR
	if err := makeMountPoint(sp.Target, isDir); err != nil {
		return err
	}
	if err := unix.Mount(fmt.Sprintf("/proc/self/fd/%d", h.Fd()), sp.Target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount at %s: %w", sp.Target, err)
	}
	// What is mounted is what was opened.
	var dst unix.Stat_t
	if err := unix.Lstat(sp.Target, &dst); err != nil || dst.Dev != src.Dev || dst.Ino != src.Ino {
		unmountAll(sp.Target)
		return fmt.Errorf("bind mount at %s: not the resolved subPath (%v)", sp.Target, err)
	}
	return nil
}

// mkdirInVolume makes the missing dirs of path inside root with root's mode (past the umask, as
// the kubelet does: an emptyDir's subPath dirs are 0777 like it) and returns an O_PATH handle of
// the last. A link on the way resolves inside root; a dangling one is an error.
func mkdirInVolume(root *os.File, path string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(root.Fd()), &st); err != nil {
		return nil, fmt.Errorf("volume: %w", err)
	}
	mode := os.FileMode(st.Mode & 0o777)
	var h *os.File
	prefix := ""
	for _, e := range strings.Split(filepath.Clean(path), "/") {
		prefix = filepath.Join(prefix, e)
		if h != nil {
			h.Close()
		}
		var err error
		if h, err = pathrs.OpenatInRoot(root, prefix); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if h, err = pathrs.MkdirAllHandle(root, prefix, mode); err != nil {
			return nil, err
		}
		d, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_DIRECTORY)
		if err != nil {
			h.Close()
			return nil, err
		}
		err = d.Chmod(mode)
		d.Close()
		if err != nil {
			h.Close()
			return nil, err
		}
	}
	return h, nil
}

// makeMountPoint makes target an empty dir or file, replacing one of the other type.
func makeMountPoint(target string, dir bool) error {
	var st unix.Stat_t
	if err := unix.Lstat(target, &st); err == nil {
		if (st.Mode&unix.S_IFMT == unix.S_IFDIR) == dir && st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return nil
		}
		if err := os.RemoveAll(target); err != nil {
			return err
		}
	}
	if dir {
		return os.Mkdir(target, 0o700)
	}
	fd, err := unix.Open(target, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// unmountAll unmounts what is mounted at target (mounts may stack); none is fine.
func unmountAll(target string) error {
	for range 100 {
		err := unix.Unmount(target, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW)
		switch {
		case err == nil:
			continue
		case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil // not a mount point (any more)
		default:
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
	return fmt.Errorf("unmount %s: still mounted after 100 unmounts", target)
}

// removeVolumes removes a pod's dir under the volume root: it unmounts the subPath mounts under
// it first and removes nothing while anything stays mounted there (a recursive removal would
// descend into the mounted volume and delete its files).
func removeVolumes(dir string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return err
	}
	// Deepest first.
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	for _, m := range mounts {
		if err := unmountAll(m.Mountpoint); err != nil {
			return err
		}
	}
	if left, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir)); err != nil || len(left) > 0 {
		return fmt.Errorf("%s: still mounted under it (%d, %v): not removed", dir, len(left), err)
	}
	return os.RemoveAll(dir)
}

// prepareSubPaths mounts the subPaths of the pod's container (by the config's name). A mount
// whose host path is under the pod's subPath dir of the volume root must be one of them.
func (m *Manager) prepareSubPaths(pod *Pod, uid legacy.UID, config *runtime.ContainerConfig) error {
	name := config.GetMetadata().GetName()
	var subs []SubPath
	if pod != nil {
		subs = pod.SubPaths[name]
	}
	byTarget := map[string]SubPath{}
	for _, sp := range subs {
		byTarget[sp.Target] = sp
	}
	if m.opts.VolumeRoot == "" || uid == "" {
		return nil
	}
	prefix := filepath.Join(m.opts.VolumeRoot, string(uid), subPathDir) + "/"
	for _, mnt := range config.GetMounts() {
		hp := mnt.GetHostPath()
		if !strings.HasPrefix(hp, prefix) {
			continue
		}
		sp, ok := byTarget[hp]
		if !ok {
			return fmt.Errorf("container %s: mount %s: no subPath of the pod's manifest mounts at %s", name, mnt.GetContainerPath(), hp)
		}
		if err := prepareSubPath(sp); err != nil {
			return fmt.Errorf("container %s: subPath %q of volume %s: %w", name, sp.Path, sp.Volume, err)
		}
		logrus.WithFields(logrus.Fields{"pod": pod.Key(), "container": name, "subPath": sp.Path, "target": sp.Target}).Debug("subPath mounted")
	}
	return nil
}

// ensurePrivateDir makes dir (and its missing parents) 0700 and refuses a symlink or a dir of
// another owner: the pods' volumes under it are reachable by root only (an emptyDir itself is
// 0777, as the kubelet makes it, for containers of any user; no local user may plant links in it).
func ensurePrivateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d, not %d", dir, st.Uid, os.Geteuid())
	}
	if st.Mode&0o7777 != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}
