package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/checkpointarchive"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/crilog"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CreateContainer creates a container in the ready sandbox sandboxID: its spec from the config,
// the image and the sandbox; a snapshot of the image; a containerd container holding the metadata
// that rebuilds it after a restart.
func (r *ContainerdRuntime) CreateContainer(ctx context.Context, sandboxID string, config *runtime.ContainerConfig) (string, error) {
	if err := legacy.ValidateContainerConfig(config); err != nil {
		return "", err
	}
	// A checkpoint archive as the image: a container restored from it (checkpoint_restore.go).
	var restore *checkpointarchive.Source
	if ref := config.GetImage().GetImage(); checkpointarchive.IsArchive(ref) {
		var err error
		if config, restore, err = r.prepareRestore(ctx, ref, config); err != nil {
			return "", err
		}
	}
	return r.createContainer(ctx, sandboxID, config, restore)
}

// createContainer creates the container; restore, when set, is the checkpoint StartContainer
// restores it from.
func (r *ContainerdRuntime) createContainer(ctx context.Context, sandboxID string, config *runtime.ContainerConfig, restore *checkpointarchive.Source) (_ string, retErr error) {
	c := &containerCreation{r: r, st: r.ctrs(), config: config, restore: restore}
	c.times.start = time.Now()
	ctx = r.withNS(ctx)
	if err := c.reserve(sandboxID); err != nil {
		return "", err
	}
	defer func() {
		if retErr != nil {
			c.takeBack(ctx)
		}
	}()
	for _, step := range []func(context.Context) error{
		c.resolveCDI,
		c.ensureImage,
		c.makeDirs,
		c.mountImageVolumes,
		c.resolveTargetPid,
		c.buildSpecOpts,
		c.makeMetadata,
	} {
		if err := step(ctx); err != nil {
			return "", err
		}
	}
	// NRI plugins adjust the spec; no plugin synchronizes until the container is stored.
	c.nri = r.nriCreateContainer(c.sb, c.id, c.config)
	c.undo = append(c.undo, c.nri.undo)
	defer c.nri.done()
	for _, step := range []func(context.Context) error{
		c.createRecord,
		c.checkRestoreImages,
		c.finishFiles,
	} {
		if err := step(ctx); err != nil {
			return "", err
		}
	}
	c.store(ctx)
	return c.id, nil
}

// containerCreation is one createContainer call: the container, what its steps made so far, and
// the undo of that.
type containerCreation struct {
	r       *ContainerdRuntime
	st      *containerState
	config  *runtime.ContainerConfig
	restore *checkpointarchive.Source

	sb       *podSandbox
	sbPid    uint32 // the sandbox's pause process
	id, name string
	log      *logrus.Entry
	// undo collects the steps to take back, last first, when the creation fails.
	undo []func(context.Context)

	// Of ensureImage.
	handler     legacy.RuntimeHandler
	snapshotter string
	img         *containerImage
	// Of makeDirs.
	rootDir, stateDir string
	// Of mountImageVolumes.
	volumes      []*runtime.Mount
	specConfig   *runtime.ContainerConfig
	imageVolumes []imageVolumeRecord
	// Of resolveTargetPid.
	targetPid uint32
	// Of resolveCDI: the injection of the CDI devices asked for.
	cdiOpts []oci.SpecOpts
	// Of buildSpecOpts.
	specOpts []oci.SpecOpts
	// Of makeMetadata.
	meta   containerMetadata
	labels map[string]string
	// Of createRecord.
	nri    *nriCreation
	spec   *runtimespec.Spec
	spec0  []byte
	cntr   containerd.Container // nil when made record first (fast_create.go)
	rootfs []mount.Mount

	times containerTimes
}

// containerTimes are the durations of createContainer's steps, logged when the container is created.
type containerTimes struct {
	start                  time.Time
	image, new, snap, spec time.Duration
}

