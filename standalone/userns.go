package standalone

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cri-shim/cri-shim/legacy"
)

// The host IDs of standalone pods with hostUsers: false: 65536 per pod (container IDs 0..65535,
// as the kubelet maps them), in slots from usernsFirstID up, one pod per slot.
const (
	usernsLength = 65536
	// usernsFirstID is 2^30: far above the kubelet's default range (65536 up, 65536 IDs per pod
	// of its maxPods) and the usual /etc/subuid ranges (100000 up), so that standalone pods and a
	// kubelet's pods on the same node do not share host IDs; the last slot ends below 2^31, which
	// some tools take for negative.
	usernsFirstID = 1 << 30
	usernsSlots   = 8192
	// usernsFile records a pod's slot in its dir under the volume root (as the kubelet records it
	// in its pod dir): the same after a restart, freed with the pod's volumes.
	usernsFile = "userns"
)

// usernsAllocator gives each pod with hostUsers: false a slot of its own. Only the manager's scan
// calls it (one goroutine).
type usernsAllocator struct{ root string }

// hostID returns the first host ID of uid's slot, taking the lowest free one the first time.
func (a usernsAllocator) hostID(uid legacy.UID) (uint32, error) {
	if a.root == "" {
		return 0, errors.New("a user namespace needs a volume root (where its host IDs are recorded)")
	}
	file := filepath.Join(a.root, string(uid), usernsFile)
	id, err := readUsernsFile(file)
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return id, err
	}
	entries, err := os.ReadDir(a.root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, err
	}
	used := map[uint32]bool{}
	for _, e := range entries {
		if id, err := readUsernsFile(filepath.Join(a.root, e.Name(), usernsFile)); err == nil {
			used[id] = true
		}
	}
	for slot := range usernsSlots {
		id := uint32(usernsFirstID + slot*usernsLength)
		if used[id] {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return 0, err
		}
		if err := WriteFileAtomic(file, fmt.Appendf(nil, "%d %d\n", id, usernsLength), 0o600); err != nil {
			return 0, err
		}
		return id, nil
	}
	return 0, fmt.Errorf("no free range of %d host IDs left for a user namespace (%d pods have one)", usernsLength, len(used))
}

// readUsernsFile reads a slot record: "<first host ID> <length>".
func readUsernsFile(file string) (uint32, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, err
	}
	var id, n uint64
	if _, err := fmt.Sscanf(string(b), "%d %d", &id, &n); err != nil || n != usernsLength || id < usernsFirstID ||
		(id-usernsFirstID)%usernsLength != 0 || id >= usernsFirstID+usernsSlots*usernsLength {
		return 0, fmt.Errorf("%s: %q is not a user namespace range of standalone pods", file, b)
	}
	return uint32(id), nil
}
