package kuberuntime

import (
	"errors"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
)

// The output of Debian's CRIU 3.17.1 on a 6.18 kernel.
const criuCheckOutput = `Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds
Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable
Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.
Error (criu/crtools.c:260): Could not initialize kernel features detection.
`

func TestCRIUOutput(t *testing.T) {
	if v := criu.ParseCRIUVersion("Version: 3.17.1\n"); v != "3.17.1" {
		t.Errorf("version %q", v)
	}
	if v := criu.ParseCRIUVersion("Version: 4.1\nGitID: v4.1\n"); v != "4.1" {
		t.Errorf("version %q", v)
	}
	got := criu.CriuErrors("Warn (criu/x.c:1): something\n"+criuCheckOutput, errors.New("exit status 1"))
	if !strings.HasPrefix(got, "Error (criu/vdso.c:381): vdso: Unexpected rt vDSO area bounds; ") || strings.Contains(got, "Warn") {
		t.Errorf("errors %q", got)
	}
	if got := criu.CriuErrors("Looks good.\n", errors.New("exit status 1")); got != "Looks good." {
		t.Errorf("no error lines: %q", got)
	}
	if got := criu.CriuErrors("", errors.New("exit status 1")); got != "exit status 1" {
		t.Errorf("no output: %q", got)
	}
}

func TestCRIUUsable(t *testing.T) {
	saved := criu.CheckCRIU
	t.Cleanup(func() { criu.CheckCRIU = saved })
	criu.CheckCRIU = func() criu.CriuInfo {
		return criu.CriuInfo{Path: "/usr/sbin/criu", Err: errors.New("criu 3.17.1 check failed: vdso")}
	}
	if _, err := criu.CriuUsable(); !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "vdso") {
		t.Fatalf("broken CRIU: %v", err)
	}
	criu.CheckCRIU = func() criu.CriuInfo { return criu.CriuInfo{Path: "/usr/sbin/criu", Version: "4.1"} }
	if info, err := criu.CriuUsable(); err != nil || info.Version != "4.1" {
		t.Fatalf("working CRIU: %+v %v", info, err)
	}
}
