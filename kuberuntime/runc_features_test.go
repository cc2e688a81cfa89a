package kuberuntime

import (
	"path/filepath"
	"testing"

	"github.com/cri-shim/cri-shim/kuberuntime/criu"
)

// CRIU is installed beside the runc hack/setup.sh builds: the shims find it on the PATH that dir
// heads.
func TestDefaultCRIUBesideRunc(t *testing.T) {
	if filepath.Dir(criu.DefaultCRIUBinary) != filepath.Dir(DefaultRuncBinary) {
		t.Fatalf("criu %s, runc %s: not in one directory", criu.DefaultCRIUBinary, DefaultRuncBinary)
	}
}