// reserve finds the sandbox, ready, and reserves the container's name in it.
func (c *containerCreation) reserve(sandboxID string) error {
	sb, err := c.r.sandboxes.get(sandboxID)
	if err != nil {
		return err
	}
	sbStatus := sb.status()
	if sbStatus.State != legacy.SandboxStateReady || sbStatus.Pid == 0 && !sb.meta.PauseLess {
		return fmt.Errorf("sandbox %s is not ready: %w", sb.meta.ID, errdefs.ErrFailedPrecondition)
	}
	md := c.config.GetMetadata()
	c.sb, c.sbPid = sb, sbStatus.Pid
	c.id = newID()
	c.name = containerNameKey(sb.meta.ID, md)
	if err := c.st.store.reserve(c.name, c.id); err != nil {
		return err
	}
	c.log = logrus.WithFields(logrus.Fields{"container": c.id, "sandbox": sb.meta.ID, "name": md.GetName()})
	return nil
}

// takeBack undoes, last first, what the steps made, even when ctx is cancelled; the container's
// name is then free again.
func (c *containerCreation) takeBack(ctx context.Context) {
	cctx, cancel := withoutCancel(ctx, cleanupTimeout)
	defer cancel()
	for i := len(c.undo) - 1; i >= 0; i-- {
		c.undo[i](cctx)
	}
	c.st.store.release(c.name, c.id)
}

// ensureImage finds the image in the image index and unpacks it for the sandbox's snapshotter.
func (c *containerCreation) ensureImage(ctx context.Context) error {
	handler, ok := c.r.handlers[c.sb.meta.RuntimeHandler]
	if !ok {
		handler = c.r.handlers[""]
	}
	c.handler, c.snapshotter = handler, snapshotterOr(handler.Snapshotter)
	img, err := c.r.localImage(ctx, c.config.GetImage().GetImage())
	if err != nil {
		return err
	}
	c.img = img
	if err := c.r.ensureUnpacked(ctx, img, c.snapshotter); err != nil {
		return err
	}
	c.times.image = time.Since(c.times.start)
	return nil
}

