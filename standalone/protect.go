package standalone

import (
	"fmt"

	"github.com/cri-shim/cri-shim/legacy"
)

// Protect tells why the CRI calls that stop, remove or update a sandbox or container with these
// labels must be refused (server.ProtectFunc): it is one of the manager's pods, so a kubelet on the
// same socket (its orphan cleanup and container GC) or a client must not delete it behind the
// manager's back. The owner label is reserved: the CRI server refuses it from CRI clients
// (server.OwnerLabel), so only the manager's own pods carry it, and before the directory has been
// read once it suffices. After that the pod's UID must also be one of the manifests': a labelled
// pod of no manifest is the manager's to remove, not protected. It returns "" for what is not
// protected.
func (m *Manager) Protect(podUID string, labels map[string]string) string {
	if labels[LabelOwner] != OwnerValue {
		return ""
	}
	if !m.scanned.Load() {
		return "it is owned by cri-shim's standalone pods (its manifest is being read); delete it with `cri-shim pods delete NAME` or remove its manifest from static_pods_dir"
	}
	var pod *Pod
	m.mu.Lock()
	for _, w := range m.workers {
		if p := w.pod(); p.UID == legacy.UID(podUID) {
			pod = p
			break
		}
	}
	m.mu.Unlock()
	if pod == nil {
		return ""
	}
	name := pod.Name
	if pod.Namespace != DefaultNamespace {
		name = pod.Key()
	}
	return fmt.Sprintf("it is owned by cri-shim's standalone pods (manifest %s); delete it with `cri-shim pods delete %s` or remove its manifest", pod.Source, name)
}
