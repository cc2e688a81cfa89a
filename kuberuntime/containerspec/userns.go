package containerspec

import (
	"fmt"
	"math"
	"slices"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sameUserns tells whether a container's user namespace options agree with its pod's: none, or the
// same mode and mappings.
func sameUserns(pod, ctr *runtime.UserNamespace) bool {
	if ctr == nil {
		return true
	}
	if pod.GetMode() != ctr.GetMode() && !(pod == nil && ctr.GetMode() == runtime.NamespaceMode_NODE) {
		return false
	}
	eq := func(a, b []*runtime.IDMapping) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i].GetContainerId() != b[i].GetContainerId() || a[i].GetHostId() != b[i].GetHostId() || a[i].GetLength() != b[i].GetLength() {
				return false
			}
		}
		return true
	}
	return eq(pod.GetUids(), ctr.GetUids()) && eq(pod.GetGids(), ctr.GetGids())
}

// containerUserns returns the pod's mapping (nil: host user namespace) and the spec options that put
// a container in its pod's user namespace: /proc/<pause pid>/ns/user, or its pinned one in a pod
// without a pause process.
func containerUserns(in Input) (*legacy.PodUsernsMapping, []oci.SpecOpts, error) {
	podNS := in.SandboxConfig.GetLinux().GetSecurityContext().GetNamespaceOptions()
	ctrNS := in.Config.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if u := ctrNS.GetUsernsOptions(); u != nil {
		if u.GetMode() != runtime.NamespaceMode_NODE && u.GetMode() != runtime.NamespaceMode_POD {
			return nil, nil, fmt.Errorf("user namespace mode %s is not supported: %w", u.GetMode(), errdefs.ErrInvalidArgument)
		}
		if !sameUserns(podNS.GetUsernsOptions(), u) {
			return nil, nil, fmt.Errorf("the container's user namespace options differ from its pod's: %w", errdefs.ErrInvalidArgument)
		}
	}
	m, err := legacy.UsernsMapping(podNS)
	if err != nil || m == nil {
		return nil, nil, err
	}
	if in.PodNS != nil {
		// A pod without a pause process: its pinned user namespace.
		return m, []oci.SpecOpts{sandbox.WithUsernsPath(in.Files.Userns, m.UID, m.GID)}, nil
	}
	if in.SandboxPid == 0 {
		return nil, nil, fmt.Errorf("sandbox %s has no running pause process: %w", in.SandboxID, errdefs.ErrFailedPrecondition)
	}
	return m, []oci.SpecOpts{sandbox.WithUsernsPath(nsPath(in.SandboxPid, "user"), m.UID, m.GID)}, nil
}

// checkMountMappings checks a CRI mount's idmapping: none, or uid and gid mappings (each of a
// non-zero length) in a pod with a user namespace (runc idmaps a bind mount only for a container
// in a user namespace).
func checkMountMappings(m *runtime.Mount, userns bool) error {
	if len(m.GetUidMappings())+len(m.GetGidMappings()) == 0 {
		return nil
	}
	switch {
	case !userns:
		return fmt.Errorf("idmapped mounts need a pod with a user namespace (mode POD): %w", errdefs.ErrInvalidArgument)
	case len(m.GetUidMappings()) == 0 || len(m.GetGidMappings()) == 0:
		return fmt.Errorf("idmapped mounts need both uid and gid mappings: %w", errdefs.ErrInvalidArgument)
	}
	for _, x := range append(slices.Clone(m.GetUidMappings()), m.GetGidMappings()...) {
		if x == nil || x.GetLength() == 0 || uint64(x.GetHostId())+uint64(x.GetLength()) > math.MaxUint32 ||
			uint64(x.GetContainerId())+uint64(x.GetLength()) > math.MaxUint32 {
			return fmt.Errorf("invalid idmapping %v: %w", x, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// specMappings converts CRI ID mappings to OCI ones (nil for none).
func specMappings(ms []*runtime.IDMapping) []runtimespec.LinuxIDMapping {
	var out []runtimespec.LinuxIDMapping
	for _, m := range ms {
		out = append(out, runtimespec.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out
}
