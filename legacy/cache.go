package legacy

import (
	"context"
	"sync"
	"time"
)

// Cache holds the latest known status of each pod and lets a reader wait for a status newer
// than a given time.
//
// Get never blocks: on a miss it returns an empty status with the ID (and no error). Set stores a
// status (errors are cached too) with the time it was read and wakes the readers waiting for
// it. GetNewerThan blocks until the pod's entry was modified after minTime, or the cache's global
// timestamp (UpdateTime: "every entry is at least this fresh") passed minTime. Delete frees an
// entry.
type Cache interface {
	Get(id UID) (*PodStatus, error)
	Set(id UID, status *PodStatus, err error, timestamp time.Time)
	// GetNewerThan waits, without a deadline, for a status newer than minTime.
	GetNewerThan(id UID, minTime time.Time) (*PodStatus, error)
	// GetNewerThanContext is GetNewerThan that gives up when ctx ends (ctx's error).
	GetNewerThanContext(ctx context.Context, id UID, minTime time.Time) (*PodStatus, error)
	Delete(id UID)
	UpdateTime(timestamp time.Time)
}

type cacheData struct {
	status   *PodStatus
	err      error
	modified time.Time
}

type cacheWaiter struct {
	minTime time.Time
	ch      chan *cacheData
}

type cache struct {
	mu sync.RWMutex
	// pods holds the cached entries.
	pods map[UID]*cacheData
	// timestamp is the global timestamp: every entry is at least this fresh. nil until set.
	timestamp *time.Time
	// waiters wait for an entry newer than their minTime.
	waiters map[UID][]*cacheWaiter
}

// NewCache returns an empty pod status cache.
func NewCache() Cache {
	return &cache{pods: map[UID]*cacheData{}, waiters: map[UID][]*cacheWaiter{}}
}

func defaultCacheData(id UID) *cacheData {
	return &cacheData{status: &PodStatus{ID: id}}
}

// Get returns the cached status of the pod (an empty one with the ID on a miss) and the cached
// error.
func (c *cache) Get(id UID) (*PodStatus, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	d := c.getLocked(id)
	return d.status, d.err
}

func (c *cache) getLocked(id UID) *cacheData {
	if d, ok := c.pods[id]; ok {
		return d
	}
	return defaultCacheData(id)
}

// newerLocked returns the entry if it is newer than minTime (an empty one when the pod is not
// cached but the global timestamp passed minTime), else nil.
func (c *cache) newerLocked(id UID, minTime time.Time) *cacheData {
	d, ok := c.pods[id]
	global := c.timestamp != nil && c.timestamp.After(minTime)
	if !ok {
		if global {
			return defaultCacheData(id)
		}
		return nil
	}
	if d.modified.After(minTime) || global {
		return d
	}
	return nil
}

// GetNewerThan waits for a status of the pod newer than minTime.
func (c *cache) GetNewerThan(id UID, minTime time.Time) (*PodStatus, error) {
	return c.GetNewerThanContext(context.Background(), id, minTime)
}

// GetNewerThanContext waits for a status of the pod newer than minTime, or for ctx to end.
func (c *cache) GetNewerThanContext(ctx context.Context, id UID, minTime time.Time) (*PodStatus, error) {
	c.mu.Lock()
	if d := c.newerLocked(id, minTime); d != nil {
		c.mu.Unlock()
		return d.status, d.err
	}
	w := &cacheWaiter{minTime: minTime, ch: make(chan *cacheData, 1)}
	c.waiters[id] = append(c.waiters[id], w)
	c.mu.Unlock()
	select {
	case d := <-w.ch:
		return d.status, d.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ws := c.waiters[id]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(c.waiters, id)
	} else {
		c.waiters[id] = ws
	}
	// Woken meanwhile: the answer is there.
	select {
	case d := <-w.ch:
		return d.status, d.err
	default:
	}
	return nil, ctx.Err()
}

// Set stores the pod's status (and error) as read at timestamp and wakes the waiters it
// satisfies.
func (c *cache) Set(id UID, status *PodStatus, err error, timestamp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pods[id] = &cacheData{status: status, err: err, modified: timestamp}
	c.notifyLocked(id)
}

// Delete frees the pod's entry.
func (c *cache) Delete(id UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pods, id)
}

// UpdateTime moves the global timestamp: every entry is at least as fresh as timestamp. It wakes
// the waiters that this satisfies.
func (c *cache) UpdateTime(timestamp time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := timestamp
	c.timestamp = &t
	for id := range c.waiters {
		c.notifyLocked(id)
	}
}

// notifyLocked hands the pod's entry to the waiters it satisfies and forgets them.
func (c *cache) notifyLocked(id UID) {
	ws, ok := c.waiters[id]
	if !ok {
		return
	}
	var keep []*cacheWaiter
	for _, w := range ws {
		if d := c.newerLocked(id, w.minTime); d != nil {
			w.ch <- d
			continue
		}
		keep = append(keep, w)
	}
	if len(keep) == 0 {
		delete(c.waiters, id)
	} else {
		c.waiters[id] = keep
	}
}
