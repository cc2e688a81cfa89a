package kuberuntime

import (
	"context"
	"sort"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// criSandboxEntry is a sandbox's CRI list entry as built for one state. Every other field of the
// entry (ID, metadata, creation time, labels, annotations, runtime handler) is fixed at creation.
type criSandboxEntry struct {
	state legacy.SandboxState
	entry *runtime.PodSandbox
	encoded
}

// ListCRISandboxes is ListPodSandbox for the CRI's ListPodSandbox: the sandboxes that match filter
// as list entries, newest first. conv builds a sandbox's entry from its status; the entry is cached
// in the sandbox until its state changes, so a relist of an unchanged node builds nothing. The
// entries are shared between calls: read only. One conv per runtime (the CRI server's). wire holds
// the entries encoded (protobuf), for the server to write them as they are; nil when one could not
// be encoded.
func (r *ContainerdRuntime) ListCRISandboxes(ctx context.Context, filter *legacy.SandboxFilter, conv func(*legacy.SandboxStatus) *runtime.PodSandbox) (entries []*runtime.PodSandbox, wire [][]byte, err error) {
	var sbs []*podSandbox
	if filter != nil && filter.ID != "" {
		sb, err := r.sandboxes.get(filter.ID)
		if err != nil {
			return nil, nil, nil // unknown or ambiguous: nothing
		}
		sbs = []*podSandbox{sb}
	} else {
		sbs = r.sandboxes.unsorted()
	}
	sort.Slice(sbs, func(i, j int) bool { return sbs[i].meta.CreatedAt.After(sbs[j].meta.CreatedAt) })
	out := newEncodedList[*runtime.PodSandbox](len(sbs))
	for _, sb := range sbs {
		if filter != nil && !legacy.LabelsMatch(sb.config.GetLabels(), filter.Labels) {
			continue
		}
		state := sb.snapshot().state
		if filter != nil && filter.State != nil && state != *filter.State {
			continue
		}
		e := sb.criEntry.Load()
		if e == nil || e.state != state {
			st := sb.status()
			if filter != nil && filter.State != nil && st.State != *filter.State {
				continue // changed meanwhile
			}
			entry := conv(st)
			e = &criSandboxEntry{state: st.State, entry: entry, encoded: encode(entry)}
			sb.criEntry.Store(e)
		}
		out.add(e.entry, e.encoded)
	}
	return out.entries, out.wire, nil
}

// unsorted returns every sandbox, in no order.
func (st *sandboxStore) unsorted() []*podSandbox {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]*podSandbox, 0, len(st.byID))
	for _, s := range st.byID {
		out = append(out, s)
	}
	return out
}
