package legacy

import (
	"context"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// RuntimeCache caches the running pods of a runtime (GetPods(ctx, false)), so that callers that
// list pods often do not each ask the runtime. Callers must not modify the pods it returns.
type RuntimeCache interface {
	// GetPods returns the cached pods, listed anew when the cache is older than its period.
	GetPods(ctx context.Context) ([]*Pod, error)
	// ForceUpdateIfOlder lists the pods anew when the cache is older than minExpectedCacheTime.
	ForceUpdateIfOlder(ctx context.Context, minExpectedCacheTime time.Time) error
}

// PodsGetter lists a runtime's pods; every Runtime is one.
type PodsGetter interface {
	GetPods(ctx context.Context, all bool) ([]*Pod, error)
}

// DefaultRuntimeCachePeriod is the kubelet's period of its runtime cache.
const DefaultRuntimeCachePeriod = 2 * time.Second

// NewRuntimeCache returns a cache of getter's running pods that is listed anew when older than
// cachePeriod.
func NewRuntimeCache(getter PodsGetter, cachePeriod time.Duration) RuntimeCache {
	return NewRuntimeCacheWithClock(getter, cachePeriod, clock.RealClock{})
}

// NewRuntimeCacheWithClock is NewRuntimeCache on the clock clk.
func NewRuntimeCacheWithClock(getter PodsGetter, cachePeriod time.Duration, clk clock.PassiveClock) RuntimeCache {
	return &runtimeCache{getter: getter, period: cachePeriod, clock: clk}
}

// runtimeCache records the time right before it lists the pods, so the time is at most as new as
// the pods (never newer); it only moves forward.
type runtimeCache struct {
	getter PodsGetter
	period time.Duration
	clock  clock.PassiveClock

	mu        sync.Mutex
	cacheTime time.Time
	pods      []*Pod
}

func (r *runtimeCache) GetPods(ctx context.Context) ([]*Pod, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.clock.Since(r.cacheTime) > r.period {
		if err := r.updateLocked(ctx); err != nil {
			return nil, err
		}
	}
	return r.pods, nil
}

func (r *runtimeCache) ForceUpdateIfOlder(ctx context.Context, minExpectedCacheTime time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cacheTime.Before(minExpectedCacheTime) {
		return r.updateLocked(ctx)
	}
	return nil
}

// updateLocked lists the pods; a failed list keeps the cache as it was.
func (r *runtimeCache) updateLocked(ctx context.Context) error {
	timestamp := r.clock.Now()
	pods, err := r.getter.GetPods(ctx, false)
	if err != nil {
		return err
	}
	r.pods, r.cacheTime = pods, timestamp
	return nil
}
