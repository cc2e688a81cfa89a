package legacytest

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// scriptedExec runs the hooks' commands on the fake: "fail" exits 1 with "boom" on stderr, "hang"
// blocks, ignoring its context, until release is closed; anything else is the fake's ExecSync.
type scriptedExec struct {
	fake    *FakeRuntime
	release chan struct{}
	mu      sync.Mutex
	ran     [][]string
}

func (s *scriptedExec) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*legacy.ExecSyncResult, error) {
	s.mu.Lock()
	s.ran = append(s.ran, cmd)
	s.mu.Unlock()
	switch cmd[0] {
	case "fail":
		s.fake.record("ExecSync")
		return &legacy.ExecSyncResult{Stderr: []byte("boom"), ExitCode: 1}, nil
	case "hang":
		s.fake.record("ExecSync")
		<-s.release
		return &legacy.ExecSyncResult{}, nil
	}
	return s.fake.ExecSync(ctx, id, cmd, timeout)
}

func hookedSyncer(t *testing.T) (*FakeRuntime, *legacy.PodSyncer, *legacy.MemoryRecorder, *scriptedExec) {
	fake := NewFakeRuntime()
	rec := legacy.NewMemoryRecorder(0, nil)
	s := legacy.NewPodSyncer(fake, nil, rec, nil)
	ex := &scriptedExec{fake: fake, release: make(chan struct{})}
	t.Cleanup(func() { close(ex.release) })
	s.Hooks = legacy.NewHandlerRunner(ex, nil, legacy.PodIPFromRuntime(fake))
	return fake, s, rec, ex
}

func execHook(cmd ...string) *legacy.LifecycleHandler {
	return &legacy.LifecycleHandler{Exec: &legacy.ExecAction{Command: cmd}}
}

func eventsOf(rec *legacy.MemoryRecorder, reason string) []string {
	var out []string
	for _, e := range rec.Events() {
		if e.Reason == reason {
			out = append(out, e.Message)
		}
	}
	return out
}

// callsAmong keeps the calls named in names, in order.
func callsAmong(fake *FakeRuntime, names ...string) string {
	fake.Lock()
	defer fake.Unlock()
	var out []string
	for _, c := range fake.CalledFunctions {
		for _, n := range names {
			if c == n {
				out = append(out, c)
			}
		}
	}
	return strings.Join(out, " ")
}

func TestPostStartExecRunsAfterStart(t *testing.T) {
	fake, s, _, ex := hookedSyncer(t)
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	pod.Containers[0].Lifecycle = &legacy.Lifecycle{PostStart: execHook("touch", "/started")}
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	if runningOf(fake, "a") == nil {
		t.Fatal("a not running")
	}
	if got := callsAmong(fake, "StartContainer", "ExecSync", "StopContainer"); got != "StartContainer ExecSync" {
		t.Fatalf("calls %q", got)
	}
	if len(ex.ran) != 1 || strings.Join(ex.ran[0], " ") != "touch /started" {
		t.Fatalf("ran %v", ex.ran)
	}
}

func TestPostStartFailureKillsContainer(t *testing.T) {
	fake, s, rec, _ := hookedSyncer(t)
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	pod.Containers[0].Lifecycle = &legacy.Lifecycle{PostStart: execHook("fail")}
	res := syncOnce(t, s, fake, pod)
	if err := res.Error(); !errors.Is(err, legacy.ErrPostStartHook) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("sync error %v, want ErrPostStartHook with the hook's output", err)
	}
	if runningOf(fake, "a") != nil {
		t.Fatal("the container whose postStart failed still runs")
	}
	if got := callsAmong(fake, "StartContainer", "ExecSync", "StopContainer"); got != "StartContainer ExecSync StopContainer" {
		t.Fatalf("calls %q", got)
	}
	if ev := eventsOf(rec, legacy.FailedPostStartHook); len(ev) != 1 || !strings.Contains(ev[0], "boom") {
		t.Fatalf("FailedPostStartHook events %q", ev)
	}
	// The restart policy restarts it at the next sync.
	syncOnce(t, s, fake, pod)
	var attempts []uint32
	for _, c := range fake.FakeContainers() {
		attempts = append(attempts, c.Attempt)
	}
	if len(attempts) != 2 {
		t.Fatalf("not restarted: attempts %v", attempts)
	}
}

