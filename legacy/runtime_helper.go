package legacy

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeHelper is what the pod's owner knows beyond the PodSpec and SyncPod asks at the time it
// creates: the config a container is created with (what must be made on the host for it first,
// say) and the DNS the pod gets. It is the seed's RuntimeHelper (GenerateRunContainerOptions,
// GetClusterDNS) on the CRI's types: the ContainerConfig plays the RunContainerOptions.
type RuntimeHelper interface {
	// GenerateRunContainerOptions returns the config the container is created with, from its
	// spec; SyncPod then sets the attempt, the log path and its labels on a copy. An error fails
	// the container's start with ErrCreateContainerConfig and nothing is created.
	GenerateRunContainerOptions(ctx context.Context, pod *PodSpec, container *ContainerSpec) (*runtime.ContainerConfig, error)
	// GetClusterDNS returns the DNS config a new sandbox of the pod gets, replacing the spec's;
	// nil: none, the runtime's default (the host's resolv.conf). It is asked when a sandbox is
	// created: a different answer later does not replace the running sandbox (the spec's hash,
	// which decides that, covers the spec's own DNSConfig).
	GetClusterDNS(ctx context.Context, pod *PodSpec) (*runtime.DNSConfig, error)
}
