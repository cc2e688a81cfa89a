package kuberuntime

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// checkpointSource is a checkpoint (an archive, or a directory of a pod checkpoint) that a new
// container is restored from.
type checkpointSource struct {
	path    string // the archive, or the container's directory in a pod checkpoint
	archive bool
	config  checkpointConfigFile
	// ctrConfig is the checkpointed container's CRI config.
	ctrConfig *runtime.ContainerConfig
}

// openCheckpoint reads the config of the checkpoint at path (an archive or a directory).
func openCheckpoint(path string) (*checkpointSource, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	src := &checkpointSource{path: path, archive: fi.Mode().IsRegular()}
	var b []byte
	if src.archive {
		b, err = readTarFile(path, criu.CheckpointConfig)
	} else {
		b, err = os.ReadFile(filepath.Join(path, criu.CheckpointConfig))
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s has no %s: %v: %w", path, criu.CheckpointConfig, err, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(b, &src.config); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %v: %w", path, criu.CheckpointConfig, err, errdefs.ErrInvalidArgument)
	}
	if src.config.ImageID == "" || len(src.config.ContainerConfig) == 0 {
		return nil, fmt.Errorf("checkpoint %s: %s names no image or container config: %w", path, criu.CheckpointConfig, errdefs.ErrInvalidArgument)
	}
	src.ctrConfig = &runtime.ContainerConfig{}
	if err := protojson.Unmarshal(src.config.ContainerConfig, src.ctrConfig); err != nil {
		return nil, fmt.Errorf("checkpoint %s: container config: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	return src, nil
}

// readTarFile returns the content of the entry name of the tar archive at path.
func readTarFile(path, name string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fs.ErrNotExist
		}
		if err != nil {
			return nil, err
		}
		if hdr.Name == name {
			return io.ReadAll(io.LimitReader(tr, 16<<20))
		}
	}
}

// archiveRestoreConfig is the config of a container restored by CreateContainer with a checkpoint
// archive as its image (containerd's and CRI-O's way). The archive is not trusted: the request
// decides everything about the container (security context, namespaces, resources, devices,
// mounts, metadata, labels, annotations, log path); the archive gives only the checkpointed
// process (command, args, working directory, environment) and image. Its mounts must all be
// named by the request, which gives their host paths (as in CRI-O: a mount the request does not
// name would show the container some of the host it was not given). The result is validated
// like any CreateContainer request.
func archiveRestoreConfig(src *checkpointSource, req *runtime.ContainerConfig) (*runtime.ContainerConfig, error) {
	name := req.GetMetadata().GetName()
	if err := checkRestoreNamespaces(name, src, req); err != nil {
		return nil, err
	}
	if err := checkRestoreMounts(name, src, req); err != nil {
		return nil, err
	}
	cfg := restoredConfig(src, req)
	if err := legacy.ValidateContainerConfig(cfg); err != nil {
		return nil, fmt.Errorf("checkpoint %s: the restored container's config: %w", src.path, err)
	}
	return cfg, nil
}

// restoredConfig is the request's config with the checkpointed process and image: what CRIU
// restores is that process, whatever the request says of it.
func restoredConfig(src *checkpointSource, req *runtime.ContainerConfig) *runtime.ContainerConfig {
	old := src.ctrConfig
	cfg := proto.Clone(req).(*runtime.ContainerConfig)
	cfg.Command, cfg.Args, cfg.WorkingDir, cfg.Envs = old.GetCommand(), old.GetArgs(), old.GetWorkingDir(), old.GetEnvs()
	cfg.Image = &runtime.ImageSpec{Image: src.config.ImageID, UserSpecifiedImage: src.config.RootfsImageName}
	return cfg
}

// checkRestoreNamespaces: the pid namespace is where CRIU recreates the processes with their
// pids. A container that had its own must have its own again, one in the pod's goes into the new
// pod's; the request says which, and it must be the checkpoint's.
func checkRestoreNamespaces(name string, src *checkpointSource, req *runtime.ContainerConfig) error {
	want := src.ctrConfig.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid()
	if got := req.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid(); got != want {
		return fmt.Errorf("container %q: pid namespace mode %s differs from the checkpointed container's (%s): %w", name, got, want, errdefs.ErrInvalidArgument)
	}
	return nil
}

