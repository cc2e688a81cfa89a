package checkpointarchive

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Config is config.dump.
type Config struct {
	ID              string          `json:"id"`
	Name            string          `json:"name"`
	SandboxID       string          `json:"sandbox_id"`
	PodName         string          `json:"pod_name,omitempty"`
	PodNamespace    string          `json:"pod_namespace,omitempty"`
	PodUID          string          `json:"pod_uid,omitempty"`
	RootfsImageName string          `json:"rootfs_image_name"`
	RootfsImageRef  string          `json:"rootfs_image_ref"`
	ImageID         string          `json:"image_id"`
	OCIRuntime      string          `json:"oci_runtime"`
	CRIUVersion     string          `json:"criu_version"`
	CreatedAt       time.Time       `json:"created_at"`
	CheckpointedAt  time.Time       `json:"checkpointed_at"`
	ContainerConfig json.RawMessage `json:"container_config"`
}

// PodConfig is pod.dump.
type PodConfig struct {
	SandboxID      string            `json:"sandbox_id"`
	RuntimeHandler string            `json:"runtime_handler"`
	SandboxConfig  json.RawMessage   `json:"sandbox_config"`
	Containers     map[string]string `json:"containers"` // name -> the directory of its checkpoint
	CheckpointedAt time.Time         `json:"checkpointed_at"`
}

// CheckLocation checks a checkpoint archive's location: absolute, in an existing directory, not a
// directory itself, and nothing there yet: an archive never replaces a file (AlreadyExists, as
// CreateContainer for a name in use; the kubelet names each checkpoint after its time). The write
// refuses again (Write), whatever appears there meanwhile.
func CheckLocation(location string) error {
	if location == "" || !filepath.IsAbs(location) {
		return fmt.Errorf("checkpoint location %q must be an absolute path: %w", location, errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Stat(filepath.Dir(location)); err != nil || !fi.IsDir() {
		return fmt.Errorf("checkpoint location %q: its directory does not exist: %w", location, errdefs.ErrInvalidArgument)
	}
	if fi, err := os.Stat(location); err == nil && fi.IsDir() {
		return fmt.Errorf("checkpoint location %q is a directory: %w", location, errdefs.ErrInvalidArgument)
	}
	if _, err := os.Lstat(location); err == nil {
		return fmt.Errorf("checkpoint location %q exists: a checkpoint never replaces a file: %w", location, errdefs.ErrAlreadyExists)
	}
	return nil
}

// Write writes the tree under dir (directories and regular files) as a tar archive to
// location, atomically: a partial archive never appears there. It returns the archive's size.
// The location's directory is opened once and everything happens relative to it (a directory
// others can write to may have its entries swapped for symlinks meanwhile), and the archive never
// replaces what is at the location: AlreadyExists.
func Write(dir, location string) (int64, error) {
	parent, err := os.OpenFile(filepath.Dir(location), os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer parent.Close()
	pfd := int(parent.Fd())
	base := filepath.Base(location)
	var tmpName string
	var tfd int
	for range 100 {
		tmpName = "." + base + ".tmp-" + strconv.FormatUint(rand.Uint64(), 36)
		tfd, err = unix.Openat(pfd, tmpName, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != unix.EEXIST {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("create a temporary file in %s: %w", filepath.Dir(location), err)
	}
	tmp := os.NewFile(uintptr(tfd), filepath.Join(filepath.Dir(location), tmpName))
	placed := false
	defer func() {
		tmp.Close()
		if !placed {
			_ = unix.Unlinkat(pfd, tmpName, 0)
		}
	}()
	tw := tar.NewWriter(tmp)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			return nil // CRIU writes none; a stray socket or link stays out
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if fi.IsDir() {
			hdr.Name += "/"
		}
		hdr.Uname, hdr.Gname = "", ""
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if fi.IsDir() {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err != nil {
		return 0, err
	}
	fi, err := tmp.Stat()
	if err != nil {
		return 0, err
	}
	if err := placeNoReplace(pfd, tmpName, base); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return 0, fmt.Errorf("checkpoint location %q exists: a checkpoint never replaces a file: %w", location, errdefs.ErrAlreadyExists)
		}
		return 0, err
	}
	placed = true
	return fi.Size(), nil
}

// placeNoReplace renames name to newName in the directory dirfd unless newName exists (EEXIST):
// renameat2 RENAME_NOREPLACE, or, on a file system without it, a hard link and an unlink.
func placeNoReplace(dirfd int, name, newName string) error {
	err := unix.Renameat2(dirfd, name, dirfd, newName, unix.RENAME_NOREPLACE)
	if err != unix.EINVAL && err != unix.ENOSYS {
		return err
	}
	if err := unix.Linkat(dirfd, name, dirfd, newName, 0); err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, 0)
}

// IsArchive tells whether an image reference is a local checkpoint archive (CRI-O's and
// containerd's way to restore a container: CreateContainer with the archive as its image).
func IsArchive(ref string) bool {
	if !filepath.IsAbs(ref) {
		return false
	}
	fi, err := os.Stat(ref)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	f, err := os.Open(ref)
	if err != nil {
		return false
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err != nil {
			return false
		}
		if hdr.Name == ConfigDump {
			return true
		}
	}
}

// EmptyDir tells whether the directory of root has no entries.
func EmptyDir(root *os.Root) (bool, error) {
	d, err := root.Open(".")
	if err != nil {
		return false, err
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if err == io.EOF {
		return true, nil
	}
	return len(names) == 0 && err == nil, err
}

// CopyInto copies the entries names of the directory src (directories and regular files, in
// that order) into dst. Nothing is replaced (AlreadyExists) and nothing resolves outside dst;
// on failure, what it copied is removed.
func CopyInto(src string, dst *os.Root, names []string) (retErr error) {
	var made []string
	defer func() {
		if retErr != nil {
			for _, n := range made {
				if err := dst.RemoveAll(n); err != nil {
					logrus.WithError(err).WithField("entry", n).Warn("remove a partial pod checkpoint")
				}
			}
		}
	}()
	exists := func(err error) error {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: a checkpoint never replaces a file: %w", err, errdefs.ErrAlreadyExists)
		}
		return err
	}
	for _, name := range names {
		top := filepath.Join(src, name)
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			switch {
			case d.IsDir():
				if err := dst.Mkdir(rel, 0o700); err != nil {
					return exists(err)
				}
				if p == top {
					made = append(made, name)
				}
				return nil
			case d.Type().IsRegular():
				in, err := os.Open(p)
				if err != nil {
					return err
				}
				defer in.Close()
				out, err := dst.OpenFile(rel, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
				if err != nil {
					return exists(err)
				}
				if p == top {
					made = append(made, name)
				}
				_, err = io.Copy(out, in)
				if err == nil {
					err = out.Sync()
				}
				return errors.Join(err, out.Close())
			}
			return nil // CRIU writes no other kind of file; a stray socket or link stays out
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// WriteDumps writes config.dump and spec.dump of a container checkpoint into dir.
func WriteDumps(dir string, cfg Config, spec any) error {
	for name, v := range map[string]any{ConfigDump: cfg, SpecDump: spec} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// WritePodDump writes pod.dump of a pod checkpoint into dir.
func WritePodDump(dir string, pod PodConfig) error {
	b, err := json.MarshalIndent(pod, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, PodDump), b, 0o600)
}

// WriteRootfsDiff writes the changes of the file system upper over lower to path (a new file), as
// an OCI layer tar; both are mounted read-only.
func WriteRootfsDiff(ctx context.Context, lower, upper []mount.Mount, path string) error {
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
