package legacy

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"
)

// ContainersGarbageCollected counts the containers the garbage collector removed.
var ContainersGarbageCollected = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "cri_shim",
	Name:      "gc_containers_removed_total",
	Help:      "Containers removed by the container garbage collector.",
})

// ContainerGCPolicy is the policy of the container garbage collector.
type ContainerGCPolicy struct {
	// MinAge is the minimum age of a container that may be removed; negative is an error.
	MinAge time.Duration
	// MaxPerPodContainer is the number of dead containers kept per (pod, container name); negative:
	// no limit.
	MaxPerPodContainer int
	// MaxContainers is the number of dead containers kept in all; negative: no limit.
	MaxContainers int
}

// OrphanGCPolicy removes only containers of pods that are gone (and those that belong to no pod):
// what the shim may clean when a kubelet owns the garbage collection of its containers.
var OrphanGCPolicy = ContainerGCPolicy{MinAge: time.Minute, MaxPerPodContainer: -1, MaxContainers: -1}

// GCContainer is a container as the garbage collector sees it.
type GCContainer struct {
	ID string
	// Name is the container's name in its pod; PodUID the pod's UID. Both empty: the container
	// belongs to no pod the runtime can tell (unidentified).
	Name   string
	PodUID UID
	// SandboxID is the sandbox the container was created in.
	SandboxID string
	CreatedAt time.Time
	Running   bool
}

// GCRuntime is what ContainerGC needs of a runtime.
type GCRuntime interface {
	// GCContainers lists all the runtime's containers, running ones and those whose sandbox is
	// gone included.
	GCContainers(ctx context.Context) ([]GCContainer, error)
	// SandboxExists tells whether the sandbox still exists: the containers of one that does not
	// belong to an unknown pod.
	SandboxExists(ctx context.Context, sandboxID string) bool
	// RemoveGCContainer removes a container.
	RemoveGCContainer(ctx context.Context, c GCContainer) error
}

// ContainerGC removes dead containers by a policy:
//
//   - evictable: not running and created more than MinAge ago (others are never touched);
//   - the evictable containers of unknown pods (whose sandbox is gone) and those of no pod are
//     removed;
//   - the rest are grouped by (pod UID, container name), newest first, and the newest
//     MaxPerPodContainer of each group are kept;
//   - if more than MaxContainers remain, each group is capped at max(1, MaxContainers / groups),
//     then the globally oldest are removed down to MaxContainers.
type ContainerGC struct {
	rt     GCRuntime
	policy ContainerGCPolicy
	clock  clock.PassiveClock
}

// NewContainerGC returns a garbage collector of rt's containers by policy.
func NewContainerGC(rt GCRuntime, policy ContainerGCPolicy) (*ContainerGC, error) {
	if policy.MinAge < 0 {
		return nil, fmt.Errorf("invalid container GC policy: MinAge %v must not be negative", policy.MinAge)
	}
	return &ContainerGC{rt: rt, policy: policy, clock: clock.RealClock{}}, nil
}

// evictUnit is a group of containers: a pod's containers of one name.
type evictUnit struct {
	uid  UID
	name string
}

// byCreatedNewestFirst sorts containers newest first (ties by ID, for a stable order).
func byCreatedNewestFirst(cs []GCContainer) {
	sort.Slice(cs, func(i, j int) bool {
		if !cs[i].CreatedAt.Equal(cs[j].CreatedAt) {
			return cs[i].CreatedAt.After(cs[j].CreatedAt)
		}
		return cs[i].ID > cs[j].ID
	})
}

// GCScope says what one collection may remove besides what the policy's limits do, as the
// kubelet's allSourcesReady and evictNonDeletedPods flags say.
type GCScope struct {
	// AllSourcesReady tells that every pod there is is known: the evictable containers of pods
	// whose sandbox is gone are then all removed. Otherwise they only count against the limits,
	// as the containers of a live pod do.
	AllSourcesReady bool
	// EvictNonDeletedPods (with AllSourcesReady) also removes every evictable container of a pod
	// whose sandbox exists but is no longer ready, as the kubelet does under disk pressure. It
	// needs a GCRuntime that is a GCSandboxReadiness; others ignore it.
	EvictNonDeletedPods bool
}

// DefaultGCScope is the scope of Plan, GarbageCollect and Run: every pod is known.
var DefaultGCScope = GCScope{AllSourcesReady: true}

// GCSandboxReadiness is implemented by a GCRuntime that can tell whether a sandbox is ready.
type GCSandboxReadiness interface {
	// SandboxReady tells whether the sandbox exists and is ready (its pod runs).
	SandboxReady(ctx context.Context, sandboxID string) bool
}

// GarbageCollect removes rt's dead containers by policy once, in the scope the flags say: what
// a Runtime's GarbageCollect does.
func GarbageCollect(ctx context.Context, rt GCRuntime, policy ContainerGCPolicy, allSourcesReady, evictNonDeletedPods bool) error {
	gc, err := NewContainerGC(rt, policy)
	if err != nil {
		return fmt.Errorf("%w: %w", err, ErrInvalidArgument)
	}
	_, err = gc.Collect(ctx, GCScope{AllSourcesReady: allSourcesReady, EvictNonDeletedPods: evictNonDeletedPods})
	return err
}

