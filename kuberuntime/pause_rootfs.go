package kuberuntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/exitmonitor"
	"github.com/cri-shim/cri-shim/sandbox"
	securejoin "github.com/cyphar/filepath-securejoin"
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
//
// The mount outlives the daemon while pods run (they run across daemon restarts, and the next
// start adopts it), and only then: a daemon that stops, or starts, with no pause process using it
// unmounts it (releaseUnusedPauseRootfs), leaving no mount of its own behind. The snapshot stays
// under its lease: the next mount reuses it.

// pauseRootfsLease holds the shared pause rootfs snapshots. It has no expiry, so the recovery's
// removal of temporary leases leaves it.
const pauseRootfsLease = "cri-shim-pause-rootfs"

type pauseRootfsSet struct {
	mu   sync.Mutex
	dirs map[string]string // snapshotter/chainID -> mounted dir
	// closed: the runtime is closing; no pod gets a shared rootfs any more.
	closed bool
	// users counts the RunPodSandbox calls that were given a dir and have not made their pause
	// task (or undone it) yet: a closing runtime waits for them before it looks for pause tasks.
	users int
	// idle is closed when users drops to 0 once closed (nil while no one waits).
	idle chan struct{}
}

// pauseRootfsBase is the dir of the shared pause rootfs mounts.
func (r *ContainerdRuntime) pauseRootfsBase() string {
	return filepath.Join(r.opts.StateDir, "pause-rootfs")
}

// sharedPauseRootfs returns the mounted shared rootfs of the pause image with chainID on
// snapshotter, preparing and mounting it on first use (and after a reboot; a restarted daemon
// finds it mounted), and the function to call once the caller's pause task is made or undone.
func (r *ContainerdRuntime) sharedPauseRootfs(ctx context.Context, snapshotter, chainID string) (string, func(), error) {
	r.pauseRootfs.mu.Lock()
	defer r.pauseRootfs.mu.Unlock()
	if r.pauseRootfs.closed {
		return "", nil, fmt.Errorf("the runtime is shutting down: %w", errdefs.ErrUnavailable)
	}
	dir, err := r.mountPauseRootfsLocked(ctx, snapshotter, chainID)
	if err != nil {
		return "", nil, err
	}
	r.pauseRootfs.users++
	var once sync.Once
	return dir, func() { once.Do(r.releasePauseRootfsUser) }, nil
}

func (r *ContainerdRuntime) releasePauseRootfsUser() {
	r.pauseRootfs.mu.Lock()
	defer r.pauseRootfs.mu.Unlock()
	r.pauseRootfs.users--
	if r.pauseRootfs.users == 0 && r.pauseRootfs.idle != nil {
		close(r.pauseRootfs.idle)
		r.pauseRootfs.idle = nil
	}
}

