package legacy

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type cacheResult struct {
	status *PodStatus
	err    error
}

// waitAsync runs GetNewerThan in the background.
func waitAsync(c Cache, id UID, minTime time.Time) <-chan cacheResult {
	ch := make(chan cacheResult, 1)
	go func() {
		st, err := c.GetNewerThan(id, minTime)
		ch <- cacheResult{st, err}
	}()
	return ch
}

func expectBlocked(t *testing.T, ch <-chan cacheResult) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("GetNewerThan returned early: %+v", r)
	case <-time.After(50 * time.Millisecond):
	}
}

func expectWoken(t *testing.T, ch <-chan cacheResult) cacheResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("GetNewerThan was not woken")
	}
	return cacheResult{}
}

// waiters is the number of blocked readers of id.
func waiters(c Cache, id UID) int {
	cc := c.(*cache)
	cc.mu.RLock()
	defer cc.mu.RUnlock()
	return len(cc.waiters[id])
}

func waitForWaiters(t *testing.T, c Cache, id UID, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for waiters(c, id) != n {
		if time.Now().After(deadline) {
			t.Fatalf("waiters of %s: %d, want %d", id, waiters(c, id), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCacheGetSetDelete(t *testing.T) {
	c := NewCache()
	st, err := c.Get("miss")
	if err != nil || st == nil || st.ID != "miss" || st.Name != "" || len(st.ContainerStatuses) != 0 {
		t.Fatalf("miss: %+v %v", st, err)
	}
	t0 := time.Unix(100, 0)
	c.Set("p", &PodStatus{ID: "p", Name: "n"}, nil, t0)
	st, err = c.Get("p")
	if err != nil || st.Name != "n" {
		t.Fatalf("hit: %+v %v", st, err)
	}
	// Errors are cached too, with the status.
	boom := errors.New("boom")
	c.Set("p", &PodStatus{ID: "p", Name: "m"}, boom, t0.Add(time.Second))
	st, err = c.Get("p")
	if !errors.Is(err, boom) || st.Name != "m" {
		t.Fatalf("cached error: %+v %v", st, err)
	}
	c.Delete("p")
	st, err = c.Get("p")
	if err != nil || st.ID != "p" || st.Name != "" {
		t.Fatalf("after delete: %+v %v", st, err)
	}
	c.Delete("never") // no entry: no-op
}

func TestCacheGetNewerThanImmediate(t *testing.T) {
	c := NewCache()
	t0 := time.Unix(100, 0)
	c.Set("p", &PodStatus{ID: "p", Name: "n"}, nil, t0)
	st, err := c.GetNewerThan("p", t0.Add(-time.Nanosecond))
	if err != nil || st.Name != "n" {
		t.Fatalf("%+v %v", st, err)
	}
	// Equal is not newer: blocks.
	ch := waitAsync(c, "p", t0)
	expectBlocked(t, ch)
	c.Set("p", &PodStatus{ID: "p", Name: "later"}, nil, t0.Add(time.Millisecond))
	if r := expectWoken(t, ch); r.status.Name != "later" {
		t.Fatalf("woken with %+v", r)
	}
	// The global timestamp past minTime answers at once, even for a miss.
	c.UpdateTime(t0.Add(time.Hour))
	st, err = c.GetNewerThan("p", t0.Add(time.Minute))
	if err != nil || st.Name != "later" {
		t.Fatalf("global timestamp, cached: %+v %v", st, err)
	}
	st, err = c.GetNewerThan("miss", t0.Add(time.Minute))
	if err != nil || st.ID != "miss" || st.Name != "" {
		t.Fatalf("global timestamp, miss: %+v %v", st, err)
	}
}

func TestCacheGetNewerThanWokenBySet(t *testing.T) {
	c := NewCache()
	t0 := time.Unix(100, 0)
	ch := waitAsync(c, "p", t0)
	waitForWaiters(t, c, "p", 1)
	// An older status does not satisfy the waiter.
	c.Set("p", &PodStatus{ID: "p", Name: "old"}, nil, t0.Add(-time.Second))
	expectBlocked(t, ch)
	// Another pod's status neither.
	c.Set("q", &PodStatus{ID: "q"}, nil, t0.Add(time.Second))
	expectBlocked(t, ch)
	boom := errors.New("inspect failed")
	c.Set("p", &PodStatus{ID: "p", Name: "new"}, boom, t0.Add(time.Second))
	r := expectWoken(t, ch)
	if r.status.Name != "new" || !errors.Is(r.err, boom) {
		t.Fatalf("woken with %+v", r)
	}
	if n := waiters(c, "p"); n != 0 {
		t.Fatalf("%d waiters left", n)
	}
}

func TestCacheGetNewerThanWokenByUpdateTime(t *testing.T) {
	c := NewCache()
	t0 := time.Unix(100, 0)
	c.Set("p", &PodStatus{ID: "p", Name: "n"}, nil, t0)
	cached := waitAsync(c, "p", t0.Add(time.Second))
	missing := waitAsync(c, "miss", t0.Add(time.Second))
	waitForWaiters(t, c, "p", 1)
	waitForWaiters(t, c, "miss", 1)
	// A global timestamp not past minTime wakes nobody.
	c.UpdateTime(t0.Add(time.Second))
	expectBlocked(t, cached)
	expectBlocked(t, missing)
	c.UpdateTime(t0.Add(2 * time.Second))
	if r := expectWoken(t, cached); r.err != nil || r.status.Name != "n" {
		t.Fatalf("cached: %+v", r)
	}
	if r := expectWoken(t, missing); r.err != nil || r.status.ID != "miss" || r.status.Name != "" {
		t.Fatalf("miss: %+v", r)
	}
}

func TestCacheWaitersWithDifferentTimes(t *testing.T) {
	c := NewCache()
	t0 := time.Unix(100, 0)
	early := waitAsync(c, "p", t0)
	late := waitAsync(c, "p", t0.Add(10*time.Second))
	waitForWaiters(t, c, "p", 2)
	c.Set("p", &PodStatus{ID: "p", Name: "a"}, nil, t0.Add(5*time.Second))
	if r := expectWoken(t, early); r.status.Name != "a" {
		t.Fatalf("early: %+v", r)
	}
	expectBlocked(t, late)
	if n := waiters(c, "p"); n != 1 {
		t.Fatalf("waiters %d, want 1", n)
	}
	c.Set("p", &PodStatus{ID: "p", Name: "b"}, nil, t0.Add(11*time.Second))
	if r := expectWoken(t, late); r.status.Name != "b" {
		t.Fatalf("late: %+v", r)
	}
}

func TestCacheGetNewerThanContext(t *testing.T) {
	c := NewCache()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	st, err := c.GetNewerThanContext(ctx, "p", time.Now())
	if !errors.Is(err, context.DeadlineExceeded) || st != nil {
		t.Fatalf("%+v %v", st, err)
	}
	if d := time.Since(start); d < 25*time.Millisecond {
		t.Fatalf("returned after %v", d)
	}
	if n := waiters(c, "p"); n != 0 {
		t.Fatalf("a cancelled waiter stays: %d", n)
	}
	// Satisfied already: the context does not matter.
	c.Set("p", &PodStatus{ID: "p", Name: "n"}, nil, time.Now())
	st, err = c.GetNewerThanContext(ctx, "p", time.Unix(0, 0))
	if err != nil || st.Name != "n" {
		t.Fatalf("%+v %v", st, err)
	}
}

func TestCacheConcurrent(t *testing.T) {
	c := NewCache()
	t0 := time.Unix(100, 0)
	ids := []UID{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		id := ids[i%len(ids)]
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, err := c.GetNewerThan(id, t0.Add(time.Duration(i)*time.Millisecond))
			if err != nil || st.ID != id {
				t.Errorf("%s: %+v %v", id, st, err)
			}
		}(i)
	}
	for i := 0; i < 100; i++ {
		id := ids[i%len(ids)]
		c.Set(id, &PodStatus{ID: id}, nil, t0.Add(time.Duration(i)*time.Millisecond))
		_, _ = c.Get(id)
	}
	c.UpdateTime(t0.Add(time.Hour))
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("waiters not all woken")
	}
}
