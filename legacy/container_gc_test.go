package legacy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

type fakeGCRuntime struct {
	containers []GCContainer
	sandboxes  map[string]bool
	failRemove map[string]bool
	removed    []string
	listErr    error
}

func (f *fakeGCRuntime) GCContainers(ctx context.Context) ([]GCContainer, error) {
	return append([]GCContainer(nil), f.containers...), f.listErr
}

func (f *fakeGCRuntime) SandboxExists(ctx context.Context, id string) bool { return f.sandboxes[id] }

func (f *fakeGCRuntime) RemoveGCContainer(ctx context.Context, c GCContainer) error {
	if f.failRemove[c.ID] {
		return errors.New("remove failed")
	}
	f.removed = append(f.removed, c.ID)
	return nil
}

var gcNow = time.Unix(1_000_000, 0)

// ctr is a dead container of pod (sandbox "sb-"+pod), created age minutes ago.
func ctr(id, pod, name string, age int) GCContainer {
	return GCContainer{ID: id, Name: name, PodUID: UID(pod), SandboxID: "sb-" + pod, CreatedAt: gcNow.Add(-time.Duration(age) * time.Minute)}
}

func running(c GCContainer) GCContainer { c.Running = true; return c }

func orphan(c GCContainer) GCContainer { c.SandboxID = "gone-" + c.SandboxID; return c }

func unidentified(c GCContainer) GCContainer { c.Name, c.PodUID = "", ""; return c }