// makeDirs makes the container's root and state dirs, and installs the checkpoint it is restored
// from in its root dir.
func (c *containerCreation) makeDirs(ctx context.Context) error {
	c.rootDir = filepath.Join(c.r.containersRoot(), c.id)
	c.stateDir = filepath.Join(c.r.containersState(), c.id)
	rootDir, stateDir := c.rootDir, c.stateDir
	for _, d := range []string{rootDir, stateDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	c.undo = append(c.undo, func(context.Context) {
		os.RemoveAll(rootDir)
		os.RemoveAll(stateDir)
	})
	if c.restore != nil {
		return c.restore.Install(ctx, filepath.Join(rootDir, restoreDir), c.r.opts.MaxCheckpointSize)
	}
	return nil
}

// mountImageVolumes mounts the image's and the config's image volumes (image_volume.go).
func (c *containerCreation) mountImageVolumes(ctx context.Context) (err error) {
	c.volumes, err = containerspec.ImageVolumeMounts(c.rootDir, c.config, &c.img.Config)
	if err != nil {
		return err
	}
	c.undo = append(c.undo, func(cctx context.Context) {
		if err := c.r.unmountImageVolumes(cctx, c.id, c.rootDir, nil); err != nil {
			c.log.WithError(err).Warn("undo: image volumes")
		}
	})
	c.specConfig, c.imageVolumes, err = c.r.mountImageVolumes(ctx, c.id, c.rootDir, c.snapshotter, c.config)
	return err
}

// resolveTargetPid finds the pid namespace's target: another running container of the same sandbox.
func (c *containerCreation) resolveTargetPid(context.Context) error {
	nsOpts := c.config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if nsOpts.GetPid() != runtime.NamespaceMode_TARGET {
		return nil
	}
	target, err := c.st.store.get(nsOpts.GetTargetId())
	if err != nil {
		return fmt.Errorf("target container of the pid namespace: %w", err)
	}
	if target.meta.SandboxID != c.sb.meta.ID {
		return fmt.Errorf("target container %s is not in sandbox %s: %w", target.meta.ID, c.sb.meta.ID, errdefs.ErrInvalidArgument)
	}
	snap := target.snapshot()
	state, pid := snap.state, snap.pid
	if state != legacy.ContainerStateRunning {
		return fmt.Errorf("target container %s is not running: %w", target.meta.ID, errdefs.ErrFailedPrecondition)
	}
	c.targetPid = pid
	return nil
}

// resolveCDI checks the CDI devices the config asks for, before anything of the container is
// made.
func (c *containerCreation) resolveCDI(context.Context) (err error) {
	if c.cdiOpts, err = c.r.cdiSpecOpts(c.config, c.log); err != nil {
		return fmt.Errorf("%w: %w", legacy.ErrCreateContainerConfig, err)
	}
	return nil
}

// buildSpecOpts makes the options of the container's spec from the config, the image and the
// sandbox.
func (c *containerCreation) buildSpecOpts(context.Context) (err error) {
	sb := c.sb
	// The sandbox may come from a run of the daemon with the other driver.
	if err := c.r.opts.CgroupDriver.CheckParent(sb.config.GetLinux().GetCgroupParent()); err != nil {
		return fmt.Errorf("sandbox %s: %w", sb.meta.ID, err)
	}
	imageName := c.config.GetImage().GetUserSpecifiedImage()
	if imageName == "" {
		imageName = c.img.Name
	}
	c.specOpts, err = containerspec.Opts(containerspec.Input{
		ID: c.id, Config: c.specConfig, SandboxID: sb.meta.ID, SandboxConfig: sb.config, SandboxPid: c.sbPid, PodNS: podNSOf(sb),
		TargetPid: c.targetPid, Files: sb.files, Image: c.img.Config, ImageName: imageName, VolumeMounts: c.volumes,
		ImageChainID: c.img.ChainID, UserCache: &c.r.userLookups, Host: specHostFor(c.handler), CgroupDriver: c.r.opts.CgroupDriver,
	})
	if err != nil {
		return fmt.Errorf("%w: %w", legacy.ErrCreateContainerConfig, err)
	}
	c.specOpts = c.r.handlerSpec(sb.meta.RuntimeHandler).containerSpecOpts(c.specConfig, sb.config, c.specOpts)
	c.specOpts = append(c.specOpts, c.cdiOpts...)
	return nil
}

// makeMetadata makes the metadata that rebuilds the container after a restart, and its labels.
func (c *containerCreation) makeMetadata(context.Context) error {
	config, sb, img, md := c.config, c.sb, c.img, c.config.GetMetadata()
	rawConfig, err := marshalProto(config)
	if err != nil {
		return err
	}
	c.meta = containerMetadata{
		ID: c.id, SandboxID: sb.meta.ID, Config: rawConfig, CreatedAt: time.Now(),
		ImageRef: config.GetImage().GetImage(), ImageID: img.ID, ImageName: img.Name,
		RepoTag: img.RepoTag, RepoDigest: img.RepoDigest, StopSignal: img.Config.StopSignal,
		ImageVolumes: c.imageVolumes, Restore: c.restore != nil,
	}
	if dir, p := sb.config.GetLogDirectory(), config.GetLogPath(); dir != "" && p != "" {
		c.meta.LogPath = filepath.Join(dir, p)
		// A symlink already in the log directory must not lead the log out of it.
		if err := crilog.CheckInDir(dir, p); err != nil {
			return fmt.Errorf("log_path %q: %v: %w", p, err, errdefs.ErrInvalidArgument)
		}
	}
	c.labels = map[string]string{
		LabelKind:          KindContainer,
		LabelSandboxID:     sb.meta.ID,
		LabelPodName:       sb.config.GetMetadata().GetName(),
		LabelPodNamespace:  sb.config.GetMetadata().GetNamespace(),
		LabelPodUID:        sb.config.GetMetadata().GetUid(),
		LabelAttempt:       strconv.FormatUint(uint64(md.GetAttempt()), 10),
		LabelContainerName: md.GetName(),
		LabelContainerHash: strconv.FormatUint(legacy.HashContainer(config), 16),
	}
	return nil
}

// createRecord makes the containerd container: the record first and then the snapshot, when the
// spec needs no rootfs (fast_create.go); the general path otherwise (the first container of an
// image whose user is looked up in it).
func (c *containerCreation) createRecord(ctx context.Context) error {
	r, id, img, snapshotter := c.r, c.id, c.img, c.snapshotter
	tNew := time.Now()
	snapOpts := usernsSnapshotOpts(sandboxUsernsMapping(c.sb.config))
	recordOpts := []containerd.NewContainerOpts{
		containerd.WithContainerLabels(c.labels),
		containerd.WithRuntime(c.handler.Type, c.handler.Options),
	}
	if c.sb.meta.GroupedShim || c.sb.meta.PauseLess {
		// shim_grouping.go; pod_shim.go for a pod without a pause process.
		recordOpts = append(recordOpts, containerd.WithSandbox(c.sb.meta.ID))
	}
	rootfs, spec0, err := r.newContainerRecordFirst(ctx, id, img.Name, snapshotter, img.ChainID, snapOpts,
		append([]containerd.NewContainerOpts{timed(&c.times.spec, withSpecAndMetadata(c.specOpts, &c.meta, &c.spec, c.nri.adjust()))}, recordOpts...)...)
	c.rootfs, c.spec0 = rootfs, spec0
	if err == nil {
		c.undo = append(c.undo, func(cctx context.Context) {
			if err := r.deleteContainerRecord(cctx, id, snapshotter); err != nil {
				c.log.WithError(err).Warn("undo: delete container")
			}
		})
	}
	if errors.Is(err, containerspec.ErrNeedsRootfs) {
		var cntr containerd.Container
		cntr, err = r.client.NewContainer(ctx, id, append([]containerd.NewContainerOpts{
			containerd.WithSnapshotter(snapshotter),
			timed(&c.times.snap, withSnapshotFrom(id, img.Name, snapshotter, img.ChainID, snapOpts...)),
			timed(&c.times.spec, withSpecAndMetadata(c.specOpts, &c.meta, &c.spec, c.nri.adjust())),
		}, recordOpts...)...)
		c.cntr = cntr
		if err != nil {
			// A failed NewContainer may leave the snapshot it prepared.
			c.undo = append(c.undo, func(cctx context.Context) {
				_ = r.client.SnapshotService(snapshotter).Remove(cctx, id)
			})
		} else {
			c.undo = append(c.undo, func(cctx context.Context) {
				if err := cntr.Delete(cctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
					c.log.WithError(err).Warn("undo: delete container")
				}
			})
		}
	}
	if err != nil {
		if errdefs.IsInvalidArgument(err) || errdefs.IsNotFound(err) {
			return fmt.Errorf("%w: %w", legacy.ErrCreateContainerConfig, err)
		}
		return fmt.Errorf("%w: create containerd container: %w", legacy.ErrCreateContainer, err)
	}
	c.times.new = time.Since(tNew)
	return nil
}

// checkRestoreImages refuses a checkpoint whose processes would not be within the spec: CRIU
// restores their credentials, seccomp filters, namespaces, cgroups and mounts from the
// checkpoint's images, not from the spec (kuberuntime/criu).
func (c *containerCreation) checkRestoreImages(context.Context) error {
	if c.restore == nil {
		return nil
	}
	if err := checkRestoreImages(c.rootDir, c.spec); err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.restore.Path, err)
	}
	return nil
}

