package legacytest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	testingclock "k8s.io/utils/clock/testing"
)

// podsGets counts the fake's GetPods calls.
func podsGets(f *FakeRuntime) int {
	f.Lock()
	defer f.Unlock()
	n := 0
	for _, c := range f.CalledFunctions {
		if c == "GetPods" {
			n++
		}
	}
	return n
}

// failingGetter fails every list.
type failingGetter struct{}

func (failingGetter) GetPods(context.Context, bool) ([]*legacy.Pod, error) {
	return nil, errors.New("runtime down")
}

func TestRuntimeCache(t *testing.T) {
	ctx := context.Background()
	f := NewFakeRuntime()
	runPod(t, f, "u1", "", "a")
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	cache := legacy.NewRuntimeCacheWithClock(f, 2*time.Second, clk)

	pods, err := cache.GetPods(ctx)
	if err != nil || len(pods) != 1 || pods[0].ID != "u1" || podsGets(f) != 1 {
		t.Fatalf("first GetPods: %d pods, %v, %d lists", len(pods), err, podsGets(f))
	}
	runPod(t, f, "u2", "", "b")
	clk.Step(2 * time.Second)
	if pods, _ := cache.GetPods(ctx); len(pods) != 1 || podsGets(f) != 1 {
		t.Fatalf("within the period: %d pods, %d lists, want the cached 1 and 1", len(pods), podsGets(f))
	}
	clk.Step(time.Millisecond)
	if pods, _ := cache.GetPods(ctx); len(pods) != 2 || podsGets(f) != 2 {
		t.Fatalf("after the period: %d pods, %d lists, want 2 and 2", len(pods), podsGets(f))
	}

	// The cache time is the time the list began: not older than itself, older than a later time.
	if err := cache.ForceUpdateIfOlder(ctx, clk.Now()); err != nil || podsGets(f) != 2 {
		t.Fatalf("force at the cache time: %v, %d lists, want no list", err, podsGets(f))
	}
	clk.Step(time.Millisecond)
	if err := cache.ForceUpdateIfOlder(ctx, clk.Now()); err != nil || podsGets(f) != 3 {
		t.Fatalf("force after the cache time: %v, %d lists, want a list", err, podsGets(f))
	}
	if pods, _ := cache.GetPods(ctx); len(pods) != 2 || podsGets(f) != 3 {
		t.Fatalf("after a forced update: %d pods, %d lists", len(pods), podsGets(f))
	}

	failing := legacy.NewRuntimeCacheWithClock(failingGetter{}, time.Second, clk)
	if _, err := failing.GetPods(ctx); err == nil {
		t.Fatal("a failed list was cached")
	}
	if err := failing.ForceUpdateIfOlder(ctx, clk.Now()); err == nil {
		t.Fatal("a failed forced list gave no error")
	}
}