func TestContainerGCPolicy(t *testing.T) {
	cases := []struct {
		name       string
		policy     ContainerGCPolicy
		containers []GCContainer
		// want is the removal order.
		want []string
	}{
		{
			name:   "running and young containers are never removed",
			policy: ContainerGCPolicy{MinAge: 10 * time.Minute, MaxPerPodContainer: 0, MaxContainers: 0},
			containers: []GCContainer{
				running(ctr("run", "p", "c", 60)), ctr("young", "p", "c", 5), ctr("old", "p", "c", 11),
				orphan(ctr("young-orphan", "q", "c", 1)), running(orphan(ctr("running-orphan", "q", "c", 60))),
			},
			want: []string{"old"},
		},
		{
			name:       "no limits: only orphans and unidentified",
			policy:     ContainerGCPolicy{MinAge: 0, MaxPerPodContainer: -1, MaxContainers: -1},
			containers: []GCContainer{ctr("a1", "p", "a", 1), ctr("a2", "p", "a", 2), orphan(ctr("o1", "q", "a", 3)), unidentified(ctr("u", "", "", 4)), orphan(ctr("o2", "q", "b", 5))},
			want:       []string{"o1", "u", "o2"},
		},
		{
			name:       "orphan policy keeps the dead containers of live pods",
			policy:     OrphanGCPolicy,
			containers: []GCContainer{ctr("a1", "p", "a", 2), ctr("a2", "p", "a", 3), orphan(ctr("o1", "q", "a", 3)), orphan(ctr("fresh", "q", "a", 0))},
			want:       []string{"o1"},
		},
		{
			name:   "orphans go even when limits would keep them",
			policy: ContainerGCPolicy{MaxPerPodContainer: 5, MaxContainers: 100},
			containers: []GCContainer{
				orphan(ctr("o1", "q", "a", 3)), ctr("k", "p", "a", 1),
			},
			want: []string{"o1"},
		},
		{
			name:   "max per pod container keeps the newest of each group",
			policy: ContainerGCPolicy{MaxPerPodContainer: 1, MaxContainers: -1},
			containers: []GCContainer{
				ctr("a3", "p", "a", 3), ctr("a1", "p", "a", 1), ctr("a2", "p", "a", 2),
				ctr("b1", "p", "b", 1), ctr("qa2", "q", "a", 2), ctr("qa5", "q", "a", 5),
			},
			want: []string{"a2", "a3", "qa5"},
		},
		{
			name:       "max per pod container 2",
			policy:     ContainerGCPolicy{MaxPerPodContainer: 2, MaxContainers: -1},
			containers: []GCContainer{ctr("a1", "p", "a", 1), ctr("a2", "p", "a", 2), ctr("a3", "p", "a", 3), ctr("a4", "p", "a", 4)},
			want:       []string{"a3", "a4"},
		},
		{
			name:       "max per pod container 0 removes all dead ones",
			policy:     ContainerGCPolicy{MaxPerPodContainer: 0, MaxContainers: -1},
			containers: []GCContainer{ctr("a1", "p", "a", 1), ctr("b1", "p", "b", 2), running(ctr("r", "p", "a", 3))},
			want:       []string{"a1", "b1"},
		},
		{
			name:   "max containers caps each group evenly",
			policy: ContainerGCPolicy{MaxPerPodContainer: -1, MaxContainers: 4},
			containers: []GCContainer{
				ctr("a1", "p", "a", 1), ctr("a2", "p", "a", 2), ctr("a3", "p", "a", 3), ctr("a4", "p", "a", 4),
				ctr("b1", "p", "b", 10), ctr("b2", "p", "b", 20),
			},
			// 4 / 2 groups = 2 per group.
			want: []string{"a3", "a4"},
		},
		{
			name:   "max containers under the number of groups: one per group, then the globally oldest",
			policy: ContainerGCPolicy{MaxPerPodContainer: -1, MaxContainers: 2},
			containers: []GCContainer{
				ctr("a1", "p", "a", 1), ctr("a2", "p", "a", 2),
				ctr("b1", "p", "b", 5), ctr("c1", "q", "c", 3), ctr("c2", "q", "c", 9),
			},
			// Groups capped at max(1, 2/3)=1: a2 and c2 go; a1, b1, c1 remain, 1 over; the oldest (b1) goes.
			want: []string{"a2", "c2", "b1"},
		},
		{
			name:   "max containers 0 removes all, oldest last",
			policy: ContainerGCPolicy{MaxPerPodContainer: -1, MaxContainers: 0},
			containers: []GCContainer{
				ctr("a1", "p", "a", 1), ctr("a2", "p", "a", 2), ctr("b1", "p", "b", 5),
			},
			want: []string{"a2", "b1", "a1"},
		},
		{
			name:   "both limits",
			policy: ContainerGCPolicy{MaxPerPodContainer: 2, MaxContainers: 3},
			containers: []GCContainer{
				ctr("a1", "p", "a", 1), ctr("a2", "p", "a", 2), ctr("a3", "p", "a", 3),
				ctr("b1", "p", "b", 4), ctr("b2", "p", "b", 5),
			},
			// Per group 2: a3 goes; 4 left > 3; cap max(1, 3/2)=1: a2, b2 go; 2 left.
			want: []string{"a3", "a2", "b2"},
		},
		{
			name:   "under the limits nothing goes",
			policy: ContainerGCPolicy{MaxPerPodContainer: 2, MaxContainers: 10},
			containers: []GCContainer{
				ctr("a1", "p", "a", 1), ctr("a2", "p", "a", 2), ctr("b1", "p", "b", 4),
			},
			want: nil,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rt := &fakeGCRuntime{containers: tc.containers, sandboxes: map[string]bool{"sb-p": true, "sb-q": true}}
			gc, err := NewContainerGC(rt, tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			gc.clock = testingclock.NewFakePassiveClock(gcNow)
			plan, err := gc.Plan(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var planned []string
			for _, c := range plan {
				planned = append(planned, c.ID)
			}
			if !reflect.DeepEqual(planned, tc.want) {
				t.Fatalf("plan %v, want %v", planned, tc.want)
			}
			if len(rt.removed) != 0 {
				t.Fatal("Plan removed containers")
			}
			removed, err := gc.GarbageCollect(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rt.removed, tc.want) || len(removed) != len(tc.want) {
				t.Fatalf("removed %v, want %v", rt.removed, tc.want)
			}
		})
	}
}

func TestContainerGCErrors(t *testing.T) {
	if _, err := NewContainerGC(&fakeGCRuntime{}, ContainerGCPolicy{MinAge: -time.Second}); err == nil {
		t.Fatal("negative MinAge accepted")
	}
	rt := &fakeGCRuntime{listErr: errors.New("list failed")}
	gc, _ := NewContainerGC(rt, ContainerGCPolicy{MaxPerPodContainer: 0, MaxContainers: 0})
	if _, err := gc.GarbageCollect(context.Background()); err == nil || !strings.Contains(err.Error(), "list failed") {
		t.Fatalf("list error: %v", err)
	}
	// A failed removal does not stop the others.
	rt = &fakeGCRuntime{
		containers: []GCContainer{orphan(ctr("x", "p", "a", 1)), orphan(ctr("y", "p", "a", 2)), orphan(ctr("z", "p", "a", 3))},
		failRemove: map[string]bool{"y": true},
	}
	gc, _ = NewContainerGC(rt, OrphanGCPolicy)
	gc.clock = testingclock.NewFakePassiveClock(gcNow.Add(time.Hour))
	removed, err := gc.GarbageCollect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "y") {
		t.Fatalf("error %v", err)
	}
	got := fmt.Sprint(rt.removed)
	if got != "[x z]" || len(removed) != 2 {
		t.Fatalf("removed %s", got)
	}
}

