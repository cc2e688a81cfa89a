package kuberuntime

import (
	"github.com/cri-shim/cri-shim/legacy"
)

// DefaultRuntimeHandlers are the handlers when none are configured: runc, the one hack/setup.sh
// builds when it is there (ResolveRuncBinary).
func DefaultRuntimeHandlers() []legacy.RuntimeHandler {
	return []legacy.RuntimeHandler{RuncHandler("runc", ResolveRuncBinary(""))}
}
