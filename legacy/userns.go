package legacy

import (
	"fmt"
	"math"

	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// User namespaces (CRI's NamespaceOption.userns_options), as the kubelet and critest use them:
//   - no options, or mode NODE: the host's user namespace;
//   - mode POD: the whole pod in one new user namespace with exactly one uid and one gid mapping,
//     each mapping container ID 0; the rootfs of every container is an idmapped overlay (the
//     snapshotter's uidmap/gidmap labels), the pod's hosts, hostname and resolv.conf, the image
//     volumes and CRI mounts that ask for it are idmapped bind mounts;
//   - modes CONTAINER and TARGET are not supported (InvalidArgument).

// podUsernsMapping is the uid and gid mapping of a pod's user namespace.
type PodUsernsMapping struct {
	UID, GID runtimespec.LinuxIDMapping
}

// usernsMapping returns the mapping of a pod whose user namespace is of mode POD, nil for the
// host's, and an InvalidArgument error for options the runtime cannot honour (a POD user namespace
// also needs the pod's own network, pid and ipc namespaces, as Kubernetes requires).
func UsernsMapping(nsOpts *runtime.NamespaceOption) (*PodUsernsMapping, error) {
	u := nsOpts.GetUsernsOptions()
	if u == nil {
		return nil, nil
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("user namespace: %s: %w", fmt.Sprintf(format, args...), ErrInvalidArgument)
	}
	switch u.GetMode() {
	case runtime.NamespaceMode_NODE:
		if len(u.GetUids())+len(u.GetGids()) > 0 {
			return nil, bad("mode NODE takes no mappings, got %d uid and %d gid mappings", len(u.GetUids()), len(u.GetGids()))
		}
		return nil, nil
	case runtime.NamespaceMode_POD:
	default:
		return nil, bad("mode %s is not supported (only POD and NODE)", u.GetMode())
	}
	for _, ns := range []struct {
		name string
		mode runtime.NamespaceMode
	}{{"network", nsOpts.GetNetwork()}, {"pid", nsOpts.GetPid()}, {"ipc", nsOpts.GetIpc()}} {
		if ns.mode == runtime.NamespaceMode_NODE {
			return nil, bad("mode POD cannot be combined with the host's %s namespace", ns.name)
		}
	}
	uid, err := oneMapping("uid", u.GetUids())
	if err != nil {
		return nil, bad("%v", err)
	}
	gid, err := oneMapping("gid", u.GetGids())
	if err != nil {
		return nil, bad("%v", err)
	}
	return &PodUsernsMapping{UID: uid, GID: gid}, nil
}

func oneMapping(kind string, ms []*runtime.IDMapping) (runtimespec.LinuxIDMapping, error) {
	if len(ms) != 1 || ms[0] == nil {
		return runtimespec.LinuxIDMapping{}, fmt.Errorf("mode POD needs exactly one %s mapping, got %d", kind, len(ms))
	}
	m := ms[0]
	switch {
	case m.GetContainerId() != 0:
		return runtimespec.LinuxIDMapping{}, fmt.Errorf("the %s mapping must map container ID 0, got %d", kind, m.GetContainerId())
	case m.GetLength() == 0:
		return runtimespec.LinuxIDMapping{}, fmt.Errorf("the %s mapping has length 0", kind)
	case uint64(m.GetHostId())+uint64(m.GetLength()) > math.MaxUint32:
		return runtimespec.LinuxIDMapping{}, fmt.Errorf("the %s mapping %d+%d goes beyond the last ID", kind, m.GetHostId(), m.GetLength())
	}
	return runtimespec.LinuxIDMapping{ContainerID: 0, HostID: m.GetHostId(), Size: m.GetLength()}, nil
}

// criMappings are the pod's mappings as CRI mount mappings (for idmapped bind mounts).
func (m *PodUsernsMapping) CriMappings() (uids, gids []*runtime.IDMapping) {
	if m == nil {
		return nil, nil
	}
	return []*runtime.IDMapping{{ContainerId: m.UID.ContainerID, HostId: m.UID.HostID, Length: m.UID.Size}},
		[]*runtime.IDMapping{{ContainerId: m.GID.ContainerID, HostId: m.GID.HostID, Length: m.GID.Size}}
}