// checkRestoreMounts: every mount of the checkpointed container must be named (by its container
// path) by the request, whose host path is the one used.
func checkRestoreMounts(name string, src *checkpointSource, req *runtime.ContainerConfig) error {
	var missing []string
	for _, m := range src.ctrConfig.GetMounts() {
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
func (r *ContainerdRuntime) podRestoreConfig(ctx context.Context, src *checkpointSource, req *runtime.ContainerConfig) (*runtime.ContainerConfig, error) {
	old := src.ctrConfig
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
		if img.ID != src.config.ImageID {
			return nil, mismatch(fmt.Sprintf("image (%s, checkpointed %s)", img.ID, src.config.ImageID))
		}
	}
	return restoredConfig(src, req), nil
}

// resolveImage finds the checkpointed image among the local images: by ID, then by its names.
func (r *ContainerdRuntime) checkpointImage(ctx context.Context, src *checkpointSource) (*containerImage, error) {
	var lastErr error
	for _, ref := range []string{src.config.ImageID, src.config.RootfsImageRef, src.config.RootfsImageName} {
		if ref == "" {
			continue
		}
		img, err := r.localImage(ctx, ref)
		if err != nil {
			lastErr = err
			continue
		}
		if img.ID != src.config.ImageID {
			lastErr = fmt.Errorf("image %s is now %s, the checkpoint was taken from %s", ref, img.ID, src.config.ImageID)
			continue
		}
		return img, nil
	}
	return nil, fmt.Errorf("the image of checkpoint %s (%s %s) is not present, pull it first: %v: %w",
		src.path, src.config.RootfsImageName, src.config.ImageID, lastErr, errdefs.ErrNotFound)
}

// install copies the checkpoint into the new container's rootDir/restore, writing at most
// maxSize bytes (0: no maximum but the source's own size).
func (src *checkpointSource) install(ctx context.Context, rootDir string, maxSize int64) error {
	dst := filepath.Join(rootDir, criu.RestoreDir)
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	var err error
	if src.archive {
		err = extractTarArchive(ctx, src.path, dst, maxSize)
	} else {
		err = copyTree(ctx, src.path, dst, maxSize)
	}
	if err != nil {
		return fmt.Errorf("copy checkpoint %s: %w", src.path, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, criu.CheckpointImagesDir, "inventory.img")); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("checkpoint %s has no CRIU images (%s/inventory.img): %w", src.path, criu.CheckpointImagesDir, errdefs.ErrInvalidArgument)
	}
	return nil
}

// extractTarArchive extracts the checkpoint archive at path into the directory dst. What it
// writes is bounded by the archive's size and by maxSize (when positive).
func extractTarArchive(ctx context.Context, path, dst string, maxSize int64) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	limit := fi.Size()
	if maxSize > 0 && maxSize < limit {
		limit = maxSize
	}
	return extractTar(ctx, f, dst, limit)
}

// extractTar extracts the directories and regular files of a checkpoint archive into the
// directory dst, writing at most limit bytes. The archive is not trusted: an entry that would
// leave dst (absolute, "..", a link), that is not a plain file or directory, that is sparse (a
// few KB of archive that reads back as terabytes of zeros), or that replaces another entry is an
// error (InvalidArgument), as is more data than limit. Every write goes through an os.Root of
// dst, so nothing resolves outside it whatever is already there.
func extractTar(ctx context.Context, r io.Reader, dst string, limit int64) error {
	root, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer root.Close()
	invalid := func(name, format string, args ...any) error {
		return fmt.Errorf("archive entry %q: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalidArgument)
	}
	remaining := limit
	tr := tar.NewReader(ctxReader{ctx, r})
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read checkpoint archive: %v: %w", err, errdefs.ErrInvalidArgument)
		}
		name := filepath.Clean(filepath.FromSlash(hdr.Name))
		if !filepath.IsLocal(name) {
			return invalid(hdr.Name, "leaves the archive")
		}
		if hdr.Typeflag == tar.TypeGNUSparse || isPAXSparse(hdr) {
			return invalid(hdr.Name, "sparse files are not part of a checkpoint")
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := root.MkdirAll(name, 0o700); err != nil {
				return invalid(hdr.Name, "%v", err)
			}
		case tar.TypeReg:
			if hdr.Size > remaining {
				return invalid(hdr.Name, "%d bytes, more than the %d left of the checkpoint's maximum size (%d bytes: the archive's size or the configured checkpoint_max_size_mib)",
					hdr.Size, remaining, limit)
			}
			if dir := filepath.Dir(name); dir != "." {
				if err := root.MkdirAll(dir, 0o700); err != nil {
					return invalid(hdr.Name, "%v", err)
				}
			}
			out, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return invalid(hdr.Name, "%v", err)
			}
			n, err := io.Copy(out, io.LimitReader(tr, remaining))
			remaining -= n
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("archive entry %q: %w", hdr.Name, err)
			}
			if n != hdr.Size {
				return invalid(hdr.Name, "%d bytes of %d", n, hdr.Size)
			}
		default:
			return invalid(hdr.Name, "not a file or directory (type %q)", hdr.Typeflag)
		}
	}
}

