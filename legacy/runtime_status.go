package legacy

import (
	"context"
	"fmt"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
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

// ContainerdRuntime is the model's Runtime implemented on containerd.
type ContainerdRuntime struct {
	client    *containerd.Client
	namespace string
	network   NetworkStatuser
}

// NewContainerdRuntime returns the Runtime on a connected containerd client, working in namespace.
func NewContainerdRuntime(client *containerd.Client, namespace string, network NetworkStatuser) *ContainerdRuntime {
	return &ContainerdRuntime{client: client, namespace: namespace, network: network}
}

// Type is the runtime's type, the scheme of its ContainerIDs.
func (r *ContainerdRuntime) Type() string { return "containerd" }

// Version returns containerd's version.
func (r *ContainerdRuntime) Version(ctx context.Context) (string, error) {
	v, err := r.client.Version(ctx)
	if err != nil {
		return "", err
	}
	return v.Version, nil
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
	if err := r.network.Status(); err != nil {
		nw = RuntimeCondition{Type: NetworkReady, Reason: "NetworkPluginNotReady", Message: err.Error()}
	}
	return []RuntimeCondition{rt, nw}
}
