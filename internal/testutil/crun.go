package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Crun is the crun binary a runtime handler can run on this host, and skips the test when crun is
// not installed (hack/setup.sh installs Debian's crun package). crun (1.8.1 as later ones)
// refuses to make cgroups on a hybrid host whose cgroup v2 hierarchy holds controllers ("cgroups
// in hybrid mode not supported, drop all controllers from cgroupv2"), whatever its cgroup manager:
// there it runs through a wrapper that hides the v2 hierarchy in a mount namespace of its own, so
// crun sees a cgroup v1 host (the host's mounts are not touched). The test logs it.
func Crun(t *testing.T) string {
	t.Helper()
	crun, err := exec.LookPath("crun")
	if err != nil {
		t.Skip("crun is not installed (hack/setup.sh installs Debian's crun package)")
	}
	b, err := os.ReadFile("/sys/fs/cgroup/unified/cgroup.controllers")
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return crun
	}
	t.Logf("hybrid cgroups with controllers %q in the v2 hierarchy: crun runs with /sys/fs/cgroup/unified unmounted in its own mount namespace", strings.TrimSpace(string(b)))
	w := filepath.Join(t.TempDir(), "crun")
	script := "#!/bin/sh\nexec unshare -m --propagation slave sh -c 'umount /sys/fs/cgroup/unified && exec " + crun + " \"$@\"' crun \"$@\"\n"
	if err := os.WriteFile(w, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return w
}
