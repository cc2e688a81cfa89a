package kuberuntime

import (
	"github.com/cri-shim/cri-shim/legacy"
)

var _ legacy.StatsProvider = (*ContainerdRuntime)(nil)
