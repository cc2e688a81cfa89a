package kuberuntime

import (
	"context"
	"fmt"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
)

// Type is the runtime's type, the scheme of its ContainerIDs.
func (r *ContainerdRuntime) Type() string { return "containerd" }

// Version returns containerd's version.
func (r *ContainerdRuntime) Version(ctx context.Context) (legacy.Version, error) {
	v, err := r.client.Version(ctx)
	if err != nil {
		return nil, err
	}
	return legacy.ParseVersion(v.Version)
}

// APIVersion returns the version of the runtime API cri-shim speaks (CRI v1).
func (r *ContainerdRuntime) APIVersion() (legacy.Version, error) {
	return legacy.ParseVersion("1.0.0")
}

// Status returns the RuntimeReady and NetworkReady conditions.
func (r *ContainerdRuntime) Status(ctx context.Context) []legacy.RuntimeCondition {
	rt := legacy.RuntimeCondition{Type: legacy.RuntimeReady, Status: true}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if ok, err := r.client.IsServing(ctx); err != nil || !ok {
		rt = legacy.RuntimeCondition{Type: legacy.RuntimeReady, Reason: "ContainerdNotServing",
			Message: fmt.Sprintf("containerd is not serving: %v", err)}
	}
	nw := legacy.RuntimeCondition{Type: legacy.NetworkReady, Status: true}
	if r.network == nil {
		nw = legacy.RuntimeCondition{Type: legacy.NetworkReady, Reason: "NetworkPluginNotReady", Message: "no pod network configured"}
	} else if err := r.network.Status(); err != nil {
		nw = legacy.RuntimeCondition{Type: legacy.NetworkReady, Reason: "NetworkPluginNotReady", Message: err.Error()}
	}
	return []legacy.RuntimeCondition{rt, nw}
}
