package checkpointarchive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Source is a checkpoint (an archive, or a directory of a pod checkpoint) that a new container
// is restored from.
type Source struct {
	Path    string // the archive, or the container's directory in a pod checkpoint
	Archive bool
	Config  Config
	// ContainerConfig is the checkpointed container's CRI config.
	ContainerConfig *runtime.ContainerConfig
}

// Open reads the config of the checkpoint at path (an archive or a directory).
func Open(path string) (*Source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %v: %w", path, err, errdefs.ErrInvalidArgument)
	}
	src := &Source{Path: path, Archive: fi.Mode().IsRegular()}
	var b []byte
	if src.Archive {
		b, err = readTarFile(path, ConfigDump)
	} else {
		b, err = os.ReadFile(filepath.Join(path, ConfigDump))
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s has no %s: %v: %w", path, ConfigDump, err, errdefs.ErrInvalidArgument)
	}
	if err := json.Unmarshal(b, &src.Config); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %s: %v: %w", path, ConfigDump, err, errdefs.ErrInvalidArgument)
	}
	if src.Config.ImageID == "" || len(src.Config.ContainerConfig) == 0 {
		return nil, fmt.Errorf("checkpoint %s: %s names no image or container config: %w", path, ConfigDump, errdefs.ErrInvalidArgument)
	}
	src.ContainerConfig = &runtime.ContainerConfig{}
	if err := protojson.Unmarshal(src.Config.ContainerConfig, src.ContainerConfig); err != nil {
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

// Install copies the checkpoint into dst, a new directory, writing at most maxSize bytes (0: no
// maximum but the source's own size), and checks that it has CRIU images.
func (src *Source) Install(ctx context.Context, dst string, maxSize int64) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	var err error
	if src.Archive {
		err = Extract(ctx, src.Path, dst, maxSize)
	} else {
		err = copyTree(ctx, src.Path, dst, maxSize)
	}
	if err != nil {
		return fmt.Errorf("copy checkpoint %s: %w", src.Path, err)
	}
	if fi, err := os.Stat(filepath.Join(dst, ImagesDir, "inventory.img")); err != nil || !fi.Mode().IsRegular() {
		return fmt.Errorf("checkpoint %s has no CRIU images (%s/inventory.img): %w", src.Path, ImagesDir, errdefs.ErrInvalidArgument)
	}
	return nil
}

// Extract extracts the checkpoint archive at path into the directory dst. What it
// writes is bounded by the archive's size and by maxSize (when positive).
func Extract(ctx context.Context, path, dst string, maxSize int64) error {
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

// ReadPodDump reads the pod.dump of the pod checkpoint dir; one that is missing or does not
// decode is InvalidArgument.
func ReadPodDump(dir string) (*PodConfig, error) {
	b, err := os.ReadFile(filepath.Join(dir, PodDump))
	if err != nil {
		return nil, fmt.Errorf("%s is not a pod checkpoint: %w", dir, errdefs.ErrInvalidArgument)
	}
	var pod PodConfig
	if err := json.Unmarshal(b, &pod); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", PodDump, err, errdefs.ErrInvalidArgument)
	}
	return &pod, nil
}

// ContainerDir is the directory of the container name's checkpoint in the pod checkpoint dir; one
// that pod.dump places outside dir is InvalidArgument.
func (p *PodConfig) ContainerDir(dir, name string) (string, error) {
	rel := p.Containers[name]
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("%s: container %q is outside the checkpoint: %w", PodDump, name, errdefs.ErrInvalidArgument)
	}
	return filepath.Join(dir, rel), nil
}

// ApplyRootfsDiff applies a checkpoint's file-system changes (its rootfs-diff.tar, read from diff)
// to the file system of mounts.
func ApplyRootfsDiff(ctx context.Context, diff io.Reader, mounts []mount.Mount) error {
	return mount.WithTempMount(ctx, mounts, func(root string) error {
		if _, err := archive.Apply(ctx, root, diff); err != nil {
			return fmt.Errorf("apply the checkpoint's file-system changes: %w", err)
		}
		return nil
	})
}