// isPAXSparse tells whether a tar entry is a GNU sparse file in PAX format (0.0, 0.1 or 1.0):
// archive/tar reads it as a regular file whose holes are zeros.
func isPAXSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// ctxReader fails its reads once ctx is done: a long copy stops with its request.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// copyTree copies the directories and regular files under src into dst (which exists), at most
// maxSize bytes when it is positive. A file with holes is refused: copied, its holes would be
// written out as zeros (a small file on disk, any size in the copy), and CRIU writes none.
// Files are opened without following symlinks: one swapped in during the walk is not read.
func copyTree(ctx context.Context, src, dst string, maxSize int64) error {
	var written int64
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, 0o700)
		case d.Type().IsRegular():
			in, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
			if err != nil {
				return err
			}
			defer in.Close()
			fi, err := in.Stat()
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file: %w", p, errdefs.ErrInvalidArgument)
			}
			if hole, err := in.Seek(0, unix.SEEK_HOLE); err == nil && hole < fi.Size() {
				return fmt.Errorf("%s is sparse: sparse files are not part of a checkpoint: %w", p, errdefs.ErrInvalidArgument)
			}
			if _, err := in.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if maxSize > 0 && written+fi.Size() > maxSize {
				return fmt.Errorf("checkpoint %s is larger than the maximum of %d bytes (checkpoint_max_size_mib): %w", src, maxSize, errdefs.ErrInvalidArgument)
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			// At most the size stat gave: a file still growing is not copied past it.
			n, err := io.Copy(out, io.LimitReader(ctxReader{ctx, in}, fi.Size()))
			written += n
			return errors.Join(err, out.Close())
		}
		return nil
	})
}

// restoreTaskOpts are the task options of a container that StartContainer restores from its
// checkpoint: the CRIU images, and a work dir for CRIU's restore log.
func restoreTaskOpts(c *podContainer) ([]containerd.NewTaskOpts, error) {
	if !c.meta.Restore {
		return nil, nil
	}
	dir := filepath.Join(c.rootDir, criu.RestoreDir)
	images := filepath.Join(dir, criu.CheckpointImagesDir)
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
	_, err := os.Stat(filepath.Join(c.rootDir, criu.RestoreDir, criu.CheckpointImagesDir))
	return err == nil
}

// restoreError adds CRIU's own errors (its restore log) to a failed restore.
func restoreError(c *podContainer, err error) error {
	if err == nil || !isRestore(c) {
		return err
	}
	logs, _ := filepath.Glob(filepath.Join(c.rootDir, criu.RestoreDir, "work", "restore*.log"))
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
func (r *ContainerdRuntime) prepareRestore(ctx context.Context, ref string, req *runtime.ContainerConfig) (*runtime.ContainerConfig, *checkpointSource, error) {
	if _, err := criu.CriuUsable(); err != nil {
		return nil, nil, fmt.Errorf("restore from checkpoint archive %s: %w", ref, err)
	}
	src, err := openCheckpoint(ref)
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
	srcs := map[string]*checkpointSource{}
	cfgs := map[string]*runtime.ContainerConfig{}
	for _, cfg := range req.ContainerConfigs {
		name := cfg.GetMetadata().GetName()
		dir := filepath.Join(req.CheckpointPath, pod.Containers[name])
		if !filepath.IsLocal(pod.Containers[name]) {
			return "", nil, fmt.Errorf("%s: container %q is outside the checkpoint: %w", criu.CheckpointPodConfig, name, errdefs.ErrInvalidArgument)
		}
		src, err := openCheckpoint(dir)
		if err != nil {
			return "", nil, err
		}
		if src.archive {
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
func (r *ContainerdRuntime) validateRestorePod(req legacy.RestorePodRequest) (*podCheckpointFile, error) {
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
	b, err := os.ReadFile(filepath.Join(req.CheckpointPath, criu.CheckpointPodConfig))
	if err != nil {
		return nil, fmt.Errorf("%s is not a pod checkpoint: %w", req.CheckpointPath, errdefs.ErrInvalidArgument)
	}
	var pod podCheckpointFile
	if err := json.Unmarshal(b, &pod); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", criu.CheckpointPodConfig, err, errdefs.ErrInvalidArgument)
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
	return &pod, nil
}

// restored logs a container's restore and drops its copy of the checkpoint (CRIU's restore log
// stays, under restore/work, until the container is removed).
func restored(c *podContainer, d time.Duration) {
	dir := filepath.Join(c.rootDir, criu.RestoreDir)
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
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = mount.WithReadonlyTempMount(ctx, lower, func(lowerRoot string) error {
		return mount.WithReadonlyTempMount(ctx, upper, func(upperRoot string) error {
			return archive.WriteDiff(ctx, f, lowerRoot, upperRoot)
		})
	})
	return errors.Join(err, f.Close())
}

// applyRootfsDiff applies the checkpoint's file-system changes, when it has them, to the new
// container's snapshot key.
func (r *ContainerdRuntime) applyRootfsDiff(ctx context.Context, snapshotter, key, rootDir string) error {
	f, err := os.Open(filepath.Join(rootDir, criu.RestoreDir, criu.CheckpointRootfsDiff))
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
	return mount.WithTempMount(ctx, mounts, func(root string) error {
		if _, err := archive.Apply(ctx, root, f); err != nil {
			return fmt.Errorf("apply the checkpoint's file-system changes: %w", err)
		}
		return nil
	})
}
