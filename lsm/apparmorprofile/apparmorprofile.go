// Package apparmorprofile gives lsm the text of the default AppArmor profile: containerd's
// template (contrib/apparmor) under cri-shim's name, and the host's AppArmor that loads it. It is
// apart from lsm because that template pulls in containerd's packages, which the standalone
// manager (lsm's other user) must not import.
package apparmorprofile

import (
	"sync"

	"github.com/containerd/containerd/v2/contrib/apparmor"
	"github.com/cri-shim/cri-shim/lsm"
)

// Generate is the text of containerd's default profile under name.
func Generate(name string) (string, error) { return apparmor.DumpDefaultProfile(name) }

var (
	hostOnce sync.Once
	host     *lsm.AppArmor
)

// Host is this host's AppArmor with containerd's default profile, shared by the whole process so
// that the default profile is loaded once.
func Host() *lsm.AppArmor {
	hostOnce.Do(func() { host = lsm.NewAppArmor(lsm.AppArmorHost{Generate: Generate}) })
	return host
}
