// Package packaging_test checks `make install`: the files it writes under DESTDIR and PREFIX, and
// that systemd accepts the unit.
package packaging_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
)

func makeInstall(t *testing.T, destdir string, vars ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on PATH: make install cannot run")
	}
	args := append([]string{"-C", "..", "--no-print-directory", "install", "DESTDIR=" + destdir}, vars...)
	out, err := exec.Command("make", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("make %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestMakeInstall: make install puts the binary under PREFIX, the unit with its paths filled in, the
// config dir and the default config under DESTDIR, and keeps a config that is there already.
func TestMakeInstall(t *testing.T) {
	root := t.TempDir()
	makeInstall(t, root, "PREFIX=/usr")

	bin := filepath.Join(root, "usr/bin/cri-shim")
	if st, err := os.Stat(bin); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("binary: %v %v", st, err)
	}
	if out, err := exec.Command(bin, "version").Output(); err != nil || !strings.HasPrefix(string(out), "cri-shim ") {
		t.Fatalf("installed binary: %q %v", out, err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/cri-shim.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"Type=notify", "Delegate=yes", "KillMode=process", "Restart=always", "OOMScoreAdjust=-999",
		"After=network.target local-fs.target containerd.service", "Wants=containerd.service",
		"ExecStart=/usr/bin/cri-shim --config /etc/cri-shim/config.toml", "ExecReload=/bin/kill -HUP $MAINPID",
		"WantedBy=multi-user.target",
	} {
		if !bytes.Contains(unit, []byte("\n"+line+"\n")) {
			t.Errorf("unit lacks the line %q", line)
		}
	}
	if bytes.Contains(unit, []byte("@")) {
		t.Errorf("unit keeps a placeholder:\n%s", unit)
	}
	if st, err := os.Stat(filepath.Join(root, "etc/cri-shim/config.d")); err != nil || !st.IsDir() {
		t.Errorf("config dir: %v", err)
	}

	// The default config is the packaged one, and it loads and validates: external mode.
	confPath := filepath.Join(root, "etc/cri-shim/config.toml")
	installed, err := os.ReadFile(confPath)
	if err != nil {
		t.Fatal(err)
	}
	packaged, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(installed, packaged) {
		t.Fatal("installed config differs from packaging/config.toml")
	}
	cfg, err := config.Load(confPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	if cfg.ContainerdMode != config.ModeExternal || cfg.ConfigDir != filepath.Join(root, "etc/cri-shim/config.d") {
		t.Fatalf("default config: containerd_mode %q, config_dir %q", cfg.ContainerdMode, cfg.ConfigDir)
	}

	// A config of the operator's survives the next install.
	mine := []byte("log_level = \"debug\"\n")
	if err := os.WriteFile(confPath, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	out := makeInstall(t, root, "PREFIX=/usr")
	if got, _ := os.ReadFile(confPath); !bytes.Equal(got, mine) || !strings.Contains(out, "kept the existing") {
		t.Fatalf("existing config replaced: %q; make said:\n%s", got, out)
	}
}

// TestUnitVerifies: systemd-analyze verify accepts the installed unit in a root holding what its
// commands run, and rejects one with a bad setting (so its silence means something).
func TestUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("no systemd-analyze on PATH: the unit cannot be verified here")
	}
	root := t.TempDir()
	makeInstall(t, root) // PREFIX /usr/local
	// ExecReload's /bin/kill must exist in the root too.
	kill, err := exec.LookPath("kill")
	if err != nil {
		t.Skip("no kill binary to put in the test root")
	}
	data, err := os.ReadFile(kill)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/kill"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	unit := "/usr/local/lib/systemd/system/cri-shim.service"
	verify := func() (string, error) {
		// --recursive-errors=no: the test root holds no systemd units (sysinit.target, ...) for the
		// unit's implicit dependencies; the unit itself is checked in full. --man=no: no man pages.
		out, err := exec.Command(analyze, "verify", "--man=no", "--recursive-errors=no", "--root="+root, unit).CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	path := filepath.Join(root, unit)
	good, _ := os.ReadFile(path)
	bad := bytes.Replace(good, []byte("KillMode=process"), []byte("KillMode=proces"), 1)
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err == nil && !strings.Contains(out, "proces") {
		t.Fatalf("a bad KillMode passed systemd-analyze verify:\n%s", out)
	}
	if err := os.WriteFile(path, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, "usr/local/bin/cri-shim")); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err == nil {
		t.Fatalf("a unit whose ExecStart binary is absent passed verify:\n%s", out)
	}
}
