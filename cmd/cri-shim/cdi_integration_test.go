//go:build integration

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestDaemonCDIConfig: cdi_spec_dirs reaches the runtime (it loads the spec files there) and the
// verbose Status shows enable_cdi and cdi_spec_dirs.
func TestDaemonCDIConfig(t *testing.T) {
	bin := buildDaemon(t)
	dir, err := os.MkdirTemp("/tmp", "crishim-it-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.UnmountAll(dir); os.RemoveAll(dir) }) // the shared pause rootfs stays mounted by design
	cdiDir := filepath.Join(dir, "cdi")
	if err := os.MkdirAll(cdiDir, 0o755); err != nil {
		t.Fatal(err)
	}
	spec := "cdiVersion: \"0.6.0\"\nkind: vendor.example.com/device\ndevices:\n- name: foo\n  containerEdits:\n    env: [\"FOO=bar\"]\n"
	if err := os.WriteFile(filepath.Join(cdiDir, "vendor.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, bin, dir, "--cdi-spec-dir", cdiDir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := criClient(t, d.socket).Status(ctx, &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"enable_cdi":true`, `"cdi_spec_dirs":["` + cdiDir + `"]`} {
		if !strings.Contains(s.Info["config"], want) {
			t.Errorf("verbose config lacks %s: %s", want, s.Info["config"])
		}
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	if want := `msg="CDI devices" devices=1 dirs=` + cdiDir; !strings.Contains(d.out.String(), want) {
		t.Fatalf("the daemon's log lacks %q:\n%s", want, d.out)
	}
}
