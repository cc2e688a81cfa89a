package kuberuntime

import (
	"context"
	"strings"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criListEntry is a container's CRI list entry as built for one state. Every other field of a list
// entry (ID, pod, name, attempt, image, creation time, labels, annotations) is fixed at creation.
type criListEntry struct {
	state legacy.ContainerState
	entry *runtime.Container
	encoded
}

// ListCRIContainers is ListContainers for the CRI's ListContainers: the containers that match
// filter as list entries, in no particular order. conv builds a container's entry from its details;
// the entry is cached in the container until its state changes, so a relist of an unchanged node
// builds nothing. The entries are shared between calls: read only. One conv per runtime (the CRI
// server's). wire holds the entries encoded (protobuf), for the server to write them as they are;
// nil when one could not be encoded.
func (r *ContainerdRuntime) ListCRIContainers(ctx context.Context, filter *legacy.ContainerFilter, conv func(*legacy.ContainerDetails) *runtime.Container) (entries []*runtime.Container, wire [][]byte, err error) {
	st := r.ctrs()
	var cs []*podContainer
	if filter != nil && filter.ID != "" {
		c, err := st.store.get(filter.ID)
		if err != nil {
			return nil, nil, nil // unknown or ambiguous: nothing
		}
		cs = []*podContainer{c}
	} else {
		cs = st.store.unsorted()
	}
	out := newEncodedList[*runtime.Container](len(cs))
	for _, c := range cs {
		if filter != nil {
			if filter.SandboxID != "" && !strings.HasPrefix(c.meta.SandboxID, filter.SandboxID) {
				continue
			}
			if !legacy.LabelsMatch(c.config.GetLabels(), filter.Labels) {
				continue
			}
		}
		state := c.snapshot().state
		if filter != nil && filter.State != nil && state != *filter.State {
			continue
		}
		e := c.criEntry.Load()
		if e == nil || e.state != state {
			d := r.details(c)
			if filter != nil && filter.State != nil && d.State != *filter.State {
				continue // changed meanwhile
			}
			entry := conv(d)
			e = &criListEntry{state: d.State, entry: entry, encoded: encode(entry)}
			c.criEntry.Store(e)
		}
		out.add(e.entry, e.encoded)
	}
	return out.entries, out.wire, nil
}