// Plan returns the containers GarbageCollect would remove now, in removal order.
func (gc *ContainerGC) Plan(ctx context.Context) ([]GCContainer, error) {
	return gc.PlanScope(ctx, DefaultGCScope)
}

// PlanScope returns the containers a collection in scope would remove now, in removal order.
func (gc *ContainerGC) PlanScope(ctx context.Context, scope GCScope) ([]GCContainer, error) {
	all, err := gc.rt.GCContainers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	newest := gc.clock.Now().Add(-gc.policy.MinAge)
	var remove []GCContainer
	units := map[evictUnit][]GCContainer{}
	sandboxKnown := map[string]bool{}
	readiness, canTell := gc.rt.(GCSandboxReadiness)
	evictStopped := scope.AllSourcesReady && scope.EvictNonDeletedPods && canTell
	sandboxReady := map[string]bool{}
	for _, c := range all {
		if c.Running || c.CreatedAt.After(newest) {
			continue
		}
		if c.PodUID == "" && c.Name == "" {
			remove = append(remove, c) // unidentified
			continue
		}
		known, ok := sandboxKnown[c.SandboxID]
		if !ok {
			known = c.SandboxID != "" && gc.rt.SandboxExists(ctx, c.SandboxID)
			sandboxKnown[c.SandboxID] = known
		}
		if !known && scope.AllSourcesReady {
			remove = append(remove, c) // of an unknown pod
			continue
		}
		if known && evictStopped && !gc.sandboxReady(ctx, readiness, sandboxReady, c.SandboxID) {
			remove = append(remove, c) // of a pod that stopped
			continue
		}
		key := evictUnit{uid: c.PodUID, name: c.Name}
		units[key] = append(units[key], c)
	}
	// Deterministic order of the removals that do not depend on age.
	byCreatedNewestFirst(remove)
	keys := make([]evictUnit, 0, len(units))
	for k, u := range units {
		byCreatedNewestFirst(u)
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].uid != keys[j].uid {
			return keys[i].uid < keys[j].uid
		}
		return keys[i].name < keys[j].name
	})
	capUnits := func(n int) {
		for _, k := range keys {
			if u := units[k]; len(u) > n {
				remove = append(remove, u[n:]...)
				units[k] = u[:n]
			}
		}
	}
	if gc.policy.MaxPerPodContainer >= 0 {
		capUnits(gc.policy.MaxPerPodContainer)
	}
	count := func() int {
		n := 0
		for _, u := range units {
			n += len(u)
		}
		return n
	}
	if gc.policy.MaxContainers >= 0 && count() > gc.policy.MaxContainers {
		capUnits(max(1, gc.policy.MaxContainers/len(units)))
		if n := count(); n > gc.policy.MaxContainers {
			var flat []GCContainer
			for _, k := range keys {
				flat = append(flat, units[k]...)
			}
			byCreatedNewestFirst(flat)
			keep := gc.policy.MaxContainers
			oldest := flat[keep:]
			// Oldest first.
			for i := len(oldest) - 1; i >= 0; i-- {
				remove = append(remove, oldest[i])
			}
		}
	}
	return remove, nil
}

// sandboxReady asks rt once per sandbox whether it is ready.
func (gc *ContainerGC) sandboxReady(ctx context.Context, rt GCSandboxReadiness, seen map[string]bool, id string) bool {
	ready, ok := seen[id]
	if !ok {
		ready = rt.SandboxReady(ctx, id)
		seen[id] = ready
	}
	return ready
}

// GarbageCollect removes what Plan returns and reports the containers removed; failures to
// remove are joined in the error, the others still removed.
func (gc *ContainerGC) GarbageCollect(ctx context.Context) ([]GCContainer, error) {
	return gc.Collect(ctx, DefaultGCScope)
}

// Collect removes what PlanScope returns for scope and reports the containers removed; failures
// to remove are joined in the error, the others still removed.
func (gc *ContainerGC) Collect(ctx context.Context, scope GCScope) ([]GCContainer, error) {
	plan, err := gc.PlanScope(ctx, scope)
	if err != nil {
		return nil, err
	}
	var removed []GCContainer
	var errs []error
	for _, c := range plan {
		if err := gc.rt.RemoveGCContainer(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("remove container %s: %w", c.ID, err))
			continue
		}
		removed = append(removed, c)
		ContainersGarbageCollected.Inc()
		logrus.WithFields(logrus.Fields{"container": c.ID, "name": c.Name, "pod": c.PodUID, "sandbox": c.SandboxID}).Debug("container garbage collected")
	}
	return removed, errors.Join(errs...)
}

// Run collects every period until ctx ends; failures are logged and retried next period.
func (gc *ContainerGC) Run(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		removed, err := gc.GarbageCollect(ctx)
		if err != nil && ctx.Err() == nil {
			logrus.WithError(err).Warn("container garbage collection")
		}
		if len(removed) > 0 {
			logrus.WithField("removed", len(removed)).Info("container garbage collection")
		}
	}
}