func TestHooksNotRunWithoutRunner(t *testing.T) {
	fake := NewFakeRuntime()
	s := legacy.NewPodSyncer(fake, nil, nil, nil)
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	pod.Containers[0].Lifecycle = &legacy.Lifecycle{PostStart: execHook("fail"), PreStop: execHook("fail")}
	if err := syncOnce(t, s, fake, pod).Error(); err != nil {
		t.Fatal(err)
	}
	st, _ := fake.GetPodStatus(context.Background(), pod.UID(), "web", "default")
	if err := s.KillPod(context.Background(), pod, st).Error(); err != nil {
		t.Fatal(err)
	}
	if got := callsAmong(fake, "ExecSync"); got != "" {
		t.Fatalf("hooks ran without a runner: %q", got)
	}
}

func TestPreStopRunsBeforeKill(t *testing.T) {
	t.Run("replaced container", func(t *testing.T) {
		fake, s, _, ex := hookedSyncer(t)
		pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
		pod.StopTimeout = 5 * time.Second
		pod.Containers[0].Lifecycle = &legacy.Lifecycle{PreStop: execHook("drain")}
		syncOnce(t, s, fake, pod)
		fake.ClearCalls()
		pod.Containers[0].Config.Envs = []*runtime.KeyValue{{Key: "X", Value: []byte("1")}}
		if err := syncOnce(t, s, fake, pod).Error(); err != nil {
			t.Fatal(err)
		}
		if got := callsAmong(fake, "ExecSync", "StopContainer", "CreateContainer"); got != "ExecSync StopContainer CreateContainer" {
			t.Fatalf("calls %q", got)
		}
		if len(ex.ran) != 1 || ex.ran[0][0] != "drain" {
			t.Fatalf("ran %v", ex.ran)
		}
	})
	t.Run("pod killed", func(t *testing.T) {
		fake, s, _, _ := hookedSyncer(t)
		pod := syncPodSpec(legacy.RestartPolicyAlways, "a", "b")
		pod.StopTimeout = 5 * time.Second
		pod.Containers[0].Lifecycle = &legacy.Lifecycle{PreStop: execHook("drain")}
		syncOnce(t, s, fake, pod)
		fake.ClearCalls()
		st, _ := fake.GetPodStatus(context.Background(), pod.UID(), "web", "default")
		if err := s.KillPod(context.Background(), pod, st).Error(); err != nil {
			t.Fatal(err)
		}
		// Only a has a hook: it runs, a stops, then the sandbox (and b) stop.
		if got := callsAmong(fake, "ExecSync", "StopContainer", "KillPod"); got != "ExecSync StopContainer KillPod" {
			t.Fatalf("calls %q", got)
		}
	})
}

func TestPreStopHangBoundedByGracePeriod(t *testing.T) {
	fake, s, rec, _ := hookedSyncer(t)
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	pod.StopTimeout = 300 * time.Millisecond
	pod.Containers[0].Lifecycle = &legacy.Lifecycle{PreStop: execHook("hang")}
	syncOnce(t, s, fake, pod)
	st, _ := fake.GetPodStatus(context.Background(), pod.UID(), "web", "default")
	start := time.Now()
	if err := s.KillPod(context.Background(), pod, st).Error(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("the hung preStop held the kill for %v (grace 300ms)", d)
	}
	if runningOf(fake, "a") != nil {
		t.Fatal("a still runs")
	}
	if ev := eventsOf(rec, legacy.FailedPreStopHook); len(ev) != 1 || !strings.Contains(ev[0], "did not complete") {
		t.Fatalf("FailedPreStopHook events %q", ev)
	}
}

func TestLifecycleChangeReplacesContainer(t *testing.T) {
	plain := legacy.ContainerSpec{Config: &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "a"}}}
	if got, want := plain.SpecHashLabel(), legacy.HashString(legacy.SpecHash(plain.Config)); got != want {
		t.Fatalf("a container without hooks changed hash: %s, want %s", got, want)
	}
	fake, s, _, _ := hookedSyncer(t)
	pod := syncPodSpec(legacy.RestartPolicyAlways, "a")
	pod.StopTimeout = time.Second
	pod.Containers[0].Lifecycle = &legacy.Lifecycle{PostStart: execHook("one")}
	syncOnce(t, s, fake, pod)
	a0 := runningOf(fake, "a")
	syncOnce(t, s, fake, pod)
	if a := runningOf(fake, "a"); a == nil || a.ID != a0.ID {
		t.Fatal("an unchanged hook replaced the container")
	}
	pod.Containers[0].Lifecycle = &legacy.Lifecycle{PostStart: execHook("two")}
	syncOnce(t, s, fake, pod)
	if a := runningOf(fake, "a"); a == nil || a.ID == a0.ID {
		t.Fatal("a changed hook did not replace the container")
	}
}
