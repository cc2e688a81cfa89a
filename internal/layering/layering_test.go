// Package layering holds the test of the layout's import boundaries: the model imports nothing of
// containerd, the CRI server and the standalone manager reach containerd only through the model,
// and the leaves below kuberuntime never import it.
package layering

import (
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
)

const module = "github.com/cri-shim/cri-shim/"

// deps returns the packages pkg imports, directly or not ("go list -deps").
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	goBin := filepath.Join(goruntime.GOROOT(), "bin", "go")
	out, err := exec.Command(goBin, "list", "-deps", module+pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestImportBoundaries(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: go list of the module is slow")
	}
	for _, tc := range []struct {
		pkg string
		// forbidden tells why a dependency must not be there ("" when it may be).
		forbidden func(dep string) string
	}{
		{"legacy", func(d string) string {
			if strings.HasPrefix(d, "github.com/containerd/") {
				return "the model imports nothing of containerd"
			}
			return ""
		}},
		{"server", func(d string) string {
			switch {
			case strings.HasPrefix(d, module+"kuberuntime"), d == module+"sandbox", strings.HasPrefix(d, module+"imageservice") && d != module+"imageservice/pullprogress":
				return "the CRI server is an adapter onto the model"
			case strings.HasPrefix(d, "github.com/containerd/containerd/"):
				return "the CRI server never talks to containerd"
			}
			return ""
		}},
		{"standalone", func(d string) string {
			if strings.HasPrefix(d, module+"kuberuntime") || d == module+"sandbox" || strings.HasPrefix(d, "github.com/containerd/containerd/") {
				return "standalone pods run on the model, not on containerd"
			}
			return ""
		}},
	} {
		for _, d := range deps(t, tc.pkg) {
			if why := tc.forbidden(d); why != "" {
				t.Errorf("%s imports %s: %s", tc.pkg, d, why)
			}
		}
	}
	for _, leaf := range []string{"kuberuntime/containerspec", "kuberuntime/exitmonitor", "kuberuntime/iopump",
		"kuberuntime/cgroupstats", "kuberuntime/criu", "kuberuntime/checkpointarchive"} {
		for _, d := range deps(t, leaf) {
			if d == module+"kuberuntime" {
				t.Errorf("%s imports kuberuntime: imports point down only", leaf)
			}
		}
	}
}
