package crilog

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrEscapes is returned when a log path leads out of its log directory.
var ErrEscapes = errors.New("crilog: log path escapes the log directory")

// ErrNotRegular is returned when something other than a regular file sits at the log path: a
// FIFO (whose open for writing blocks until a reader comes, and whose writes block once the reader
// stops reading), a device, a symlink, a directory. The kubelet makes none of these; a container
// with its log directory mounted can.
var ErrNotRegular = errors.New("crilog: log path is not a regular file")

func (w *Writer) open() (*os.File, error) {
	if w.dir == "" {
		dir := filepath.Dir(w.path)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("crilog: create log dir: %w", err)
		}
		// O_DIRECTORY: a FIFO swapped in for the directory is not opened (which would block).
		d, err := os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY, 0)
		if err != nil {
			return nil, fmt.Errorf("crilog: open log dir: %w", err)
		}
		defer d.Close()
		return openRegularAt(d, filepath.Base(w.path), w.path)
	}
	rel, err := filepath.Rel(w.dir, w.path)
	if err != nil || !filepath.IsLocal(rel) {
		return nil, fmt.Errorf("%w: %s is not inside %s", ErrEscapes, w.path, w.dir)
	}
	if err := os.MkdirAll(w.dir, 0o755); err != nil {
		return nil, fmt.Errorf("crilog: create log dir: %w", err)
	}
	root, err := os.OpenRoot(w.dir)
	if err != nil {
		return nil, fmt.Errorf("crilog: open log dir: %w", err)
	}
	defer root.Close()
	d := filepath.Dir(rel)
	if d != "." {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return nil, confined(w.path, err)
		}
	}
	// The directory is resolved inside the root (symlinks in it may not lead out); the file in
	// it is then opened relative to it, without following a symlink.
	parent, err := root.OpenFile(d, os.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, confined(w.path, err)
	}
	defer parent.Close()
	return openRegularAt(parent, filepath.Base(rel), w.path)
}

// openRegularAt opens the regular file name in dir for appending, creating it when missing;
// anything else there is refused (ErrNotRegular) without being opened for writing: no open
// blocks on a FIFO without reader, no device is opened (an open can have effects: a tty becomes
// the daemon's controlling terminal), no symlink is followed.
func openRegularAt(dir *os.File, name, path string) (*os.File, error) {
	dfd := int(dir.Fd())
	for range 3 {
		// A new file, regular since created here.
		fd, err := unix.Openat(dfd, name, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_EXCL|
			unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0o640)
		if err == nil {
			return logFile(fd, path)
		}
		if !errors.Is(err, unix.EEXIST) {
			return nil, &os.PathError{Op: "crilog: create", Path: path, Err: err}
		}
		// An existing one: its type is read through an O_PATH descriptor, which opens nothing (no
		// FIFO or device open, no symlink followed); only a regular file is then opened for
		// writing, through that descriptor (the same inode, whatever is renamed meanwhile).
		pfd, err := unix.Openat(dfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) {
			continue // removed meanwhile: create it
		}
		if err != nil {
			return nil, &os.PathError{Op: "crilog: open", Path: path, Err: err}
		}
		f, err := reopenRegular(pfd, dfd, name, path)
		unix.Close(pfd)
		return f, err
	}
	return nil, fmt.Errorf("crilog: open %s: removed again and again while opened", path)
}

// reopenRegular opens for appending the file of the O_PATH descriptor pfd (name in dfd) when it is
// a regular file.
func reopenRegular(pfd, dfd int, name, path string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, &os.PathError{Op: "crilog: stat", Path: path, Err: err}
	}
	if err := checkRegular(st.Mode, path); err != nil {
		return nil, err
	}
	const flags = unix.O_WRONLY | unix.O_APPEND | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	fd, err := unix.Open(fmt.Sprintf("/proc/self/fd/%d", pfd), flags, 0)
	if errors.Is(err, unix.ENOENT) {
		// No /proc: opened by name, still without blocking (O_NONBLOCK), and checked below.
		fd, err = unix.Openat(dfd, name, flags|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "crilog: open", Path: path, Err: err}
	}
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil || st2.Dev != st.Dev || st2.Ino != st.Ino {
		unix.Close(fd)
		if err == nil {
			err = checkRegular(st2.Mode, path)
		}
		if err == nil {
			err = fmt.Errorf("crilog: open %s: replaced while opened", path)
		}
		return nil, err
	}
	return logFile(fd, path)
}

// logFile makes an *os.File of fd, a regular file opened with O_NONBLOCK (in case it was not one):
// the flag is cleared, as it means nothing for a regular file and the os package handles the file
// as a blocking one.
func logFile(fd int, path string) (*os.File, error) {
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "crilog: fcntl", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// checkRegular tells ErrNotRegular, naming the file type, unless mode is a regular file's.
func checkRegular(mode uint32, path string) error {
	if mode&unix.S_IFMT == unix.S_IFREG {
		return nil
	}
	kind := map[uint32]string{
		unix.S_IFIFO: "FIFO", unix.S_IFLNK: "symlink", unix.S_IFCHR: "character device",
		unix.S_IFBLK: "block device", unix.S_IFDIR: "directory", unix.S_IFSOCK: "socket",
	}[mode&unix.S_IFMT]
	if kind == "" {
		kind = fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
	}
	return fmt.Errorf("%w: %s is a %s", ErrNotRegular, path, kind)
}

// confined reports an os.Root error, as ErrEscapes when the path left the root.
func confined(path string, err error) error {
	if strings.Contains(err.Error(), "escapes from parent") {
		return fmt.Errorf("%w: %s: %v", ErrEscapes, path, err)
	}
	return fmt.Errorf("crilog: open %s: %w", path, err)
}

// CheckInDir tells whether rel, relative to dir, stays inside dir as far as it exists now: no
// `..` out of it, no symlink on the way leading out of it; and the file itself, when it exists, is
// a regular file (not a FIFO, device or symlink: ErrNotRegular).
func CheckInDir(dir, rel string) error {
	if !filepath.IsLocal(rel) {
		return fmt.Errorf("%w: %q", ErrEscapes, rel)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil // no log dir yet: nothing in it can lead out
	}
	defer root.Close()
	// Stat of each prefix follows symlinks inside the root and fails on one leading out.
	parts := strings.Split(filepath.Clean(rel), string(filepath.Separator))
	p := ""
	for i, part := range parts {
		p = filepath.Join(p, part)
		if _, err := root.Stat(p); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return confined(filepath.Join(dir, rel), err)
			}
			if i < len(parts)-1 {
				return nil // created inside dir when the log is opened
			}
		}
	}
	fi, err := root.Lstat(p)
	if err != nil {
		return nil // (a dangling symlink is seen by Lstat)
	}
	return checkRegular(unixMode(fi.Mode()), filepath.Join(dir, rel))
}

// unixMode is the S_IFMT bits of a FileMode.
func unixMode(m fs.FileMode) uint32 {
	switch {
	case m.IsRegular():
		return unix.S_IFREG
	case m&fs.ModeNamedPipe != 0:
		return unix.S_IFIFO
	case m&fs.ModeSymlink != 0:
		return unix.S_IFLNK
	case m&fs.ModeCharDevice != 0:
		return unix.S_IFCHR
	case m&fs.ModeDevice != 0:
		return unix.S_IFBLK
	case m.IsDir():
		return unix.S_IFDIR
	case m&fs.ModeSocket != 0:
		return unix.S_IFSOCK
	}
	return 0
}
