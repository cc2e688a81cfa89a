package kuberuntime

import (
	"context"
	"sync"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ListContainerStats for the CRI is served from the collector's readings, as containerd's CRI
// reads cgroups on demand: a call reads again the cgroups whose last reading is statsMaxAge (one
// second) old or older, and serves the younger ones. So every answer given a second or more after
// another carries newer readings (crictl stats lists twice, one second apart, and refuses two
// readings with the same CPU timestamp), while calls in a burst (a kubelet's relist, a monitoring
// scrape) read each cgroup once. The background sweep reads every running container's cgroup each
// statsInterval (the nano cores then span at most that), and a container that starts is read right
// away (its started event). Every value carries the time of its reading.
//
// The sweep and the calls also build each container's CRI entry and its encoding, for the server
// to write the response without encoding 500 entries again: a call served from young readings
// builds nothing.

// criStatsEntry is a container's CRI stats entry, built from the reading taken at sampleAt and
// the writable layer measured at layerAt.
type criStatsEntry struct {
	sampleAt, layerAt time.Time
	entry             *runtime.ContainerStats
	encoded
}

// statsConv builds a CRI stats entry from the model's (the server's conversion).
type statsConv = func(*legacy.ContainerStats) *runtime.ContainerStats

// ListCRIContainerStats is ListContainerStats for the CRI's ListContainerStats: the stats of the
// containers that match filter as CRI entries, in no particular order, from readings younger than
// statsMaxAge. conv builds an entry from the model's stats; one conv per runtime (the CRI
// server's). The entries are shared between calls: read only. wire holds them encoded (protobuf);
// nil when one could not be encoded.
func (r *ContainerdRuntime) ListCRIContainerStats(ctx context.Context, filter *legacy.ContainerStatsFilter, conv statsConv) ([]*runtime.ContainerStats, [][]byte, error) {
	var cs []*podContainer
	st := r.ctrs().store
	if filter != nil && filter.ID != "" {
		pc, err := st.get(filter.ID)
		if err != nil {
			return nil, nil, nil // unknown or ambiguous: nothing
		}
		cs = []*podContainer{pc}
	} else {
		cs = st.unsorted()
	}
	c := r.stats()
	c.conv.CompareAndSwap(nil, &conv)
	now := c.now()
	out := newEncodedList[*runtime.ContainerStats](len(cs))
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pc := range cs {
		if !filter.Match(pc.meta.ID, pc.meta.SandboxID, pc.config.GetLabels()) {
			continue
		}
		e := c.criEntryLocked(pc, now, conv)
		out.add(e.entry, e.encoded)
	}
	return out.entries, out.wire, nil
}

// criEntryLocked returns the CRI stats entry of a container, from a reading younger than
// statsMaxAge (read again when older), built again when its reading or its layer's measure changed.
func (c *statsCollector) criEntryLocked(pc *podContainer, now time.Time, conv statsConv) *criStatsEntry {
	s := c.sampleContainerLocked(pc, now)
	var sampleAt time.Time
	if s != nil && s.ok {
		sampleAt = s.at
	}
	id := pc.meta.ID
	if layerAt, known := c.layerAt(id); known {
		if e := c.entries[id]; e != nil && e.sampleAt.Equal(sampleAt) && e.layerAt.Equal(layerAt) {
			return e
		}
	} else if e := c.entries[id]; e != nil && e.sampleAt.Equal(sampleAt) && e.layerAt.IsZero() {
		c.layer(id) // asks for a first measure
		return e
	}
	layer := c.layer(id) // asks for a first measure when none is tracked
	var layerAt time.Time
	if layer != nil {
		layerAt = layer.At
	}
	md := pc.config.GetMetadata()
	st := &legacy.ContainerStats{
		ID: id, SandboxID: pc.meta.SandboxID, Name: md.GetName(), Attempt: md.GetAttempt(),
		Labels: pc.config.GetLabels(), Annotations: pc.config.GetAnnotations(), WritableLayer: layer,
	}
	if !sampleAt.IsZero() {
		st.CPU, st.Memory, st.Swap, st.Processes = usageOf(s)
	}
	entry := conv(st)
	e := &criStatsEntry{sampleAt: sampleAt, layerAt: layerAt, entry: entry, encoded: encode(entry)}
	c.entries[id] = e
	return e
}

// refreshEntriesLocked builds the CRI entries of the containers from their readings (taken just
// before: none is read again), once the server's conversion is known.
func (c *statsCollector) refreshEntryLocked(pc *podContainer, now time.Time) {
	if conv := c.conv.Load(); conv != nil {
		c.criEntryLocked(pc, now, *conv)
	}
}

// sampleStarted reads the cgroups of containers that just started (their first reading, so that
// a list soon after has them without reading them in the call).
func (c *statsCollector) sampleStarted(ids []string) {
	now := c.now()
	for _, id := range ids {
		pc, err := c.r.ctrs().store.get(id)
		if err != nil {
			continue
		}
		c.mu.Lock()
		c.sampleContainerLocked(pc, now)
		c.refreshEntryLocked(pc, now)
		c.mu.Unlock()
	}
}

// statsStartedDelay batches the first readings of containers that start.
var statsStartedDelay = 200 * time.Millisecond

// refreshEntries builds again the CRI entries of the containers ids (nil: all), after their
// layers were measured.
func (c *statsCollector) refreshEntries(ids []string) {
	if c.conv.Load() == nil {
		return
	}
	var cs []*podContainer
	if ids == nil {
		cs = c.r.ctrs().store.list()
	} else {
		for _, id := range ids {
			if pc, err := c.r.ctrs().store.get(id); err == nil {
				cs = append(cs, pc)
			}
		}
	}
	now := c.now()
	for _, pc := range cs {
		c.mu.Lock()
		c.refreshEntryLocked(pc, now)
		c.mu.Unlock()
	}
}

// layerAt is when the writable layer of container id was last measured (zero: not yet); known is
// false when no measure is tracked (c.layer queues one).
func (c *statsCollector) layerAt(id string) (at time.Time, known bool) {
	c.layerMu.Lock()
	defer c.layerMu.Unlock()
	l := c.layers[id]
	if l == nil {
		return time.Time{}, false
	}
	if l.measured {
		at = l.at
	}
	return at, true
}

// startedQueue holds the IDs of the containers that started since the collector last took them.
type startedQueue struct {
	mu  sync.Mutex
	ids []string
	// signal has a value when ids has some.
	signal chan struct{}
}

// watchStarted queues the containers that start, until ctx ends.
func (c *statsCollector) watchStarted(ctx context.Context) *startedQueue {
	q := &startedQueue{signal: make(chan struct{}, 1)}
	events, unsubscribe := c.r.events().Subscribe(0)
	c.r.wg.Add(1)
	go func() {
		defer c.r.wg.Done()
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-events:
				if !ok {
					return
				}
				if ev.Type != legacy.ContainerEventStarted {
					continue
				}
				q.mu.Lock()
				q.ids = append(q.ids, ev.ContainerID)
				q.mu.Unlock()
				select {
				case q.signal <- struct{}{}:
				default:
				}
			}
		}
	}()
	return q
}

// take returns the queued IDs and empties the queue.
func (q *startedQueue) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	ids := q.ids
	q.ids = nil
	return ids
}
