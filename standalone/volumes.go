package standalone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// The kubelet's volume ownership (pkg/volume SetVolumeOwnership) for a pod with an fsGroup: every
// file of the volume is group-owned by the fsGroup and group read-write, every dir also group
// searchable and setgid (what is made in it inherits the group).
const (
	fsGroupRW      = 0o660
	fsGroupDirBits = unix.S_ISGID | 0o110
	// maxOwnershipDepth bounds the dirs held open by the walk (one fd per level): a container
	// cannot make the daemon run out of fds with a deep tree; deeper entries are left as they are.
	maxOwnershipDepth = 256
)

// makeEmptyDirs makes the pod's emptyDirs: 0777 as the kubelet makes them, so that containers of
// any user can write them, under dirs only root can traverse (<volume root>/<uid>/volumes, the
// volume root 0700): no other local user can reach them to plant links or files.
//
// With an fsGroup, each is given to it as the kubelet does: on creation, when the fsGroup
// changes, and (policy Always, the default) once per worker, i.e. at each daemon start, as the
// kubelet at each volume setup; with OnRootMismatch only when the volume's own dir does not match.
// applied records what each dir was given (nil: nothing is recorded, every call applies).
func makeEmptyDirs(dirs []string, fsGroup *int64, policy corev1.PodFSGroupChangePolicy, applied map[string]int64) {
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Dir(d), 0o700); err != nil {
			logrus.WithError(err).Warn("standalone pod emptyDir")
			continue
		}
		if err := os.Mkdir(d, 0o777); err == nil {
			os.Chmod(d, 0o777) // past the umask
		} else if !os.IsExist(err) {
			logrus.WithError(err).Warn("standalone pod emptyDir")
			continue
		}
		if fsGroup == nil {
			continue
		}
		gid := *fsGroup
		if g, ok := applied[d]; ok && g == gid {
			continue
		}
		if policy == corev1.FSGroupChangeOnRootMismatch && ownedBy(d, gid) {
			if applied != nil {
				applied[d] = gid
			}
			continue
		}
		if err := setVolumeOwnership(d, int(gid)); err != nil {
			logrus.WithError(err).WithField("dir", d).Warn("standalone pod emptyDir: fsGroup ownership")
			continue
		}
		if applied != nil {
			applied[d] = gid
		}
	}
}

// ownedBy tells whether the volume's dir has the fsGroup's ownership already (the kubelet's
// OnRootMismatch check).
func ownedBy(dir string, gid int64) bool {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return false
	}
	return int64(st.Gid) == gid && st.Mode&fsGroupDirBits == fsGroupDirBits && st.Mode&fsGroupRW == fsGroupRW
}

// setVolumeOwnership gives the tree at dir to gid. The tree is written by containers: every entry
// is opened without following links (O_NOFOLLOW, relative to its parent's fd), changed through
// that fd, and a link is only re-grouped itself (as the kubelet's Lchown, never chmod through it),
// so a link or a swapped entry never makes the walk change a file outside the volume.
func setVolumeOwnership(dir string, gid int) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := ownFd(fd, gid); err != nil {
		return err
	}
	return ownChildren(fd, gid, 1)
}

// ownFd gives the opened file to gid: group, then the group's read-write bits (and setgid and
// search for a dir), keeping its other bits.
func ownFd(fd, gid int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if err := unix.Fchownat(fd, "", -1, gid, unix.AT_EMPTY_PATH); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	mode := st.Mode&0o7777 | fsGroupRW
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		mode |= fsGroupDirBits
	}
	// The fd may be O_PATH (fchmod refuses those): chmod through its /proc/self/fd link, which
	// names the opened inode itself, not a path a container could swap.
	return unix.Chmod(fmt.Sprintf("/proc/self/fd/%d", fd), mode)
}

// ownChildren gives the entries of the opened dir to gid, depth-first.
func ownChildren(dirFd, gid, depth int) error {
	// Read through a dup: closing the os.File closes only that.
	dup, err := unix.Dup(dirFd)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(dup), "volume dir")
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		// O_PATH opens anything (a FIFO or a device without opening it); O_NOFOLLOW gives the
		// link itself.
		fd, err := unix.Openat(dirFd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue // removed meanwhile
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = ownFd(fd, gid)
		var st unix.Stat_t
		if err == nil {
			err = unix.Fstat(fd, &st)
		}
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if depth >= maxOwnershipDepth {
				err = fmt.Errorf("%s: deeper than %d dirs: left as it is", name, maxOwnershipDepth)
			} else {
				// Readable through the O_PATH fd's magic link: the same dir, not the name again.
				var sub int
				sub, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err == nil {
					err = ownChildren(sub, gid, depth+1)
					unix.Close(sub)
				}
			}
		}
		unix.Close(fd)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
