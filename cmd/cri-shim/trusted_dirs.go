package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
)

// The daemon acts as root on what it finds in some directories: root_dir (pod and container
// files; a container's restore directory makes StartContainer run CRIU as root), state_dir
// (network namespaces, containerd's state and socket), the manifests directory (privileged
// pods), the NRI plugins it executes and their configuration, the CDI spec files (their hooks run
// as root on the host, their mounts bring any host path into a container). Whoever can write one of them, or
// replace it (write a directory above it), is root. So each must be owned by root and writable
// by no one else, and so must every directory on its path, but for sticky ones like /tmp, where
// others cannot move or remove root's entries. Checked once, at start.

// trustedOwner is the owner every trusted directory must have: root.
const trustedOwner = 0

// trustedDir is one directory the daemon trusts: its config key, its path, and whether the
// daemon creates it (with mode) when it is missing; one it does not create may be missing, as
// long as the directories above it are trusted (no one else can make it).
type trustedDir struct {
	key, dir string
	create   bool
	mode     os.FileMode
}

// trustedDirs are the directories of cfg the daemon trusts.
func trustedDirs(cfg config.Config) []trustedDir {
	dirs := []trustedDir{
		{key: "root_dir", dir: cfg.RootDir, create: true, mode: 0o711},
		{key: "state_dir", dir: cfg.StateDir, create: true, mode: 0o711},
	}
	if cfg.StaticPodsDir != "" {
		dirs = append(dirs, trustedDir{key: "static_pods_dir", dir: cfg.StaticPodsDir, create: true, mode: 0o700})
	}
	if cfg.EnableNRI {
		for _, d := range []trustedDir{{key: "nri_plugin_dir", dir: cfg.NRIPluginDir}, {key: "nri_plugin_config_dir", dir: cfg.NRIPluginConfigDir}} {
			if d.dir != "" {
				dirs = append(dirs, d)
			}
		}
	}
	if cfg.EnableCDI {
		for _, d := range cfg.CDISpecDirs {
			dirs = append(dirs, trustedDir{key: "cdi_spec_dirs", dir: d})
		}
	}
	return dirs
}

// checkTrustedDirs creates the trusted directories the daemon makes and checks them all.
func checkTrustedDirs(cfg config.Config) error {
	for _, d := range trustedDirs(cfg) {
		if d.create {
			if err := os.MkdirAll(d.dir, d.mode); err != nil {
				return fmt.Errorf("%s: %w", d.key, err)
			}
		}
		if err := checkTrustedPath(d.key, d.dir, !d.create); err != nil {
			return err
		}
	}
	return nil
}

// checkTrustedDir checks an existing directory the daemon trusts.
func checkTrustedDir(key, dir string) error { return checkTrustedPath(key, dir, false) }

// checkTrustedPath checks dir and every directory on its path (the targets of symlinks on it
// included) for the owner and mode the daemon trusts; mayBeMissing: a missing dir is fine when
// the directories above it are.
func checkTrustedPath(key, dir string, mayBeMissing bool) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("%s: %q is not an absolute path", key, dir)
	}
	resolved, err := walkTrusted(key, dir, filepath.Clean(dir), 0)
	if mayBeMissing && errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	// The directory itself (where symlinks led): no one else may write it, sticky or not.
	return checkTrustedEntry(key, dir, resolved, true)
}

// walkTrusted checks the components of the absolute path p one by one from /, following
// symlinks (their targets are checked the same way), and returns the resolved path.
func walkTrusted(key, dir, p string, depth int) (string, error) {
	if depth > 40 {
		return "", fmt.Errorf("%s: %s: too many levels of symbolic links", key, dir)
	}
	cur := "/"
	if err := checkTrustedEntry(key, dir, cur, false); err != nil {
		return "", err
	}
	for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if c == "" {
			continue
		}
		next := filepath.Join(cur, c)
		fi, err := os.Lstat(next)
		if err != nil {
			return "", fmt.Errorf("%s: %w", key, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(next)
			if err != nil {
				return "", fmt.Errorf("%s: %w", key, err)
			}
			if !filepath.IsAbs(target) {
				target = filepath.Join(cur, target)
			}
			if cur, err = walkTrusted(key, dir, filepath.Clean(target), depth+1); err != nil {
				return "", err
			}
			continue
		}
		if err := checkTrustedEntry(key, dir, next, false); err != nil {
			return "", err
		}
		cur = next
	}
	return cur, nil
}

// checkTrustedEntry checks one directory on the path of dir: owned by root, writable by no one
// else; one above dir (not final) may be writable by others if it is sticky.
func checkTrustedEntry(key, dir, p string, final bool) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	what := p
	if filepath.Clean(p) != filepath.Clean(dir) {
		what = fmt.Sprintf("%s (on the path of %s)", p, dir)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: %s is not a directory", key, what)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != trustedOwner {
		return fmt.Errorf("%s: %s is owned by uid %d, not root: refusing to start; chown root it", key, what, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 && (final || fi.Mode()&os.ModeSticky == 0) {
		return fmt.Errorf("%s: %s is writable by group or others (mode %04o): refusing to start; chmod go-w it", key, what, fi.Mode().Perm())
	}
	return nil
}

// checkTrustedConfig checks the config files the daemon read and its drop-in dir: they decide
// what it runs as root (runtime binaries, hooks, plugin dirs), so they are trusted as the
// directories above: each file root's, writable by no one else, on a trusted path (through its
// symlinks too), and the drop-in dir likewise, so that no one else can add a file to it. A missing
// drop-in dir is fine. Checked at start and at every reload.
func checkTrustedConfig(files []string, configDir string) error {
	for _, f := range files {
		if err := checkTrustedFile("config file", f); err != nil {
			return err
		}
	}
	if configDir != "" {
		if err := checkTrustedPath("config_dir", configDir, true); err != nil {
			return err
		}
	}
	return nil
}

// checkTrustedFile checks a file the daemon trusts: its directory's path and, when it is a
// symlink, its target's as checkTrustedPath does, and the file itself: a regular file owned by
// root and writable by no one else.
func checkTrustedFile(key, file string) error {
	if !filepath.IsAbs(file) {
		abs, err := filepath.Abs(file)
		if err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		file = abs
	}
	real, err := filepath.EvalSymlinks(file)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	for _, dir := range []string{filepath.Dir(file), filepath.Dir(real)} {
		if err := checkTrustedPath(key, dir, false); err != nil {
			return fmt.Errorf("%w (the directory of %s)", err, file)
		}
	}
	fi, err := os.Stat(real)
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %s is not a regular file", key, file)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != trustedOwner {
		return fmt.Errorf("%s: %s is owned by uid %d, not root: refusing it; chown root it", key, file, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s: %s is writable by group or others (mode %04o): refusing it; chmod go-w it", key, file, fi.Mode().Perm())
	}
	return nil
}
