package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
)

func TestCheckPrivateDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := checkTrustedDir("root_dir", dir); err != nil {
		t.Fatalf("0711 refused: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	err := checkTrustedDir("root_dir", dir)
	if err == nil || !strings.HasPrefix(err.Error(), "root_dir:") || !strings.Contains(err.Error(), "writable by group or others") {
		t.Fatalf("world-writable dir: %v", err)
	}
	if err := checkTrustedDir("state_dir", filepath.Join(dir, "absent")); err == nil || !strings.HasPrefix(err.Error(), "state_dir:") {
		t.Fatalf("absent dir: %v", err)
	}
}

// TestTrustedDirs: every directory whose content the daemon acts on as root (root_dir, where a
// restore directory makes StartContainer run CRIU; state_dir; the manifests; the NRI plugins and
// their configuration) must be root's and writable by no one else, and so must every directory
// above it (a sticky one like /tmp excepted): else anyone who can write there is root (issue 19,
// finding 9).
func TestTrustedDirs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the owner checks need root (to chown test directories to another user)")
	}
	base := t.TempDir() // under /tmp: sticky, root's
	mk := func(p string, mode os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mk(filepath.Join(base, "good", "root"), 0o711)
	groupWritable := mk(filepath.Join(base, "gw", "root"), 0o775)
	notRoot := mk(filepath.Join(base, "user", "root"), 0o700)
	if err := os.Chown(notRoot, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	openParent := mk(filepath.Join(base, "open"), 0o777)
	underOpen := mk(filepath.Join(openParent, "root"), 0o700)
	userParent := mk(filepath.Join(base, "home"), 0o755)
	if err := os.Chown(userParent, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	underUser := mk(filepath.Join(userParent, "root"), 0o700)
	sticky := mk(filepath.Join(base, "sticky"), 0o777|os.ModeSticky)
	underSticky := mk(filepath.Join(sticky, "root"), 0o700)
	link := filepath.Join(mk(filepath.Join(base, "links"), 0o755), "root")
	if err := os.Symlink(underOpen, link); err != nil {
		t.Fatal(err)
	}
	goodLink := filepath.Join(base, "links", "good")
	if err := os.Symlink(good, goodLink); err != nil {
		t.Fatal(err)
	}
	stickyLink := filepath.Join(base, "links", "sticky")
	if err := os.Symlink(sticky, stickyLink); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{good, underSticky, goodLink} {
		if err := checkTrustedDir("root_dir", dir); err != nil {
			t.Errorf("%s refused: %v", dir, err)
		}
	}
	for dir, want := range map[string]string{
		groupWritable: "writable by group or others",
		notRoot:       "owned by uid 1000",
		underOpen:     "writable by group or others",
		underUser:     "owned by uid 1000",
		link:          "writable by group or others",
		sticky:        "writable by group or others",
		stickyLink:    "writable by group or others",
	} {
		err := checkTrustedDir("root_dir", dir)
		if err == nil || !strings.HasPrefix(err.Error(), "root_dir:") || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want root_dir: ... %s", dir, err, want)
		}
	}
}

// TestCheckTrustedDirsAtStart: the daemon's start checks root_dir, state_dir, the manifests dir,
// the NRI plugin and config dirs and the CDI spec dirs, creating the first three (issue 19, finding 9).
func TestCheckTrustedDirsAtStart(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the owner checks need a root-owned test directory")
	}
	base := t.TempDir()
	cfg := config.Default()
	cfg.RootDir, cfg.StateDir = filepath.Join(base, "root"), filepath.Join(base, "state")
	cfg.StaticPodsDir = filepath.Join(base, "etc", "manifests")
	cfg.EnableNRI = true
	cfg.NRIPluginDir, cfg.NRIPluginConfigDir = filepath.Join(base, "nri", "plugins"), filepath.Join(base, "nri", "conf.d")
	cfg.EnableCDI, cfg.CDISpecDirs = true, []string{filepath.Join(base, "cdi", "etc"), filepath.Join(base, "cdi", "run")}
	if err := checkTrustedDirs(cfg); err != nil {
		t.Fatalf("fresh dirs (the NRI and CDI ones missing): %v", err)
	}
	for dir, want := range map[string]os.FileMode{cfg.RootDir: 0o711, cfg.StateDir: 0o711, cfg.StaticPodsDir: 0o700} {
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want mode %04o", dir, fi, err, want)
		}
	}
	for key, dir := range map[string]string{"static_pods_dir": cfg.StaticPodsDir, "nri_plugin_dir": cfg.NRIPluginDir,
		"nri_plugin_config_dir": cfg.NRIPluginConfigDir, "root_dir": cfg.RootDir, "state_dir": cfg.StateDir,
		"cdi_spec_dirs": cfg.CDISpecDirs[1]} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o775); err != nil {
			t.Fatal(err)
		}
		err := checkTrustedDirs(cfg)
		if err == nil || !strings.HasPrefix(err.Error(), key+":") {
			t.Errorf("group-writable %s: %v", key, err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A missing NRI dir whose parent others can write: they could make it.
	if err := os.Chmod(filepath.Join(base, "nri"), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(cfg.NRIPluginConfigDir); err != nil {
		t.Fatal(err)
	}
	if err := checkTrustedDirs(cfg); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("NRI dir under a world-writable parent: %v", err)
	}
}

// TestTrustedConfig: the config files and the drop-in dir decide what the daemon runs as root, so
// each must be root's and writable by no one else, on a trusted path; a missing drop-in dir is
// fine.
func TestTrustedConfig(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the owner checks need root (to chown test files to another user)")
	}
	dir := t.TempDir()
	main := filepath.Join(dir, "config.toml")
	dropDir := filepath.Join(dir, "config.d")
	drop := filepath.Join(dropDir, "50-x.toml")
	if err := os.Mkdir(dropDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{main, drop} {
		if err := os.WriteFile(f, []byte("log_level = \"info\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := checkTrustedConfig([]string{main, drop}, dropDir); err != nil {
		t.Fatalf("root's 0644 files in root's dirs refused: %v", err)
	}
	if err := checkTrustedConfig([]string{main}, filepath.Join(dir, "absent.d")); err != nil {
		t.Fatalf("a missing drop-in dir refused: %v", err)
	}
	link := filepath.Join(dir, "link.toml")
	if err := os.Symlink(main, link); err != nil {
		t.Fatal(err)
	}
	if err := checkTrustedConfig([]string{link}, ""); err != nil {
		t.Fatalf("a symlink to a trusted file refused: %v", err)
	}

	refused := func(what, want string, files []string, configDir string) {
		t.Helper()
		err := checkTrustedConfig(files, configDir)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", what, err, want)
		}
	}
	os.Chmod(drop, 0o666)
	refused("a world-writable drop-in", "writable by group or others", []string{main, drop}, dropDir)
	os.Chmod(drop, 0o644)
	os.Chown(drop, 1000, 1000)
	refused("a drop-in of another user", "owned by uid 1000", []string{main, drop}, dropDir)
	os.Chown(drop, 0, 0)
	os.Chmod(dropDir, 0o777)
	refused("a world-writable drop-in dir", "writable by group or others", []string{main}, dropDir)
	refused("a file in a world-writable dir", "writable by group or others", []string{drop}, "")
	os.Chmod(dropDir, 0o755)
	// A symlink into a dir others can write: the target's dir counts.
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o755)
	target := filepath.Join(open, "c.toml")
	os.WriteFile(target, nil, 0o644)
	os.Chmod(open, 0o777)
	link2 := filepath.Join(dir, "link2.toml")
	os.Symlink(target, link2)
	refused("a symlink to a file in a world-writable dir", "writable by group or others", []string{link2}, "")
	os.Mkdir(filepath.Join(dir, "adir.toml"), 0o755)
	refused("a directory as a config file", "not a regular file", []string{filepath.Join(dir, "adir.toml")}, "")
}
