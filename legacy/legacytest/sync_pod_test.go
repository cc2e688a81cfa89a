package legacytest

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	testclock "k8s.io/utils/clock/testing"
)

func syncPodSpec(policy legacy.RestartPolicy, names ...string) *legacy.PodSpec {
	p := &legacy.PodSpec{
		Sandbox: &runtime.PodSandboxConfig{
			Metadata: &runtime.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "uid-web"},
		},
		RestartPolicy: policy,
	}
	for _, n := range names {
		p.Containers = append(p.Containers, legacy.ContainerSpec{Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: n},
			Image:    &runtime.ImageSpec{Image: "busybox"},
			Command:  []string{"sleep", "1000"},
		}})
	}
	return p
}

func initSpec(p *legacy.PodSpec, names ...string) *legacy.PodSpec {
	for _, n := range names {
		p.InitContainers = append(p.InitContainers, legacy.ContainerSpec{Config: &runtime.ContainerConfig{
			Metadata: &runtime.ContainerMetadata{Name: n},
			Image:    &runtime.ImageSpec{Image: "busybox"},
			Command:  []string{"true"},
		}})
	}
	return p
}

func readySandbox(p *legacy.PodSpec, attempt uint32) *legacy.PodStatus {
	return &legacy.PodStatus{ID: p.UID(), SandboxStatuses: []*legacy.SandboxStatus{{
		ID: "sb1", UID: p.UID(), Attempt: attempt, State: legacy.SandboxStateReady,
		Labels: map[string]string{legacy.LabelSpecHash: legacy.HashString(legacy.SandboxSpecHash(p.Sandbox))},
	}}}
}

// ctrOf is a container of the sandbox sb1 made from the spec's container of that name.
func ctrOf(p *legacy.PodSpec, name string, typ string, state legacy.ContainerState, exit int, attempt uint32) *legacy.ContainerDetails {
	var cfg *runtime.ContainerConfig
	for _, c := range append(append([]legacy.ContainerSpec{}, p.InitContainers...), p.Containers...) {
		if c.Config.Metadata.Name == name {
			cfg = c.Config
		}
	}
	labels := map[string]string{legacy.LabelSpecHash: legacy.HashString(legacy.SpecHash(cfg)), legacy.LabelContainerType: typ}
	return &legacy.ContainerDetails{
		ContainerStatus: legacy.ContainerStatus{ID: legacy.BuildContainerID("fake", name+"-"+string(rune('0'+attempt))), Name: name,
			State: state, ExitCode: exit, CreatedAt: time.Unix(int64(1000+attempt), 0)},
		SandboxID: "sb1", Attempt: attempt, Config: &runtime.ContainerConfig{Labels: labels},
	}
}

