package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/moby/sys/mountinfo"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	crierrors "k8s.io/cri-api/pkg/errors"
)

// Image volumes: a CRI mount whose image field names a local image gets that image's file system,
// read-only. Each one is a read-only snapshot view of the image's unpacked layers, held by a lease
// of its container, mounted under the container's root dir (image-volumes/<n>) and bind-mounted
// into the container from there (or from its image_sub_path inside it). The container's metadata
// records them; RemoveContainer, a failed CreateContainer and the start-up recovery unmount them
// and drop the snapshot and the lease.

// imageVolumeRecord is one image volume of a container, kept in its metadata.
type imageVolumeRecord struct {
	// ContainerPath is the mount's container_path, as the config has it.
	ContainerPath string `json:"container_path"`
	// ImageID is the mounted image's ID (what PullImage returned for it).
	ImageID     string `json:"image_id"`
	Snapshotter string `json:"snapshotter"`
	Key         string `json:"key"`
	// Target is where the view is mounted on the host.
	Target string `json:"target"`
}

const (
	imageVolumesDir        = "image-volumes"
	imageVolumeLeasePrefix = "cri-shim-image-volumes-"
	labelImageVolumesOf    = "cri-shim.io/image-volumes-of"
)

func imageVolumeLeaseID(containerID string) string { return imageVolumeLeasePrefix + containerID }

// hasImageVolumes tells whether a config mounts an image.
func hasImageVolumes(config *runtime.ContainerConfig) bool {
	for _, m := range config.GetMounts() {
		if m.GetImage().GetImage() != "" {
			return true
		}
	}
	return false
}

// mountImageVolumes mounts the config's image volumes of container id under rootDir. It returns
// the config to build the spec from (its image mounts turned into read-only host path mounts) and
// the records; on error nothing stays mounted, but the caller must still call
// unmountImageVolumes(id, ...) to drop what the lease holds.
func (r *ContainerdRuntime) mountImageVolumes(ctx context.Context, id, rootDir, snapshotter string, config *runtime.ContainerConfig) (*runtime.ContainerConfig, []imageVolumeRecord, error) {
	if !hasImageVolumes(config) {
		return config, nil, nil
	}
	ls := r.client.LeasesService()
	lease, err := ls.Create(ctx, leases.WithID(imageVolumeLeaseID(id)), leases.WithLabels(map[string]string{labelImageVolumesOf: id}))
	if err != nil && !errdefs.IsAlreadyExists(err) {
		return nil, nil, fmt.Errorf("image volume lease: %w", err)
	}
	if err == nil {
		ctx = leases.WithLease(ctx, lease.ID)
	} else {
		ctx = leases.WithLease(ctx, imageVolumeLeaseID(id))
	}
	out := proto.Clone(config).(*runtime.ContainerConfig)
	var recs []imageVolumeRecord
	fail := func(err error) (*runtime.ContainerConfig, []imageVolumeRecord, error) {
		for _, rec := range recs {
			_ = unmountImageVolume(rec.Target)
		}
		return nil, nil, err
	}
	for i, m := range out.GetMounts() {
		if m.GetImage().GetImage() == "" {
			continue
		}
		if err := legacy.ValidateImageMount(m); err != nil {
			return fail(err)
		}
		dst := m.GetContainerPath()
		ref := m.GetImage().GetImage()
		img, err := r.localImage(ctx, ref)
		if err != nil {
			// Not pulled: NotFound, as for the container's own image.
			return fail(fmt.Errorf("%w: mount %s: %w", crierrors.ErrImageVolumeMountFailed, dst, err))
		}
		if err := r.ensureUnpacked(ctx, img, snapshotter); err != nil {
			return fail(fmt.Errorf("%w: mount %s: %w", crierrors.ErrImageVolumeMountFailed, dst, err))
		}
		rec := imageVolumeRecord{
			ContainerPath: dst, ImageID: img.ID, Snapshotter: snapshotter,
			Key:    "cri-shim-image-volume/" + id + "/" + strconv.Itoa(i),
			Target: filepath.Join(rootDir, imageVolumesDir, strconv.Itoa(i)),
		}
		if err := r.mountImageView(ctx, rec, img.ChainID); err != nil {
			return fail(fmt.Errorf("%w: mount %s of image %s: %w", crierrors.ErrImageVolumeMountFailed, dst, ref, err))
		}
		recs = append(recs, rec)
		logrus.WithFields(logrus.Fields{"container": id, "image": img.ID, "path": dst}).Debug("image volume mounted")
		src := rec.Target
		if sub := m.GetImageSubPath(); sub != "" {
			p, err := resolveImageSubPath(rec.Target, sub)
			if err != nil {
				return fail(fmt.Errorf("%w: mount %s of image %s: %w", crierrors.ErrImageVolumeMountFailed, dst, ref, err))
			}
			src = p
		}
		out.Mounts[i] = &runtime.Mount{
			ContainerPath: dst, HostPath: src, Readonly: true, Propagation: m.GetPropagation(),
			UidMappings: m.GetUidMappings(), GidMappings: m.GetGidMappings(),
		}
	}
	return out, recs, nil
}

