package legacy

import (
	"context"
	"fmt"
	"time"
)

// RuntimeCondition is one condition of the runtime's status, as CRI reports it.
type RuntimeCondition struct {
	Type    string
	Status  bool
	Reason  string
	Message string
}

// The condition types the kubelet reads.
const (
	RuntimeReady = "RuntimeReady"
	NetworkReady = "NetworkReady"
)

// NetworkStatuser reports whether the node's pod network is usable (nil) or why not.
type NetworkStatuser interface {
	Status() error
}

// Type is the runtime's type, the scheme of its ContainerIDs.
func (r *ContainerdRuntime) Type() string { return "containerd" }

// Version returns containerd's version.
func (r *ContainerdRuntime) Version(ctx context.Context) (Version, error) {
	v, err := r.client.Version(ctx)
	if err != nil {
		return nil, err
	}
	return ParseVersion(v.Version)
}

// APIVersion returns the version of the runtime API cri-shim speaks (CRI v1).
func (r *ContainerdRuntime) APIVersion() (Version, error) {
	return ParseVersion("1.0.0")
}

// Status returns the RuntimeReady and NetworkReady conditions.
func (r *ContainerdRuntime) Status(ctx context.Context) []RuntimeCondition {
	rt := RuntimeCondition{Type: RuntimeReady, Status: true}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if ok, err := r.client.IsServing(ctx); err != nil || !ok {
		rt = RuntimeCondition{Type: RuntimeReady, Reason: "ContainerdNotServing",
			Message: fmt.Sprintf("containerd is not serving: %v", err)}
	}
	nw := RuntimeCondition{Type: NetworkReady, Status: true}
	if r.network == nil {
		nw = RuntimeCondition{Type: NetworkReady, Reason: "NetworkPluginNotReady", Message: "no pod network configured"}
	} else if err := r.network.Status(); err != nil {
		nw = RuntimeCondition{Type: NetworkReady, Reason: "NetworkPluginNotReady", Message: err.Error()}
	}
	return []RuntimeCondition{rt, nw}
}