func TestComputePodActions(t *testing.T) {
	changed := func(p *legacy.PodSpec) *legacy.PodSpec {
		p.Containers[0].Config.Args = []string{"new"}
		return p
	}
	tests := []struct {
		name       string
		pod        *legacy.PodSpec
		status     func(p *legacy.PodSpec) *legacy.PodStatus
		containers func(p *legacy.PodSpec) []*legacy.ContainerDetails
		unhealthy  []string
		want       legacy.PodActions
	}{
		{
			name: "no sandbox: create it and start every container",
			pod:  syncPodSpec(legacy.RestartPolicyAlways, "a", "b"),
			want: legacy.PodActions{CreateSandbox: true, NextInitContainer: -1, ContainersToStart: []int{0, 1}, Reason: "no sandbox"},
		},
		{
			name: "no sandbox with init containers: first init container only",
			pod:  initSpec(syncPodSpec(legacy.RestartPolicyAlways, "a"), "i1", "i2"),
			want: legacy.PodActions{CreateSandbox: true, NextInitContainer: 0, Reason: "no sandbox"},
		},
		{
			name: "sandbox not ready: kill the pod, new sandbox with the next attempt",
			pod:  syncPodSpec(legacy.RestartPolicyAlways, "a"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus {
				s := readySandbox(p, 2)
				s.SandboxStatuses[0].State = legacy.SandboxStateNotReady
				return s
			},
			want: legacy.PodActions{KillPod: true, CreateSandbox: true, Attempt: 3, NextInitContainer: -1, ContainersToStart: []int{0}, Reason: "sandbox not ready"},
		},
		{
			name: "sandbox spec changed: re-created",
			pod:  syncPodSpec(legacy.RestartPolicyAlways, "a"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus {
				s := readySandbox(p, 0)
				s.SandboxStatuses[0].Labels[legacy.LabelSpecHash] = "other"
				return s
			},
			want: legacy.PodActions{KillPod: true, CreateSandbox: true, Attempt: 1, NextInitContainer: -1, ContainersToStart: []int{0}, Reason: "sandbox spec changed"},
		},
		{
			name:   "ready sandbox, no containers yet: start them",
			pod:    syncPodSpec(legacy.RestartPolicyAlways, "a", "b"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			want:   legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1, ContainersToStart: []int{0, 1}},
		},
		{
			name:   "all running: nothing",
			pod:    syncPodSpec(legacy.RestartPolicyAlways, "a", "b"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "a", "regular", legacy.ContainerStateRunning, 0, 0), ctrOf(p, "b", "regular", legacy.ContainerStateRunning, 0, 0)}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1},
		},
		{
			name:   "Always: an exited container restarts, whatever its exit code",
			pod:    syncPodSpec(legacy.RestartPolicyAlways, "a", "b"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "a", "regular", legacy.ContainerStateExited, 0, 0), ctrOf(p, "b", "regular", legacy.ContainerStateRunning, 0, 0)}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1, ContainersToStart: []int{0}},
		},
		{
			name:   "OnFailure: exit 0 stays, exit 1 restarts",
			pod:    syncPodSpec(legacy.RestartPolicyOnFailure, "a", "b"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "a", "regular", legacy.ContainerStateExited, 0, 0), ctrOf(p, "b", "regular", legacy.ContainerStateExited, 1, 0)}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1, ContainersToStart: []int{1}},
		},
		{
			name:   "Never: nothing restarts",
			pod:    syncPodSpec(legacy.RestartPolicyNever, "a"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "a", "regular", legacy.ContainerStateExited, 1, 0)}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1},
		},
		{
			name:   "the newest attempt decides: an old failure does not restart a running one",
			pod:    syncPodSpec(legacy.RestartPolicyAlways, "a"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "a", "regular", legacy.ContainerStateExited, 1, 0), ctrOf(p, "a", "regular", legacy.ContainerStateRunning, 0, 1)}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1},
		},
		{
			name:   "changed spec: the running container is replaced",
			pod:    syncPodSpec(legacy.RestartPolicyAlways, "a"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				c := ctrOf(p, "a", "regular", legacy.ContainerStateRunning, 0, 0)
				changed(p)
				return []*legacy.ContainerDetails{c}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1, ContainersToStart: []int{0},
				ContainersToKill: []legacy.ContainerKill{{ID: "a-0", Name: "a", Message: "Container a definition changed, will be restarted"}}},
		},
		{
			name:   "liveness failure: killed (the next sync restarts it through the backoff)",
			pod:    syncPodSpec(legacy.RestartPolicyAlways, "a"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "a", "regular", legacy.ContainerStateRunning, 0, 0)}
			},
			unhealthy: []string{"a-0"},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1,
				ContainersToKill: []legacy.ContainerKill{{ID: "a-0", Name: "a", Message: "Container a failed liveness probe, will be restarted"}}},
		},
		{
			name:   "a running container the spec lost is killed",
			pod:    syncPodSpec(legacy.RestartPolicyAlways, "a"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				old := ctrOf(p, "a", "regular", legacy.ContainerStateRunning, 0, 0)
				gone := ctrOf(p, "a", "regular", legacy.ContainerStateRunning, 0, 0)
				gone.ID, gone.Name = legacy.BuildContainerID("fake", "gone-0"), "gone"
				return []*legacy.ContainerDetails{old, gone}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1,
				ContainersToKill: []legacy.ContainerKill{{ID: "gone-0", Name: "gone", Message: "Container gone is no longer in the pod's spec, it will be killed"}}},
		},
		{
			name:   "init: the first done, the second next",
			pod:    initSpec(syncPodSpec(legacy.RestartPolicyAlways, "a"), "i1", "i2"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "i1", "init", legacy.ContainerStateExited, 0, 0)}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: 1},
		},
		{
			name:   "init: a running one is waited for",
			pod:    initSpec(syncPodSpec(legacy.RestartPolicyAlways, "a"), "i1", "i2"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "i1", "init", legacy.ContainerStateRunning, 0, 0)}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1},
		},
		{
			name:   "init: a failed one is restarted",
			pod:    initSpec(syncPodSpec(legacy.RestartPolicyOnFailure, "a"), "i1"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "i1", "init", legacy.ContainerStateExited, 2, 0)}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: 0},
		},
		{
			name:   "init: a failed one with Never fails the pod",
			pod:    initSpec(syncPodSpec(legacy.RestartPolicyNever, "a"), "i1"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "i1", "init", legacy.ContainerStateExited, 2, 0)}
			},
			want: legacy.PodActions{SandboxID: "sb1", KillPod: true, NextInitContainer: -1},
		},
		{
			name:   "init all done: the containers start",
			pod:    initSpec(syncPodSpec(legacy.RestartPolicyAlways, "a", "b"), "i1", "i2"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus { return readySandbox(p, 0) },
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "i1", "init", legacy.ContainerStateExited, 0, 0), ctrOf(p, "i2", "init", legacy.ContainerStateExited, 0, 0)}
			},
			want: legacy.PodActions{SandboxID: "sb1", NextInitContainer: -1, ContainersToStart: []int{0, 1}},
		},
		{
			name: "Never pod whose sandbox stopped after its containers ran: done",
			pod:  syncPodSpec(legacy.RestartPolicyNever, "a"),
			status: func(p *legacy.PodSpec) *legacy.PodStatus {
				s := readySandbox(p, 0)
				s.SandboxStatuses[0].State = legacy.SandboxStateNotReady
				return s
			},
			containers: func(p *legacy.PodSpec) []*legacy.ContainerDetails {
				return []*legacy.ContainerDetails{ctrOf(p, "a", "regular", legacy.ContainerStateExited, 0, 0)}
			},
			want: legacy.PodActions{KillPod: true, Attempt: 1, NextInitContainer: -1, Reason: "sandbox not ready"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var status *legacy.PodStatus
			if tt.status != nil {
				status = tt.status(tt.pod)
			}
			var cs []*legacy.ContainerDetails
			if tt.containers != nil {
				cs = tt.containers(tt.pod)
			}
			unhealthy := map[string]bool{}
			for _, id := range tt.unhealthy {
				unhealthy[id] = true
			}
			got := legacy.ComputePodActions(tt.pod, status, cs, unhealthy)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("actions:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// syncOnce reads the fake's pod status and syncs the pod.
func syncOnce(t *testing.T, s *legacy.PodSyncer, fake *FakeRuntime, pod *legacy.PodSpec) legacy.PodSyncResult {
	t.Helper()
	st, err := fake.GetPodStatus(context.Background(), pod.UID(), "web", "default")
	if err != nil {
		t.Fatal(err)
	}
	return s.SyncPod(context.Background(), pod, st)
}

func runningOf(fake *FakeRuntime, name string) *legacy.ContainerDetails {
	for _, c := range fake.FakeContainers() {
		if c.Name == name && c.State == legacy.ContainerStateRunning {
			return c
		}
	}
	return nil
}

// TestSyncPodCrashLoopBackoff crashes a container again and again: the first restart is at once,
// then each waits 10 s, 20 s, 40 s ... capped at 300 s, with BackOff events and
// ErrCrashLoopBackOff meanwhile.
func TestSyncPodCrashLoopBackoff(t *testing.T) {
	fake := NewFakeRuntime()
	clk := testclock.NewFakeClock(time.Now())
	rec := legacy.NewMemoryRecorder(0, clk)
	s := legacy.NewPodSyncer(fake, nil, rec, legacy.NewCrashLoopBackoff(clk))
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	if runningOf(fake, "a") == nil {
		t.Fatal("container a not started")
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i, delay := range want {
		c := runningOf(fake, "a")
		if c == nil {
			t.Fatalf("crash %d: container a not running", i)
		}
		if int(c.Attempt) != i {
			t.Fatalf("crash %d: attempt %d", i, c.Attempt)
		}
		fake.StopContainer(context.Background(), c.ID.ID, 0)
		clk.SetTime(time.Now())
		if delay > 0 {
			clk.Step(delay - time.Second)
			res := syncOnce(t, s, fake, pod)
			if !errors.Is(res.Error(), legacy.ErrCrashLoopBackOff) {
				t.Fatalf("crash %d: %v before the delay %v: want ErrCrashLoopBackOff, got %v", i, delay-time.Second, delay, res.Error())
			}
			if !strings.Contains(res.Error().Error(), "back-off "+delay.String()) {
				t.Errorf("crash %d: message %v", i, res.Error())
			}
			if runningOf(fake, "a") != nil {
				t.Fatalf("crash %d: restarted within the backoff", i)
			}
			clk.Step(time.Second + time.Millisecond)
		}
		if err := syncOnce(t, s, fake, pod).Error(); err != nil {
			t.Fatalf("crash %d: after %v: %v", i, delay, err)
		}
		if runningOf(fake, "a") == nil {
			t.Fatalf("crash %d: not restarted after %v", i, delay)
		}
	}
	var reasons []string
	for _, e := range rec.EventsFor(pod.EventObject()) {
		reasons = append(reasons, e.Reason)
	}
	joined := strings.Join(reasons, ",")
	if !strings.HasPrefix(joined, "Created,Started,Created,Started,BackOff,Created,Started,BackOff") {
		t.Errorf("events: %s", joined)
	}
}

func TestCrashLoopBackoffResets(t *testing.T) {
	clk := testclock.NewFakeClock(time.Unix(100000, 0))
	s := legacy.NewPodSyncer(NewFakeRuntime(), nil, nil, legacy.NewCrashLoopBackoff(clk))
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	exited := func(started, finished time.Time) *legacy.ContainerDetails {
		return &legacy.ContainerDetails{ContainerStatus: legacy.ContainerStatus{Name: "a", State: legacy.ContainerStateExited, StartedAt: started, FinishedAt: finished}}
	}
	// Three quick crashes: 0, then 10 s, then 20 s.
	for i, d := range []time.Duration{0, 10 * time.Second, 20 * time.Second} {
		finished := clk.Now()
		clk.Step(d)
		if wait, msg := s.DoBackOff(pod, exited(finished.Add(-time.Second), finished)); wait {
			t.Fatalf("crash %d: waits: %s", i, msg)
		}
	}
	if got := s.Backoff.Get(legacy.BackoffKey(pod, "a")); got != 40*time.Second {
		t.Fatalf("delay after three crashes: %v", got)
	}
	// It then runs for 10 minutes and crashes: the backoff starts over (the restart is at once).
	start := clk.Now()
	clk.Step(legacy.ContainerBackoffResetAfter)
	if wait, msg := s.DoBackOff(pod, exited(start, clk.Now())); wait {
		t.Fatalf("after a long run: waits: %s", msg)
	}
	if got := s.Backoff.Get(legacy.BackoffKey(pod, "a")); got != 10*time.Second {
		t.Fatalf("delay after the reset: %v", got)
	}
	// A short run crashing right after: in backoff.
	if wait, _ := s.DoBackOff(pod, exited(clk.Now(), clk.Now())); !wait {
		t.Fatal("a crash right after the restart is not backed off")
	}
}

func TestSyncPodReplacesChangedContainer(t *testing.T) {
	fake := NewFakeRuntime()
	rec := legacy.NewMemoryRecorder(0, nil)
	s := legacy.NewPodSyncer(fake, nil, rec, nil)
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a", "b")
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	a0, b0 := runningOf(fake, "a"), runningOf(fake, "b")
	// Nothing changed: nothing happens.
	fake.ClearCalls()
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	for _, c := range fake.CalledFunctions {
		if c == "CreateContainer" || c == "StopContainer" || c == "RunPodSandbox" {
			t.Fatalf("a sync without changes called %v", fake.CalledFunctions)
		}
	}
	pod.Containers[0].Config.Envs = []*runtime.KeyValue{{Key: "X", Value: []byte("1")}}
	res := syncOnce(t, s, fake, pod)
	if err := res.Error(); err != nil {
		t.Fatal(err)
	}
	a1 := runningOf(fake, "a")
	if a1 == nil || a1.ID == a0.ID || a1.Attempt != 1 || a1.Config.Envs[0].Key != "X" {
		t.Fatalf("a not replaced: %+v", a1)
	}
	if b := runningOf(fake, "b"); b == nil || b.ID != b0.ID {
		t.Fatal("b was touched")
	}
	if !strings.HasSuffix(a1.Config.LogPath, "a/1.log") {
		t.Errorf("log path %q", a1.Config.LogPath)
	}
	var actions []string
	for _, r := range res.SyncResults {
		actions = append(actions, string(r.Action)+":"+r.Target.(string))
	}
	if strings.Join(actions, " ") != "KillContainer:a StartContainer:a" {
		t.Errorf("results %v", actions)
	}
}

func TestSyncPodInitContainersInOrder(t *testing.T) {
	fake := NewFakeRuntime()
	s := legacy.NewPodSyncer(fake, nil, nil, nil)
	pod := initSpec(syncPodSpec(legacy.RestartPolicyAlways, "a"), "i1", "i2")
	exit0 := func(name string) {
		t.Helper()
		c := runningOf(fake, name)
		if c == nil {
			t.Fatalf("%s is not running: %+v", name, fake.FakeContainers())
		}
		fake.StopContainer(context.Background(), c.ID.ID, 0)
		fc := fake.containers()
		fc.mu.Lock()
		fc.byID[c.ID.ID].ExitCode = 0
		fc.mu.Unlock()
	}
	syncOnce(t, s, fake, pod)
	if runningOf(fake, "i2") != nil || runningOf(fake, "a") != nil {
		t.Fatal("more than the first init container started")
	}
	syncOnce(t, s, fake, pod) // i1 still runs: nothing
	exit0("i1")
	syncOnce(t, s, fake, pod)
	if runningOf(fake, "a") != nil {
		t.Fatal("a started before i2")
	}
	exit0("i2")
	syncOnce(t, s, fake, pod)
	if runningOf(fake, "a") == nil {
		t.Fatal("a not started after the init containers")
	}
	// Initialized: a crash of a does not run the init containers again.
	c := runningOf(fake, "a")
	fake.StopContainer(context.Background(), c.ID.ID, 0)
	syncOnce(t, s, fake, pod)
	if runningOf(fake, "i1") != nil {
		t.Fatal("init container ran again")
	}
}

func TestSyncPodRecreatesStoppedSandbox(t *testing.T) {
	fake := NewFakeRuntime()
	rec := legacy.NewMemoryRecorder(0, nil)
	s := legacy.NewPodSyncer(fake, nil, rec, nil)
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	syncOnce(t, s, fake, pod)
	first := fake.StartedSandboxes[0]
	fake.StopPodSandbox(context.Background(), first)
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	if len(fake.StartedSandboxes) != 2 || fake.Sandboxes[fake.StartedSandboxes[1]].Attempt != 1 {
		t.Fatalf("sandboxes %v", fake.StartedSandboxes)
	}
	if _, ok := fake.Sandboxes[first]; ok {
		t.Error("the old sandbox was not removed")
	}
	found := false
	for _, e := range rec.Events() {
		found = found || e.Reason == legacy.SandboxChanged
	}
	if !found {
		t.Error("no SandboxChanged event")
	}
}

// TestSyncPodLivenessFailuresBackOff: a container killed for its liveness probe restarts by the
// policy at the next sync, the first time at once and then through the crash-loop backoff.
func TestSyncPodLivenessFailuresBackOff(t *testing.T) {
	fake := NewFakeRuntime()
	clk := testclock.NewFakeClock(time.Now())
	s := legacy.NewPodSyncer(fake, nil, nil, legacy.NewCrashLoopBackoff(clk))
	unhealthy := ""
	s.Unhealthy = func(_ *legacy.PodSpec, id string) bool { return id == unhealthy }
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	syncOnce(t, s, fake, pod)
	for i := 0; i < 3; i++ {
		c := runningOf(fake, "a")
		if c == nil || int(c.Attempt) != i {
			t.Fatalf("round %d: running %+v", i, c)
		}
		unhealthy = c.ID.ID
		syncOnce(t, s, fake, pod) // kills it
		if runningOf(fake, "a") != nil {
			t.Fatalf("round %d: not killed", i)
		}
		clk.SetTime(time.Now())
		res := syncOnce(t, s, fake, pod)
		if i == 0 {
			if res.Error() != nil || runningOf(fake, "a") == nil {
				t.Fatalf("first liveness kill: not restarted at once: %v", res.Error())
			}
			continue
		}
		if !errors.Is(res.Error(), legacy.ErrCrashLoopBackOff) {
			t.Fatalf("round %d: restart not backed off: %v", i, res.Error())
		}
		clk.Step(time.Duration(1<<(i-1)) * 10 * time.Second)
		if err := syncOnce(t, s, fake, pod).Error(); err != nil || runningOf(fake, "a") == nil {
			t.Fatalf("round %d: not restarted after the backoff: %v", i, err)
		}
	}
}

func TestFakeRuntimeSyncPod(t *testing.T) {
	fake := NewFakeRuntime()
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	if err := fake.SyncPod(context.Background(), pod, nil, nil).Error(); err != nil {
		t.Fatal(err)
	}
	if runningOf(fake, "a") == nil || fake.CalledFunctions[0] != "SyncPod" {
		t.Fatalf("calls %v", fake.CalledFunctions)
	}
}

// TestSyncPodImagePull: images come through the ImagePuller with the container's pull policy; a
// failed pull is ErrImagePull, then ErrImagePullBackOff until the image backoff passes, and no
// container is created meanwhile.
func TestSyncPodImagePull(t *testing.T) {
	fake := NewFakeRuntime()
	clk := testclock.NewFakeClock(time.Now())
	backend := newFakeBackend()
	backend.pullErr = errors.New("connection refused")
	rec := legacy.NewMemoryRecorder(0, clk)
	s := legacy.NewPodSyncer(fake, legacy.NewImagePuller(rec, backend, legacy.NewImagePullBackoff(clk)), rec, nil)
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	pod.Containers[0].PullPolicy = legacy.PullIfNotPresent
	if err := syncOnce(t, s, fake, pod).Error(); !errors.Is(err, legacy.ErrImagePull) {
		t.Fatalf("first sync: %v", err)
	}
	if err := syncOnce(t, s, fake, pod).Error(); !errors.Is(err, legacy.ErrImagePullBackOff) {
		t.Fatalf("second sync: %v", err)
	}
	if len(fake.FakeContainers()) != 0 {
		t.Fatal("a container was created without its image")
	}
	backend.mu.Lock()
	backend.pullErr = nil
	backend.mu.Unlock()
	clk.Step(legacy.ImagePullBackoffInitial + time.Second)
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatalf("after the backoff: %v", err)
	}
	if runningOf(fake, "a") == nil {
		t.Fatal("not started after the pull")
	}
	var reasons []string
	for _, e := range rec.EventsFor(pod.EventObject()) {
		reasons = append(reasons, e.Reason)
	}
	if got := strings.Join(reasons, ","); !strings.HasPrefix(got, "Pulling,Failed") || !strings.Contains(got, "BackOff") || !strings.HasSuffix(got, "Pulled,Created,Started") {
		t.Errorf("events %s", got)
	}
	// Never with the image absent.
	pod2 := syncPodSpec(legacy.RestartPolicyAlways, "b")
	pod2.Sandbox.Metadata.Uid, pod2.Sandbox.Metadata.Name = "uid-never", "never"
	pod2.Containers[0].Config.Image.Image = "absent"
	pod2.Containers[0].PullPolicy = legacy.PullNever
	st, _ := fake.GetPodStatus(context.Background(), pod2.UID(), "never", "default")
	if err := s.SyncPod(context.Background(), pod2, st).Error(); !errors.Is(err, legacy.ErrImageNeverPull) {
		t.Fatalf("Never: %v", err)
	}
}