// resolveImageSubPath is sub inside the image mounted at root: a relative path without "..", whose
// symlinks resolve inside root (an absolute link target or one that climbs out means root's own
// file system, never the host's), and that exists.
func resolveImageSubPath(root, sub string) (string, error) {
	if !filepath.IsLocal(sub) {
		return "", fmt.Errorf("image_sub_path %q must be a relative path inside the image: %w", sub, errdefs.ErrInvalidArgument)
	}
	p, err := securejoin.SecureJoin(root, sub)
	if err != nil {
		return "", fmt.Errorf("image_sub_path %q: %v: %w", sub, err, errdefs.ErrInvalidArgument)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("image_sub_path %q does not exist in the image: %w", sub, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// mountImageView mounts a read-only view of chainID at rec.Target (again if it exists already).
func (r *ContainerdRuntime) mountImageView(ctx context.Context, rec imageVolumeRecord, chainID string) error {
	sn := r.client.SnapshotService(rec.Snapshotter)
	mounts, err := sn.View(ctx, rec.Key, chainID)
	if errdefs.IsAlreadyExists(err) {
		mounts, err = sn.Mounts(ctx, rec.Key)
	}
	if err != nil {
		return fmt.Errorf("snapshot view: %w", err)
	}
	return mountAtTarget(mounts, rec.Target)
}

func mountAtTarget(mounts []mount.Mount, target string) error {
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	if ok, _ := mountinfo.Mounted(target); ok {
		return nil
	}
	// A view is read-only already; ro on the top mount makes it so whatever the snapshotter.
	for i := range mounts {
		if !hasOption(mounts[i].Options, "ro") {
			mounts[i].Options = append(mounts[i].Options, "ro")
		}
	}
	if err := mount.All(mounts, target); err != nil {
		_ = mount.UnmountAll(target, 0)
		return fmt.Errorf("mount at %s: %w", target, err)
	}
	return nil
}

func hasOption(opts []string, o string) bool {
	for _, v := range opts {
		if v == o {
			return true
		}
	}
	return false
}

func unmountImageVolume(target string) error {
	if err := mount.UnmountAll(target, 0); err != nil {
		return fmt.Errorf("unmount image volume %s: %w", target, err)
	}
	if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// unmountImageVolumes unmounts every image volume under rootDir (whether recorded or not) and
// drops the snapshots and the lease of container id. It is safe to call when there are none.
func (r *ContainerdRuntime) unmountImageVolumes(ctx context.Context, id, rootDir string, recs []imageVolumeRecord) error {
	var errs []error
	base := filepath.Join(rootDir, imageVolumesDir)
	if entries, err := os.ReadDir(base); err == nil {
		for _, e := range entries {
			if err := unmountImageVolume(filepath.Join(base, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		// Keep the snapshots while something may still be mounted from them.
		return errors.Join(errs...)
	}
	_ = os.Remove(base)
	for _, rec := range recs {
		if err := r.client.SnapshotService(rec.Snapshotter).Remove(ctx, rec.Key); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("remove image volume snapshot %s: %w", rec.Key, err))
		}
	}
	// The lease holds what is left (views a crash left unrecorded): deleting it lets containerd's
	// garbage collector remove them.
	err := r.client.LeasesService().Delete(ctx, leases.Lease{ID: imageVolumeLeaseID(id)}, leases.SynchronousDelete)
	if err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete image volume lease: %w", err))
	}
	return errors.Join(errs...)
}

// recoverImageVolumes runs at start-up, before the root dirs of unknown containers are removed:
// the image volumes of known containers are mounted again where they are not (a reboot, or a
// daemon in a new mount namespace), and those of unknown containers (a crash during
// CreateContainer) are unmounted and their leases dropped.
func (r *ContainerdRuntime) recoverImageVolumes(ctx context.Context, known map[string]*podContainer) {
	for id, c := range known {
		if c.snapshot().state == legacy.ContainerStateExited {
			continue
		}
		for _, rec := range c.meta.ImageVolumes {
			if ok, _ := mountinfo.Mounted(rec.Target); ok {
				continue
			}
			mounts, err := r.client.SnapshotService(rec.Snapshotter).Mounts(ctx, rec.Key)
			if err == nil {
				err = mountAtTarget(mounts, rec.Target)
			}
			if err != nil {
				logrus.WithError(err).WithFields(logrus.Fields{"container": id, "image": rec.ImageID}).Warn("recover image volume")
			}
		}
	}
	if entries, err := os.ReadDir(r.containersRoot()); err == nil {
		for _, e := range entries {
			if _, ok := known[e.Name()]; ok {
				continue
			}
			if err := r.unmountImageVolumes(ctx, e.Name(), filepath.Join(r.containersRoot(), e.Name()), nil); err != nil {
				logrus.WithError(err).WithField("container", e.Name()).Warn("clean image volumes of an unknown container")
			}
		}
	}
	// Leases whose container is gone altogether.
	ls, err := r.client.LeasesService().List(ctx, fmt.Sprintf(`labels.%q`, labelImageVolumesOf))
	if err != nil {
		return
	}
	for _, l := range ls {
		id := l.Labels[labelImageVolumesOf]
		if _, ok := known[id]; ok || !strings.HasPrefix(l.ID, imageVolumeLeasePrefix) {
			continue
		}
		if err := r.client.LeasesService().Delete(ctx, l, leases.SynchronousDelete); err != nil && !errdefs.IsNotFound(err) {
			logrus.WithError(err).WithField("container", id).Warn("delete image volume lease")
		}
	}
}

// statusMounts are the config's mounts as ContainerStatus reports them: an image volume names the
// image's ID in image.image_ref.
func statusMounts(mounts []*runtime.Mount, recs []imageVolumeRecord) []*runtime.Mount {
	if len(recs) == 0 {
		return mounts
	}
	out := make([]*runtime.Mount, len(mounts))
	for i, m := range mounts {
		out[i] = m
		if m.GetImage().GetImage() == "" {
			continue
		}
		for _, rec := range recs {
			if rec.ContainerPath == m.GetContainerPath() {
				cp := proto.Clone(m).(*runtime.Mount)
				cp.Image.ImageRef = rec.ImageID
				out[i] = cp
				break
			}
		}
	}
	return out
}