func TestContainerGCSandboxLookupsCached(t *testing.T) {
	rt := &countingGCRuntime{fakeGCRuntime: fakeGCRuntime{sandboxes: map[string]bool{"sb-p": true}}}
	for i := 0; i < 20; i++ {
		rt.containers = append(rt.containers, ctr(fmt.Sprint(i), "p", "a", i))
	}
	gc, _ := NewContainerGC(rt, OrphanGCPolicy)
	gc.clock = testingclock.NewFakePassiveClock(gcNow.Add(time.Hour))
	if _, err := gc.Plan(context.Background()); err != nil {
		t.Fatal(err)
	}
	if rt.lookups != 1 {
		t.Fatalf("%d sandbox lookups, want 1", rt.lookups)
	}
}

type countingGCRuntime struct {
	fakeGCRuntime
	lookups int
}

func (c *countingGCRuntime) SandboxExists(ctx context.Context, id string) bool {
	c.lookups++
	return c.fakeGCRuntime.SandboxExists(ctx, id)
}

// readinessGCRuntime tells which sandboxes are ready.
type readinessGCRuntime struct {
	fakeGCRuntime
	ready map[string]bool
}

func (r *readinessGCRuntime) SandboxReady(ctx context.Context, id string) bool { return r.ready[id] }

func TestContainerGCScope(t *testing.T) {
	// Pod p runs, pod q stopped (its sandbox exists, not ready), pod r is gone.
	containers := []GCContainer{
		ctr("p1", "p", "a", 5), ctr("q1", "q", "a", 5), orphan(ctr("r1", "r", "a", 5)), unidentified(ctr("u", "x", "a", 5)),
	}
	keepAll := ContainerGCPolicy{MaxPerPodContainer: -1, MaxContainers: -1}
	for _, tc := range []struct {
		scope GCScope
		want  string
	}{
		{GCScope{}, "[u]"},
		{GCScope{AllSourcesReady: true}, "[r1 u]"},
		{GCScope{EvictNonDeletedPods: true}, "[u]"},
		{GCScope{AllSourcesReady: true, EvictNonDeletedPods: true}, "[q1 r1 u]"},
	} {
		rt := &readinessGCRuntime{
			fakeGCRuntime: fakeGCRuntime{containers: containers, sandboxes: map[string]bool{"sb-p": true, "sb-q": true}},
			ready:         map[string]bool{"sb-p": true},
		}
		gc, _ := NewContainerGC(rt, keepAll)
		gc.clock = testingclock.NewFakePassiveClock(gcNow)
		if _, err := gc.Collect(context.Background(), tc.scope); err != nil {
			t.Fatal(err)
		}
		removed := append([]string(nil), rt.removed...)
		sort.Strings(removed)
		if got := fmt.Sprint(removed); got != tc.want {
			t.Errorf("%+v: removed %s, want %s", tc.scope, got, tc.want)
		}
	}
}

func TestGarbageCollectOnce(t *testing.T) {
	rt := &fakeGCRuntime{containers: []GCContainer{orphan(ctr("o", "p", "a", 0))}}
	if err := GarbageCollect(context.Background(), rt, ContainerGCPolicy{MaxPerPodContainer: -1, MaxContainers: -1}, true, false); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rt.removed) != "[o]" {
		t.Fatalf("removed %v", rt.removed)
	}
	err := GarbageCollect(context.Background(), rt, ContainerGCPolicy{MinAge: -1}, true, false)
	if !IsInvalidArgument(err) {
		t.Fatalf("negative MinAge: %v", err)
	}
}
