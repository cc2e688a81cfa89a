package kuberuntime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/checkpointarchive"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
	"github.com/cri-shim/cri-shim/legacy"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Restore. A container is restored in two steps, as CRI defines it: CreateContainer (with a
// checkpoint archive as its image, or RestorePod) creates a container from the checkpointed
// image and config and copies the checkpoint under <root>/containers/<id>/restore/; StartContainer
// of such a container creates its task from the CRIU images (runc restore) instead of running the
// command. The container's rootfs is a fresh snapshot of its image: file-system changes made
// after the start are not part of the checkpoint.

// restoreDir is where a restorable container keeps its checkpoint, under its root dir.
const restoreDir = "restore"

// checkRestoreImages checks the CRIU images of the checkpoint installed in a container's root
// dir against the spec it was created with.
func checkRestoreImages(rootDir string, spec *runtimespec.Spec) error {
	if spec == nil {
		return fmt.Errorf("no spec to check the checkpoint's CRIU images against: %w", errdefs.ErrInvalidArgument)
	}
	if err := criu.CheckCheckpointImages(filepath.Join(rootDir, restoreDir, checkpointarchive.ImagesDir), spec); err != nil {
		return fmt.Errorf("the checkpoint's processes are not what the request allows: %w", err)
	}
	return nil
}

// archiveRestoreConfig is the config of a container restored by CreateContainer with a checkpoint
// archive as its image (containerd's and CRI-O's way). The archive is not trusted: the request
// decides everything about the container (security context, namespaces, resources, devices,
// mounts, metadata, labels, annotations, log path); the archive gives only the checkpointed
// process (command, args, working directory, environment) and image. Its mounts must all be
// named by the request, which gives their host paths (as in CRI-O: a mount the request does not
// name would show the container some of the host it was not given). The result is validated
// like any CreateContainer request.
func archiveRestoreConfig(src *checkpointarchive.Source, req *runtime.ContainerConfig) (*runtime.ContainerConfig, error) {
	name := req.GetMetadata().GetName()
	if err := checkRestoreNamespaces(name, src, req); err != nil {
		return nil, err
	}
	if err := checkRestoreMounts(name, src, req); err != nil {
		return nil, err
	}
	cfg := restoredConfig(src, req)
	if err := legacy.ValidateContainerConfig(cfg); err != nil {
		return nil, fmt.Errorf("checkpoint %s: the restored container's config: %w", src.Path, err)
	}
	return cfg, nil
}

// restoredConfig is the request's config with the checkpointed process and image: what CRIU
// restores is that process, whatever the request says of it.
func restoredConfig(src *checkpointarchive.Source, req *runtime.ContainerConfig) *runtime.ContainerConfig {
	old := src.ContainerConfig
	cfg := proto.Clone(req).(*runtime.ContainerConfig)
	cfg.Command, cfg.Args, cfg.WorkingDir, cfg.Envs = old.GetCommand(), old.GetArgs(), old.GetWorkingDir(), old.GetEnvs()
	cfg.Image = &runtime.ImageSpec{Image: src.Config.ImageID, UserSpecifiedImage: src.Config.RootfsImageName}
	return cfg
}

// checkRestoreNamespaces: the pid namespace is where CRIU recreates the processes with their
// pids. A container that had its own must have its own again, one in the pod's goes into the new
// pod's; the request says which, and it must be the checkpoint's.
func checkRestoreNamespaces(name string, src *checkpointarchive.Source, req *runtime.ContainerConfig) error {
	want := src.ContainerConfig.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid()
	if got := req.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid(); got != want {
		return fmt.Errorf("container %q: pid namespace mode %s differs from the checkpointed container's (%s): %w", name, got, want, errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkRestoreMounts: every mount of the checkpointed container must be named (by its container
// path) by the request, whose host path is the one used.
func checkRestoreMounts(name string, src *checkpointarchive.Source, req *runtime.ContainerConfig) error {
	var missing []string
	for _, m := range src.ContainerConfig.GetMounts() {
		if !slices.ContainsFunc(req.GetMounts(), func(r *runtime.Mount) bool { return r.GetContainerPath() == m.GetContainerPath() }) {
			missing = append(missing, m.GetContainerPath())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("container %q: the checkpointed container had mounts the request does not name: %s: %w", name, strings.Join(missing, ", "), errdefs.ErrInvalidArgument)
	}
	return nil
}

// podRestoreConfig is the config of a container restored by RestorePod: the request's, which
// must describe the checkpointed process (same command, args, working directory, environment and
// user where it names them); the image is the checkpointed container's, which the request's image,
// when set, must resolve to.
func (r *ContainerdRuntime) podRestoreConfig(ctx context.Context, src *checkpointarchive.Source, req *runtime.ContainerConfig) (*runtime.ContainerConfig, error) {
	old := src.ContainerConfig
	name := req.GetMetadata().GetName()
	mismatch := func(what string) error {
		return fmt.Errorf("container %q: %s differs from the checkpointed container's: %w", name, what, errdefs.ErrInvalidArgument)
	}
	if c := req.GetCommand(); len(c) > 0 && !slices.Equal(c, old.GetCommand()) {
		return nil, mismatch("command")
	}
	if a := req.GetArgs(); len(a) > 0 && !slices.Equal(a, old.GetArgs()) {
		return nil, mismatch("args")
	}
	if w := req.GetWorkingDir(); w != "" && w != old.GetWorkingDir() {
		return nil, mismatch("working_dir")
	}
	if envs := req.GetEnvs(); len(envs) > 0 && !slices.EqualFunc(envs, old.GetEnvs(), func(a, b *runtime.KeyValue) bool {
		return a.GetKey() == b.GetKey() && bytes.Equal(a.GetValue(), b.GetValue())
	}) {
		return nil, mismatch("environment")
	}
	if sc := req.GetLinux().GetSecurityContext(); sc != nil {
		osc := old.GetLinux().GetSecurityContext()
		if sc.GetRunAsUser() != nil && sc.GetRunAsUser().GetValue() != osc.GetRunAsUser().GetValue() ||
			sc.GetRunAsUsername() != "" && sc.GetRunAsUsername() != osc.GetRunAsUsername() ||
			sc.GetRunAsGroup() != nil && sc.GetRunAsGroup().GetValue() != osc.GetRunAsGroup().GetValue() {
			return nil, mismatch("user")
		}
	}
	if err := checkRestoreNamespaces(name, src, req); err != nil {
		return nil, err
	}
	if ref := req.GetImage().GetImage(); ref != "" {
		img, err := r.localImage(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("container %q: %w", name, err)
		}
		if img.ID != src.Config.ImageID {
			return nil, mismatch(fmt.Sprintf("image (%s, checkpointed %s)", img.ID, src.Config.ImageID))
		}
	}
	return restoredConfig(src, req), nil
}

// checkpointImage finds the checkpointed image among the local images: by ID, then by its names.
func (r *ContainerdRuntime) checkpointImage(ctx context.Context, src *checkpointarchive.Source) (*containerImage, error) {
	var lastErr error
	for _, ref := range []string{src.Config.ImageID, src.Config.RootfsImageRef, src.Config.RootfsImageName} {
		if ref == "" {
			continue
		}
		img, err := r.localImage(ctx, ref)
		if err != nil {
			lastErr = err
			continue
		}
		if img.ID != src.Config.ImageID {
			lastErr = fmt.Errorf("image %s is now %s, the checkpoint was taken from %s", ref, img.ID, src.Config.ImageID)
			continue
		}
		return img, nil
	}
	return nil, fmt.Errorf("the image of checkpoint %s (%s %s) is not present, pull it first: %v: %w",
		src.Path, src.Config.RootfsImageName, src.Config.ImageID, lastErr, errdefs.ErrNotFound)
}

// checkpoint: the CRIU images, and a work dir for CRIU's restore log.
func restoreTaskOpts(c *podContainer) ([]containerd.NewTaskOpts, error) {
	if !c.meta.Restore {
		return nil, nil
	}
	dir := filepath.Join(c.rootDir, restoreDir)
	images := filepath.Join(dir, checkpointarchive.ImagesDir)
	if _, err := os.Stat(images); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	if _, err := criu.CriuUsable(); err != nil {
		return nil, err
	}
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, err
	}
	return []containerd.NewTaskOpts{containerd.WithRestoreImagePath(images), containerd.WithRestoreWorkPath(work)}, nil
}

// isRestore tells whether StartContainer restores c from a checkpoint: its record says it was
// created from one (the files under its root dir alone do not), whose CRIU images are still there.
func isRestore(c *podContainer) bool {
	if !c.meta.Restore {
		return false
	}
	_, err := os.Stat(filepath.Join(c.rootDir, restoreDir, checkpointarchive.ImagesDir))
	return err == nil
}

// restoreError adds CRIU's own errors (its restore log) to a failed restore.
func restoreError(c *podContainer, err error) error {
	if err == nil || !isRestore(c) {
		return err
	}
	logs, _ := filepath.Glob(filepath.Join(c.rootDir, restoreDir, "work", "restore*.log"))
	for _, l := range logs {
		if b, rerr := os.ReadFile(l); rerr == nil {
			if msg := criu.CriuErrors(string(b), err); msg != err.Error() {
				return fmt.Errorf("%w (CRIU: %s)", err, msg)
			}
		}
	}
	return err
}

// prepareRestore answers CreateContainer with a checkpoint archive as its image: the config the
// container is created with, and the checkpoint it is restored from.
func (r *ContainerdRuntime) prepareRestore(ctx context.Context, ref string, req *runtime.ContainerConfig) (*runtime.ContainerConfig, *checkpointarchive.Source, error) {
	if _, err := criu.CriuUsable(); err != nil {
		return nil, nil, fmt.Errorf("restore from checkpoint archive %s: %w", ref, err)
	}
	src, err := checkpointarchive.Open(ref)
	if err != nil {
		return nil, nil, err
	}
	if _, err := r.checkpointImage(r.withNS(ctx), src); err != nil {
		return nil, nil, err
	}
	cfg, err := archiveRestoreConfig(src, req)
	if err != nil {
		return nil, nil, err
	}
	return cfg, src, nil
}

// RestorePod implements Checkpointer: a new sandbox from the request's config, and in it one
// created container per container of the checkpoint, each restored from its CRIU images when
// started.
func (r *ContainerdRuntime) RestorePod(ctx context.Context, req legacy.RestorePodRequest) (_ string, _ map[string]string, retErr error) {
	pod, err := r.validateRestorePod(req)
	if err != nil {
		return "", nil, err
	}
	if _, err := criu.CriuUsable(); err != nil {
		return "", nil, err
	}
	start := time.Now()
	// Everything that can be checked before the sandbox runs.
	srcs := map[string]*checkpointarchive.Source{}
	cfgs := map[string]*runtime.ContainerConfig{}
	for _, cfg := range req.ContainerConfigs {
		name := cfg.GetMetadata().GetName()
		dir, err := pod.ContainerDir(req.CheckpointPath, name)
		if err != nil {
			return "", nil, err
		}
		src, err := checkpointarchive.Open(dir)
		if err != nil {
			return "", nil, err
		}
		if src.Archive {
			return "", nil, fmt.Errorf("%s is not a directory: %w", dir, errdefs.ErrInvalidArgument)
		}
		if _, err := r.checkpointImage(r.withNS(ctx), src); err != nil {
			return "", nil, err
		}
		if cfgs[name], err = r.podRestoreConfig(r.withNS(ctx), src, cfg); err != nil {
			return "", nil, err
		}
		if err := legacy.ValidateContainerConfig(cfgs[name]); err != nil {
			return "", nil, err
		}
		srcs[name] = src
	}
	sandboxID, res := r.RunPodSandbox(ctx, req.Config, req.RuntimeHandler)
	if err := res.Error(); err != nil {
		return "", nil, fmt.Errorf("restore pod sandbox: %w", err)
	}
	defer func() {
		if retErr == nil {
			return
		}
		cctx, cancel := withoutCancel(ctx, cleanupTimeout)
		defer cancel()
		if res := r.StopPodSandbox(cctx, sandboxID); res.Error() != nil {
			logrus.WithError(res.Error()).WithField("sandbox", sandboxID).Warn("undo restore: stop sandbox")
		}
		if err := r.RemovePodSandbox(cctx, sandboxID); err != nil {
			logrus.WithError(err).WithField("sandbox", sandboxID).Warn("undo restore: remove sandbox")
		}
	}()
	ids := map[string]string{}
	for _, cfg := range req.ContainerConfigs {
		name := cfg.GetMetadata().GetName()
		id, err := r.createContainer(ctx, sandboxID, cfgs[name], srcs[name])
		if err != nil {
			return "", nil, fmt.Errorf("restore container %q: %w", name, err)
		}
		ids[name] = id
	}
	logrus.WithFields(logrus.Fields{"sandbox": sandboxID, "checkpoint": req.CheckpointPath, "containers": len(ids),
		"duration": time.Since(start)}).Info("pod restored (containers created)")
	return sandboxID, ids, nil
}

// validateRestorePod checks a RestorePod request as CRI defines it and reads the pod checkpoint.
func (r *ContainerdRuntime) validateRestorePod(req legacy.RestorePodRequest) (*checkpointarchive.PodConfig, error) {
	for k := range req.Options {
		return nil, fmt.Errorf("restore option %q is not supported: %w", k, errdefs.ErrInvalidArgument)
	}
	if req.CheckpointPath == "" || !filepath.IsAbs(req.CheckpointPath) {
		return nil, fmt.Errorf("checkpoint_path %q must be an absolute path: %w", req.CheckpointPath, errdefs.ErrInvalidArgument)
	}
	if req.Config.GetMetadata() == nil {
		return nil, fmt.Errorf("pod sandbox config with metadata is required: %w", errdefs.ErrInvalidArgument)
	}
	if !r.HasRuntimeHandler(req.RuntimeHandler) {
		return nil, fmt.Errorf("unknown runtime handler %q: %w", req.RuntimeHandler, errdefs.ErrInvalidArgument)
	}
	if len(req.ContainerConfigs) == 0 {
		return nil, fmt.Errorf("container_configs must not be empty: %w", errdefs.ErrInvalidArgument)
	}
	names := map[string]bool{}
	for _, cfg := range req.ContainerConfigs {
		name := cfg.GetMetadata().GetName()
		if name == "" || names[name] {
			return nil, fmt.Errorf("container config names must be non-empty and unique, got %q: %w", name, errdefs.ErrInvalidArgument)
		}
		names[name] = true
	}
	pod, err := checkpointarchive.ReadPodDump(req.CheckpointPath)
	if err != nil {
		return nil, err
	}
	for name := range names {
		if _, ok := pod.Containers[name]; !ok {
			return nil, fmt.Errorf("container %q is not in the checkpoint: %w", name, errdefs.ErrInvalidArgument)
		}
	}
	if len(pod.Containers) != len(names) {
		return nil, fmt.Errorf("the checkpoint has %d containers, the request configures %d: %w", len(pod.Containers), len(names), errdefs.ErrInvalidArgument)
	}
	if h := pod.RuntimeHandler; h != req.RuntimeHandler && !(h == "" || req.RuntimeHandler == "") {
		return nil, fmt.Errorf("the checkpoint was taken with runtime handler %q, not %q: %w", h, req.RuntimeHandler, errdefs.ErrInvalidArgument)
	}
	return pod, nil
}

// restored logs a container's restore and drops its copy of the checkpoint (CRIU's restore log
// stays, under restore/work, until the container is removed).
func restored(c *podContainer, d time.Duration) {
	dir := filepath.Join(c.rootDir, restoreDir)
	logrus.WithFields(logrus.Fields{"container": c.meta.ID, "sandbox": c.meta.SandboxID, "duration": d}).Info("container restored from its checkpoint")
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "work" {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				logrus.WithError(err).WithField("container", c.meta.ID).Warn("remove the checkpoint copy")
			}
		}
	}
}

// writeRootfsDiff writes the changes of the container's snapshot key over its parent to path, as
// an OCI layer tar: the parent is mounted as a view, the container's snapshot read-only (the
// container keeps its own mount).
func (r *ContainerdRuntime) writeRootfsDiff(ctx context.Context, snapshotter, key, path string) error {
	sn := r.client.SnapshotService(snapshotterOr(snapshotter))
	info, err := sn.Stat(ctx, key)
	if err != nil {
		return err
	}
	upper, err := sn.Mounts(ctx, key)
	if err != nil {
		return err
	}
	viewKey := key + "-checkpoint-view-" + newID()[:12]
	lower, err := sn.View(ctx, viewKey, info.Parent)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := withoutCancel(ctx, cleanupTimeout)
		defer cancel()
		if err := sn.Remove(cctx, viewKey); err != nil {
			logrus.WithError(err).WithField("snapshot", viewKey).Warn("remove checkpoint view")
		}
	}()
	return checkpointarchive.WriteRootfsDiff(ctx, lower, upper, path)
}

// applyRootfsDiff applies the checkpoint's file-system changes, when it has them, to the new
// container's snapshot key.
func (r *ContainerdRuntime) applyRootfsDiff(ctx context.Context, snapshotter, key, rootDir string) error {
	f, err := os.Open(filepath.Join(rootDir, restoreDir, checkpointarchive.RootfsDiff))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	mounts, err := r.client.SnapshotService(snapshotterOr(snapshotter)).Mounts(ctx, key)
	if err != nil {
		return err
	}
	return checkpointarchive.ApplyRootfsDiff(ctx, f, mounts)
}
