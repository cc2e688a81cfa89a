package legacy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/sandbox"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/moby/sys/mountinfo"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// The pause process only sleeps: it never writes to its rootfs, which is read-only in its spec. So
// the pause containers of all pods (without a user namespace of their own, whose rootfs must be
// idmapped) share one rootfs: a snapshot of the pause image prepared and mounted once, under a
// lease of its own, at <state dir>/pause-rootfs/<snapshotter>/<chain ID>. A sandbox then costs no
// snapshot prepare and remove (two committed writes of containerd's databases each), no overlay
// mount and unmount by the shim, and no garbage collection of its snapshot. It is writable
// underneath (each pause container sees it read-only): its file mount points are made here, once,
// not by the runc's of pause containers starting at once, which would race to make them; runc makes
// the directory ones, which tolerates that.

// pauseRootfsLease holds the shared pause rootfs snapshots. It has no expiry, so the recovery's
// removal of temporary leases leaves it.
const pauseRootfsLease = "cri-shim-pause-rootfs"

type pauseRootfsSet struct {
	mu   sync.Mutex
	dirs map[string]string // snapshotter/chainID -> mounted dir
}

// sharedPauseRootfs returns the mounted shared rootfs of the pause image with chainID on
// snapshotter, preparing and mounting it on first use (and after a reboot; a restarted daemon
// finds it mounted).
func (r *ContainerdRuntime) sharedPauseRootfs(ctx context.Context, snapshotter, chainID string) (string, error) {
	key := snapshotter + "/" + chainID
	r.pauseRootfs.mu.Lock()
	defer r.pauseRootfs.mu.Unlock()
	if dir, ok := r.pauseRootfs.dirs[key]; ok {
		return dir, nil
	}
	hex := chainID
	if i := strings.IndexByte(hex, ':'); i >= 0 {
		hex = hex[i+1:]
	}
	dir := filepath.Join(r.opts.StateDir, "pause-rootfs", snapshotter, hex)
	snapKey := "cri-shim-pause-rootfs-" + hex
	sn := r.client.SnapshotService(snapshotter)
	if mounted, err := mountinfo.Mounted(dir); err == nil && mounted {
		// Mounted by an earlier run of the daemon: used when containerd still has its snapshot
		// (not when containerd's data was wiped meanwhile).
		if _, err := sn.Stat(ctx, snapKey); err == nil {
			if err := makeFileMountPoints(dir, sandbox.FileMountPoints); err != nil {
				return "", err
			}
			r.rememberPauseRootfs(key, dir)
			return dir, nil
		}
		if err := mount.UnmountAll(dir, 0); err != nil {
			return "", fmt.Errorf("unmount a stale pause rootfs: %w", err)
		}
	}
	if _, err := r.client.LeasesService().Create(ctx, leases.WithID(pauseRootfsLease)); err != nil && !errdefs.IsAlreadyExists(err) {
		return "", fmt.Errorf("pause rootfs lease: %w", err)
	}
	lctx := leases.WithLease(ctx, pauseRootfsLease)
	mounts, err := sn.Prepare(lctx, snapKey, chainID)
	if errdefs.IsAlreadyExists(err) {
		mounts, err = sn.Mounts(lctx, snapKey)
	}
	if err != nil {
		return "", fmt.Errorf("pause rootfs snapshot: %w", err)
	}
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	if err := mount.All(mounts, dir); err != nil {
		return "", fmt.Errorf("mount the pause rootfs: %w", err)
	}
	if err := makeFileMountPoints(dir, sandbox.FileMountPoints); err != nil {
		return "", err
	}
	logrus.WithFields(logrus.Fields{"image": chainID, "dir": dir}).Info("shared pause rootfs mounted")
	r.rememberPauseRootfs(key, dir)
	return dir, nil
}

// makeFileMountPoints makes the empty files paths (and their parent directories) in the rootfs at
// root, where missing. The paths resolve inside root, symlinks included: an image cannot point
// them elsewhere.
func makeFileMountPoints(root string, paths []string) error {
	rootDir, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer rootDir.Close()
	for _, p := range paths {
		dir, err := pathrs.MkdirAllHandle(rootDir, filepath.Dir(p), 0o755)
		if err != nil {
			return fmt.Errorf("pause rootfs: mount point %s: %w", p, err)
		}
		fd, err := unix.Openat(int(dir.Fd()), filepath.Base(p), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		dir.Close()
		if err == nil {
			unix.Close(fd)
		} else if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("pause rootfs: mount point %s: %w", p, err)
		}
	}
	return nil
}

func (r *ContainerdRuntime) rememberPauseRootfs(key, dir string) {
	if r.pauseRootfs.dirs == nil {
		r.pauseRootfs.dirs = map[string]string{}
	}
	r.pauseRootfs.dirs[key] = dir
}
