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
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
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
	var restore *checkpointSource
	if ref := config.GetImage().GetImage(); isCheckpointArchive(ref) {
		var err error
		if config, restore, err = r.prepareRestore(ctx, ref, config); err != nil {
			return "", err
		}
	}
	return r.createContainer(ctx, sandboxID, config, restore)
}

// createContainer creates the container; restore, when set, is the checkpoint StartContainer
// restores it from.
func (r *ContainerdRuntime) createContainer(ctx context.Context, sandboxID string, config *runtime.ContainerConfig, restore *checkpointSource) (_ string, retErr error) {
	t0 := time.Now()
	sb, err := r.sandboxes.get(sandboxID)
	if err != nil {
		return "", err
	}
	sbStatus := sb.status()
	if sbStatus.State != legacy.SandboxStateReady || sbStatus.Pid == 0 {
		return "", fmt.Errorf("sandbox %s is not ready: %w", sb.meta.ID, errdefs.ErrFailedPrecondition)
	}
	ctx = r.withNS(ctx)
	st := r.ctrs()
	md := config.GetMetadata()
	id := newSandboxID()
	name := containerNameKey(sb.meta.ID, md)
	if err := st.store.reserve(name, id); err != nil {
		return "", err
	}
	log := logrus.WithFields(logrus.Fields{"container": id, "sandbox": sb.meta.ID, "name": md.GetName()})
	var undo []func(context.Context)
	defer func() {
		if retErr == nil {
			return
		}
		cctx, cancel := withoutCancel(ctx, cleanupTimeout)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](cctx)
		}
		st.store.release(name, id)
	}()

	handler, ok := r.handlers[sb.meta.RuntimeHandler]
	if !ok {
		handler = r.handlers[""]
	}
	snapshotter := snapshotterOr(handler.Snapshotter)
	img, err := r.localImage(ctx, config.GetImage().GetImage())
	if err != nil {
		return "", err
	}
	if err := r.ensureUnpacked(ctx, img, snapshotter); err != nil {
		return "", err
	}

	dImage := time.Since(t0)
	rootDir := filepath.Join(r.containersRoot(), id)
	stateDir := filepath.Join(r.containersState(), id)
	for _, d := range []string{rootDir, stateDir} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return "", err
		}
	}
	undo = append(undo, func(context.Context) {
		os.RemoveAll(rootDir)
		os.RemoveAll(stateDir)
	})
	if restore != nil {
		if err := restore.install(ctx, rootDir, r.opts.MaxCheckpointSize); err != nil {
			return "", err
		}
	}
	volumes, err := imageVolumeMounts(rootDir, config, &img.Config)
	if err != nil {
		return "", err
	}
	undo = append(undo, func(cctx context.Context) {
		if err := r.unmountImageVolumes(cctx, id, rootDir, nil); err != nil {
			log.WithError(err).Warn("undo: image volumes")
		}
	})
	specConfig, imageVolumes, err := r.mountImageVolumes(ctx, id, rootDir, snapshotter, config)
	if err != nil {
		return "", err
	}

	// A target pid namespace is another running container of the same sandbox.
	var targetPid uint32
	nsOpts := config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if nsOpts.GetPid() == runtime.NamespaceMode_TARGET {
		target, err := st.store.get(nsOpts.GetTargetId())
		if err != nil {
			return "", fmt.Errorf("target container of the pid namespace: %w", err)
		}
		if target.meta.SandboxID != sb.meta.ID {
			return "", fmt.Errorf("target container %s is not in sandbox %s: %w", target.meta.ID, sb.meta.ID, errdefs.ErrInvalidArgument)
		}
		state, _, pid := target.snapshot()
		if state != legacy.ContainerStateRunning {
			return "", fmt.Errorf("target container %s is not running: %w", target.meta.ID, errdefs.ErrFailedPrecondition)
		}
		targetPid = pid
	}

	imageName := config.GetImage().GetUserSpecifiedImage()
	if imageName == "" {
		imageName = img.Name
	}
	specOpts, err := containerSpecOpts(containerSpecInput{
		ID: id, Config: specConfig, SandboxID: sb.meta.ID, SandboxConfig: sb.config, SandboxPid: sbStatus.Pid,
		TargetPid: targetPid, Files: sb.files, Image: img.Config, ImageName: imageName, VolumeMounts: volumes,
		ImageChainID: img.ChainID, UserCache: &r.userLookups,
	})
	if err != nil {
		return "", fmt.Errorf("%w: %w", legacy.ErrCreateContainerConfig, err)
	}

	rawConfig, err := marshalProto(config)
	if err != nil {
		return "", err
	}
	meta := containerMetadata{
		ID: id, SandboxID: sb.meta.ID, Config: rawConfig, CreatedAt: time.Now(),
		ImageRef: config.GetImage().GetImage(), ImageID: img.ID, ImageName: img.Name,
		RepoTag: img.RepoTag, RepoDigest: img.RepoDigest, StopSignal: img.Config.StopSignal,
		ImageVolumes: imageVolumes, Restore: restore != nil,
	}
	if dir, p := sb.config.GetLogDirectory(), config.GetLogPath(); dir != "" && p != "" {
		meta.LogPath = filepath.Join(dir, p)
		// A symlink already in the log directory must not lead the log out of it.
		if err := crilog.CheckInDir(dir, p); err != nil {
			return "", fmt.Errorf("log_path %q: %v: %w", p, err, errdefs.ErrInvalidArgument)
		}
	}
	labels := map[string]string{
		LabelKind:          KindContainer,
		LabelSandboxID:     sb.meta.ID,
		LabelPodName:       sb.config.GetMetadata().GetName(),
		LabelPodNamespace:  sb.config.GetMetadata().GetNamespace(),
		LabelPodUID:        sb.config.GetMetadata().GetUid(),
		LabelAttempt:       strconv.FormatUint(uint64(md.GetAttempt()), 10),
		LabelContainerName: md.GetName(),
		LabelContainerHash: strconv.FormatUint(legacy.HashContainer(config), 16),
	}
	// NRI plugins adjust the spec; no plugin synchronizes until the container is stored.
	nriCreate := r.nriCreateContainer(sb, id, config)
	undo = append(undo, nriCreate.undo)
	defer nriCreate.done()
	var spec *runtimespec.Spec
	tNew := time.Now()
	var dSnap, dSpec time.Duration
	snapOpts := usernsSnapshotOpts(sandboxUsernsMapping(sb.config))
	// The record first and then the snapshot, when the spec needs no rootfs (fast_create.go); the
	// general path otherwise (the first container of an image whose user is looked up in it).
	var cntr containerd.Container
	recordOpts := []containerd.NewContainerOpts{
		containerd.WithContainerLabels(labels),
		containerd.WithRuntime(handler.Type, handler.Options),
	}
	if sb.meta.GroupedShim {
		recordOpts = append(recordOpts, containerd.WithSandbox(sb.meta.ID)) // shim_grouping.go
	}
	rootfs, spec0, err := r.newContainerRecordFirst(ctx, id, img.Name, snapshotter, img.ChainID, snapOpts,
		append([]containerd.NewContainerOpts{timed(&dSpec, withSpecAndMetadata(specOpts, &meta, &spec, nriCreate.adjust()))}, recordOpts...)...)
	if err == nil {
		undo = append(undo, func(cctx context.Context) {
			if err := r.deleteContainerRecord(cctx, id, snapshotter); err != nil {
				log.WithError(err).Warn("undo: delete container")
			}
		})
	}
	if errors.Is(err, errNeedsRootfs) {
		cntr, err = r.client.NewContainer(ctx, id, append([]containerd.NewContainerOpts{
			containerd.WithSnapshotter(snapshotter),
			timed(&dSnap, withSnapshotFrom(id, img.Name, snapshotter, img.ChainID, snapOpts...)),
			timed(&dSpec, withSpecAndMetadata(specOpts, &meta, &spec, nriCreate.adjust())),
		}, recordOpts...)...)
		if err != nil {
			// A failed NewContainer may leave the snapshot it prepared.
			undo = append(undo, func(cctx context.Context) {
				_ = r.client.SnapshotService(snapshotter).Remove(cctx, id)
			})
		} else {
			undo = append(undo, func(cctx context.Context) {
				if err := cntr.Delete(cctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
					log.WithError(err).Warn("undo: delete container")
				}
			})
		}
	}
	if err != nil {
		if errdefs.IsInvalidArgument(err) || errdefs.IsNotFound(err) {
			return "", fmt.Errorf("%w: %w", legacy.ErrCreateContainerConfig, err)
		}
		return "", fmt.Errorf("%w: create containerd container: %w", legacy.ErrCreateContainer, err)
	}
	dNew := time.Since(tNew)
	// CRIU restores the processes' credentials, seccomp filters, namespaces, cgroups and mounts
	// from the checkpoint's images, not from the spec: they must be within the spec's
	// (checkpoint_images.go), or the container is not created.
	if restore != nil {
		if err := criu.CheckRestoreImages(rootDir, spec); err != nil {
			return "", fmt.Errorf("checkpoint %s: %w", restore.path, err)
		}
	}
	// The spec for the verbose status (spec_file.go).
	if cntr != nil {
		saveSpecFile(ctx, rootDir, cntr)
	} else {
		saveSpecJSON(rootDir, spec0)
	}
	if restore != nil {
		if err := r.applyRootfsDiff(ctx, snapshotter, id, rootDir); err != nil {
			return "", err
		}
	}

	c := &podContainer{
		meta: metaInMemory(meta), config: proto.Clone(config).(*runtime.ContainerConfig), rootDir: rootDir, stateDir: stateDir,
		state: legacy.ContainerStateCreated, resources: resourcesFromSpec(spec), exited: make(chan struct{}),
		cntr: cntr, rootfs: rootfs,
	}
	// No status file yet: a container without one is a created container (container_recover.go);
	// its resources are read back from the spec.
	st.store.add(c)
	nriCreate.created(ctx, c)
	r.emitContainerEvent(legacy.ContainerEventCreated, c)
	log.WithFields(logrus.Fields{"image": dImage, "new": dNew, "snap": dSnap, "spec": dSpec, "total": time.Since(t0)}).Debug("container created")
	return id, nil
}

func timed(d *time.Duration, o containerd.NewContainerOpts) containerd.NewContainerOpts {
	return func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		t := time.Now()
		err := o(ctx, client, c)
		*d = time.Since(t)
		return err
	}
}