func (r *ContainerdRuntime) mountPauseRootfsLocked(ctx context.Context, snapshotter, chainID string) (string, error) {
	key := snapshotter + "/" + chainID
	if dir, ok := r.pauseRootfs.dirs[key]; ok {
		return dir, nil
	}
	hex := chainID
	if i := strings.IndexByte(hex, ':'); i >= 0 {
		hex = hex[i+1:]
	}
	dir := filepath.Join(r.pauseRootfsBase(), snapshotter, hex)
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
// them elsewhere. The parent is resolved lexically in root (securejoin.SecureJoin), which is
// enough here: what writes in the shared rootfs is this daemon, under pauseRootfs.mu, and the runc's
// of pause containers making mount-point directories; none makes symlinks, so no component can
// turn into one meanwhile. (pathrs-lite's MkdirAllHandle would resolve it by handles,
// but leaves a descriptor of the directory for the garbage collector to close, and an open
// descriptor keeps the mount busy: its unmount at the daemon's stop failed with EBUSY.)
func makeFileMountPoints(root string, paths []string) error {
	for _, p := range paths {
		dir, err := securejoin.SecureJoin(root, filepath.Dir(p))
		if err != nil {
			return fmt.Errorf("pause rootfs: mount point %s: %w", p, err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("pause rootfs: mount point %s: %w", p, err)
		}
		fd, err := unix.Open(filepath.Join(dir, filepath.Base(p)), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err == nil {
			unix.Close(fd)
		} else if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("pause rootfs: mount point %s: %w", p, err)
		}
	}
	return nil
}

// closePauseRootfs gives no shared rootfs to any pod from now on, and waits (up to wait) for the
// pods given one to have made or undone their pause task. false: some had not.
func (r *ContainerdRuntime) closePauseRootfs(wait time.Duration) bool {
	r.pauseRootfs.mu.Lock()
	r.pauseRootfs.closed = true
	if r.pauseRootfs.users == 0 {
		r.pauseRootfs.mu.Unlock()
		return true
	}
	if r.pauseRootfs.idle == nil {
		r.pauseRootfs.idle = make(chan struct{})
	}
	idle := r.pauseRootfs.idle
	r.pauseRootfs.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-time.After(wait):
		return false
	}
}

// releaseUnusedPauseRootfs unmounts the shared pause rootfs mounts, this run's and any an earlier
// run left, when no pause process uses them: at the runtime's close (a daemon stopping with no pod
// leaves no mount behind) and at its start (a daemon killed with no pod left its mount). While a
// pod's pause runs they stay, for the pod and for the next start, which adopts them; they stay too
// when that cannot be told (containerd unreachable).
func (r *ContainerdRuntime) releaseUnusedPauseRootfs(ctx context.Context) error {
	base := r.pauseRootfsBase()
	mounts, err := mountinfo.GetMounts(mountinfo.PrefixFilter(base))
	if err != nil {
		return fmt.Errorf("read the mount table: %w", err)
	}
	if len(mounts) == 0 {
		return nil
	}
	r.pauseRootfs.mu.Lock()
	defer r.pauseRootfs.mu.Unlock()
	if r.pauseRootfs.users > 0 {
		return nil // a pod is being made on it
	}
	inUse, err := r.pauseRootfsInUse(ctx, base)
	if err != nil {
		return fmt.Errorf("look for pause tasks on the shared pause rootfs: %w", err)
	}
	if inUse != "" {
		logrus.WithField("sandbox", inUse).Debug("shared pause rootfs in use: left mounted")
		return nil
	}
	// Deepest first; each mount point once (mount.UnmountAll takes the stacked mounts).
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].Mountpoint) > len(mounts[j].Mountpoint) })
	var errs []error
	seen := map[string]bool{}
	for _, m := range mounts {
		if seen[m.Mountpoint] {
			continue
		}
		seen[m.Mountpoint] = true
		if err := mount.UnmountAll(m.Mountpoint, 0); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m.Mountpoint, err))
			continue
		}
		_ = os.Remove(m.Mountpoint)
		logrus.WithField("dir", m.Mountpoint).Info("shared pause rootfs unmounted: no pod uses it")
	}
	r.pauseRootfs.dirs = nil
	return errors.Join(errs...)
}

// pauseRootfsDrainTimeout bounds the waits of Close for the shared pause rootfs.
const pauseRootfsDrainTimeout = 10 * time.Second

// releasePauseRootfsAtClose unmounts the unused shared pause rootfs as the runtime closes; with
// drained false (pods still being made on it) it stays.
func (r *ContainerdRuntime) releasePauseRootfsAtClose(drained bool) {
	if !drained {
		logrus.Warn("pods still being made at shutdown: the shared pause rootfs stays mounted")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), pauseRootfsDrainTimeout)
	defer cancel()
	if err := r.releaseUnusedPauseRootfs(ctx); err != nil {
		logrus.WithError(err).Warn("shutdown: unmount the shared pause rootfs")
	}
}

// releasePauseRootfsAtStart unmounts a shared pause rootfs that an earlier run left mounted (it
// was killed) and that no pod uses.
func (r *ContainerdRuntime) releasePauseRootfsAtStart(ctx context.Context) {
	if err := r.releaseUnusedPauseRootfs(ctx); err != nil {
		logrus.WithError(err).Warn("start: unmount an unused shared pause rootfs")
	}
}

// pauseRootfsInUse returns the ID of a pause container whose task is not stopped and whose rootfs
// is under base, or "" when there is none. A pause container whose rootfs cannot be told counts.
func (r *ContainerdRuntime) pauseRootfsInUse(ctx context.Context, base string) (string, error) {
	ctx = r.withNS(ctx)
	tasks, err := exitmonitor.NewContainerdSource(r.client, r.namespace).List(ctx)
	if err != nil {
		return "", err
	}
	cs, err := r.client.ContainerService().List(ctx, fmt.Sprintf(`labels.%q==%q`, LabelKind, KindSandbox))
	if err != nil {
		return "", fmt.Errorf("list pause containers: %w", err)
	}
	for _, c := range cs {
		if t, ok := tasks[c.ID]; !ok || t.Stopped {
			continue
		}
		var spec struct {
			Root *struct {
				Path string `json:"path"`
			} `json:"root"`
		}
		if c.Spec == nil || json.Unmarshal(c.Spec.GetValue(), &spec) != nil || spec.Root == nil {
			return c.ID, nil
		}
		if p := filepath.Clean(spec.Root.Path); p == base || strings.HasPrefix(p, base+string(filepath.Separator)) {
			return c.ID, nil
		}
	}
	return "", nil
}

func (r *ContainerdRuntime) rememberPauseRootfs(key, dir string) {
	if r.pauseRootfs.dirs == nil {
		r.pauseRootfs.dirs = map[string]string{}
	}
	r.pauseRootfs.dirs[key] = dir
}
