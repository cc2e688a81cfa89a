package kuberuntime

import (
	"context"
	"fmt"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// usernsSnapshotOpts labels a container's snapshot with the pod's mapping: an overlay snapshotter that
// supports idmapped mounts ("remap-ids") then mounts the image's layers idmapped and gives the
// writable layer to the pod's root.
func usernsSnapshotOpts(m *legacy.PodUsernsMapping) []snapshots.Opt {
	if m == nil {
		return nil
	}
	return []snapshots.Opt{containerd.WithRemapperLabels(0, m.UID.HostID, 0, m.GID.HostID, m.UID.Size)}
}

// usernsPinnedPath is where the pause container finds the pod's user namespace; "" without one.
func usernsPinnedPath(m *legacy.PodUsernsMapping, files sandbox.Files) string {
	if m == nil {
		return ""
	}
	return files.Userns
}

// sandboxUsernsMapping returns a sandbox config's mapping; the config was validated.
func sandboxUsernsMapping(config *runtime.PodSandboxConfig) *legacy.PodUsernsMapping {
	m, _ := legacy.UsernsMapping(config.GetLinux().GetSecurityContext().GetNamespaceOptions())
	return m
}

// newPodNetNS makes the pod's network namespace: inside a new user namespace with the pod's
// mapping, pinned at files.Userns, for a pod with a user namespace; a plain one otherwise. A
// pause-less pod with a user namespace gets its IPC and UTS namespaces in it too, pinned at
// files.IPCNS and files.UTSNS (sandbox_pauseless.go).
func (r *ContainerdRuntime) newPodNetNS(id string, m *legacy.PodUsernsMapping, files sandbox.Files, pauseLess bool) (string, error) {
	if m == nil {
		return sandbox.NewNetNS(r.netnsDir(), id)
	}
	var ipcPath, utsPath string
	if pauseLess {
		utsPath = files.UTSNS
		if files.Shm != "/dev/shm" { // not the host's IPC
			ipcPath = files.IPCNS
		}
	}
	p, err := sandbox.NewNamespacesInUserns(r.netnsDir(), id, m.UID, m.GID, ipcPath, utsPath)
	if err != nil {
		return "", err
	}
	if err := sandbox.PinUserns(p, files.Userns); err != nil {
		_ = sandbox.RemoveNetNS(p)
		return "", err
	}
	if err := sandbox.SetLoopbackUp(p); err != nil {
		_ = sandbox.RemoveNetNS(p)
		return "", err
	}
	return p, nil
}

// checkUsernsHandler refuses a pod with a user namespace on a handler that cannot run one.
func (r *ContainerdRuntime) checkUsernsHandler(ctx context.Context, m *legacy.PodUsernsMapping, h legacy.RuntimeHandler) error {
	if m == nil {
		return nil
	}
	if !r.HandlerFeatures(ctx, h.Name).UserNamespaces {
		return fmt.Errorf("runtime handler %q does not support user namespaces on this host: %w", h.Name, errdefs.ErrInvalidArgument)
	}
	return nil
}