// finishFiles saves the spec for the verbose status (spec_file.go) and applies a restored
// container's rootfs diff.
func (c *containerCreation) finishFiles(ctx context.Context) error {
	if c.cntr != nil {
		saveSpecFile(ctx, c.rootDir, c.cntr)
	} else {
		saveSpecJSON(c.rootDir, c.spec0)
	}
	if c.restore != nil {
		return c.r.applyRootfsDiff(ctx, c.snapshotter, c.id, c.rootDir)
	}
	return nil
}

// store adds the created container to the store and tells of it. It has no status file yet: a
// container without one is a created container (container_recover.go); its resources are read
// back from the spec.
func (c *containerCreation) store(ctx context.Context) {
	pc := &podContainer{
		meta: metaInMemory(c.meta), config: proto.Clone(c.config).(*runtime.ContainerConfig), rootDir: c.rootDir, stateDir: c.stateDir,
		state: legacy.ContainerStateCreated, resources: resourcesFromSpec(c.spec), exited: make(chan struct{}),
		cntr: c.cntr, rootfs: c.rootfs,
	}
	c.st.store.add(pc)
	c.nri.created(ctx, pc)
	c.r.emitContainerEvent(legacy.ContainerEventCreated, pc)
	t := c.times
	c.log.WithFields(logrus.Fields{"image": t.image, "new": t.new, "snap": t.snap, "spec": t.spec, "total": time.Since(t.start)}).Debug("container created")
}

func timed(d *time.Duration, o containerd.NewContainerOpts) containerd.NewContainerOpts {
	return func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		t := time.Now()
		err := o(ctx, client, c)
		*d = time.Since(t)
		return err
	}
}
