package legacytest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"
)

// fakeBackend is an ImageBackend whose pulls fail or succeed on demand.
type fakeBackend struct {
	mu       sync.Mutex
	present  map[string]string // ref -> id
	inspect  error
	pullErr  error
	pulls    []string
	auths    []*runtime.AuthConfig
	block    chan struct{} // when set, pulls wait for it
	running  atomic.Int32
	peak     atomic.Int32
	okAuth   string // when set, only this username succeeds
	progress bool
}

func newFakeBackend() *fakeBackend { return &fakeBackend{present: map[string]string{}} }

func (f *fakeBackend) ImageRef(ctx context.Context, spec legacy.ImageSpec) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inspect != nil {
		return "", f.inspect
	}
	return f.present[spec.Image], nil
}

func (f *fakeBackend) PullImage(ctx context.Context, spec legacy.ImageSpec, auth *runtime.AuthConfig, progress func(legacy.PullProgress)) (string, error) {
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for {
		p := f.peak.Load()
		if n <= p || f.peak.CompareAndSwap(p, n) {
			break
		}
	}
	f.mu.Lock()
	f.pulls = append(f.pulls, spec.Image)
	f.auths = append(f.auths, auth)
	block, okAuth := f.block, f.okAuth
	f.mu.Unlock()
	if progress != nil {
		progress(legacy.PullProgress{Ref: spec.Image, Done: 1, Total: 2})
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	if okAuth != "" && (auth == nil || auth.Username != okAuth) {
		return "", errors.New("401 unauthorized")
	}
	f.mu.Lock()
	err := f.pullErr
	f.mu.Unlock()
	if err != nil {
		return "", err
	}
	id := "sha256:" + spec.Image
	f.mu.Lock()
	f.present[spec.Image] = id
	f.mu.Unlock()
	return id, nil
}

func (f *fakeBackend) ListImages(ctx context.Context) ([]legacy.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []legacy.Image
	for ref, id := range f.present {
		out = append(out, legacy.Image{ID: id, RepoTags: []string{ref}})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (f *fakeBackend) RemoveImage(ctx context.Context, spec legacy.ImageSpec) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.present, spec.Image)
	return nil
}

// BackendImages is the Runtime's image half over an ImageBackend: a pull goes to the backend (no
// puller's policy or events), presence is the backend's ImageRef.
func TestBackendImages(t *testing.T) {
	ctx := context.Background()
	b := newFakeBackend()
	imgs := legacy.BackendImages{Backend: b}
	if ok, err := imgs.IsImagePresent(ctx, legacy.ImageSpec{Image: "busybox"}); ok || err != nil {
		t.Fatalf("present before the pull: %v %v", ok, err)
	}
	auth := &runtime.AuthConfig{Username: "u"}
	id, err := imgs.PullImage(ctx, legacy.ImageSpec{Image: "busybox"}, auth)
	if err != nil || id != "sha256:busybox" || b.pullCount() != 1 || b.auths[0] != auth {
		t.Fatalf("pull: %q %v, %d pulls", id, err, b.pullCount())
	}
	if ok, err := imgs.IsImagePresent(ctx, legacy.ImageSpec{Image: "busybox"}); !ok || err != nil {
		t.Fatalf("present after the pull: %v %v", ok, err)
	}
	if list, err := imgs.ListImages(ctx); err != nil || len(list) != 1 || list[0].ID != "sha256:busybox" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := imgs.RemoveImage(ctx, legacy.ImageSpec{Image: "busybox"}); err != nil {
		t.Fatal(err)
	}
	if list, _ := imgs.ListImages(ctx); len(list) != 0 {
		t.Fatalf("list after remove: %+v", list)
	}
	b.inspect = errors.New("inspect failed")
	if _, err := imgs.IsImagePresent(ctx, legacy.ImageSpec{Image: "busybox"}); err == nil {
		t.Fatal("inspect error lost")
	}
}

func (f *fakeBackend) pullCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.pulls)
}

func reasons(events []legacy.Event) string {
	var r []string
	for _, e := range events {
		r = append(r, e.Reason)
	}
	return strings.Join(r, ",")
}

func newTestPuller(b legacy.ImageBackend, serialized bool) (legacy.ImagePuller, *legacy.MemoryRecorder, *testingclock.FakeClock, *legacy.Backoff) {
	clk := testingclock.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	rec := legacy.NewMemoryRecorder(100, clk)
	bo := legacy.NewImagePullBackoff(clk)
	if serialized {
		return legacy.NewSerializedImagePuller(rec, b, bo), rec, clk, bo
	}
	return legacy.NewImagePuller(rec, b, bo), rec, clk, bo
}

func TestPullPolicies(t *testing.T) {
	ctx := context.Background()
	b := newFakeBackend()
	b.present["present"] = "sha256:present"
	p, rec, _, _ := newTestPuller(b, false)

	// IfNotPresent, present: no pull.
	id, err := p.PullImage(ctx, legacy.PullRequest{Image: legacy.ImageSpec{Image: "present"}, Object: "o1"})
	if err != nil || id != "sha256:present" || b.pullCount() != 0 {
		t.Fatalf("IfNotPresent present: %q %v, %d pulls", id, err, b.pullCount())
	}
	if got := reasons(rec.EventsFor("o1")); got != legacy.PulledImage {
		t.Errorf("events %s", got)
	}
	if ev := rec.EventsFor("o1")[0]; !strings.Contains(ev.Message, "already present") || ev.Type != legacy.EventTypeNormal {
		t.Errorf("event %v", ev)
	}

	// Always, present: pulls.
	id, err = p.PullImage(ctx, legacy.PullRequest{Image: legacy.ImageSpec{Image: "present"}, PullPolicy: legacy.PullAlways, Object: "o2"})
	if err != nil || id != "sha256:present" || b.pullCount() != 1 {
		t.Fatalf("Always: %q %v, %d pulls", id, err, b.pullCount())
	}
	if got := reasons(rec.EventsFor("o2")); got != "Pulling,Pulled" {
		t.Errorf("events %s", got)
	}

	// Never, absent.
	_, err = p.PullImage(ctx, legacy.PullRequest{Image: legacy.ImageSpec{Image: "absent"}, PullPolicy: legacy.PullNever, Object: "o3"})
	if !errors.Is(err, legacy.ErrImageNeverPull) {
		t.Fatalf("Never absent: %v", err)
	}
	if got := reasons(rec.EventsFor("o3")); got != legacy.ErrImageNeverPullPolicy {
		t.Errorf("events %s", got)
	}
	var pe *legacy.PullError
	if !errors.As(err, &pe) || !strings.Contains(pe.Message, "pull policy of Never") {
		t.Errorf("error %v", err)
	}

	// Never, present: fine.
	if id, err := p.PullImage(ctx, legacy.PullRequest{Image: legacy.ImageSpec{Image: "present"}, PullPolicy: legacy.PullNever}); err != nil || id != "sha256:present" {
		t.Errorf("Never present: %q %v", id, err)
	}

	// IfNotPresent, absent: pulls.
	if id, err := p.PullImage(ctx, legacy.PullRequest{Image: legacy.ImageSpec{Image: "absent"}}); err != nil || id != "sha256:absent" {
		t.Errorf("IfNotPresent absent: %q %v", id, err)
	}
	// Default object.
	if got := reasons(rec.EventsFor("image/absent")); got != "Pulling,Pulled" {
		t.Errorf("events %s", got)
	}
}

func TestPullInspectAndNameErrors(t *testing.T) {
	ctx := context.Background()
	b := newFakeBackend()
	p, rec, _, _ := newTestPuller(b, false)
	b.inspect = errors.New("content store broken")
	_, err := p.PullImage(ctx, legacy.PullRequest{Image: legacy.ImageSpec{Image: "x"}, Object: "o"})
	if !errors.Is(err, legacy.ErrImageInspect) || !strings.Contains(err.Error(), "content store broken") {
		t.Fatalf("inspect failure: %v", err)
	}
	if got := reasons(rec.EventsFor("o")); got != legacy.FailedToInspectImage {
		t.Errorf("events %s", got)
	}
	b.inspect = nil
	for _, bad := range []string{"", "a b", "r.io/UPPER"} {
		_, err := p.PullImage(ctx, legacy.PullRequest{Image: legacy.ImageSpec{Image: bad}})
		if !errors.Is(err, legacy.ErrInvalidImageName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if b.pullCount() != 0 {
		t.Error("pulled a bad name")
	}
	// An image ID is a valid name for the presence check.
	if err := legacy.ValidImageName("sha256:" + strings.Repeat("a", 64)); err != nil {
		t.Error(err)
	}
}

func TestPullBackoff(t *testing.T) {
	ctx := context.Background()
	b := newFakeBackend()
	b.pullErr = errors.New("boom")
	p, rec, clk, bo := newTestPuller(b, false)
	req := legacy.PullRequest{Image: legacy.ImageSpec{Image: "img"}, Object: "o"}

	_, err := p.PullImage(ctx, req)
	if !errors.Is(err, legacy.ErrImagePull) || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("first failure: %v", err)
	}
	if bo.Get("img") != 10*time.Second {
		t.Fatalf("backoff %v", bo.Get("img"))
	}
	// Within the backoff: no pull.
	clk.Step(9 * time.Second)
	if _, err := p.PullImage(ctx, req); !errors.Is(err, legacy.ErrImagePullBackOff) {
		t.Fatalf("in backoff: %v", err)
	}
	if b.pullCount() != 1 {
		t.Fatalf("%d pulls", b.pullCount())
	}
	// The delay doubles on every failure, up to 300 s.
	want := []time.Duration{20, 40, 80, 160, 300, 300}
	for i, w := range want {
		clk.Step(bo.Get("img"))
		if _, err := p.PullImage(ctx, req); !errors.Is(err, legacy.ErrImagePull) {
			t.Fatalf("retry %d: %v", i, err)
		}
		if got := bo.Get("img"); got != w*time.Second {
			t.Fatalf("retry %d: backoff %v, want %v", i, got, w*time.Second)
		}
		clk.Step(time.Second)
		if _, err := p.PullImage(ctx, req); !errors.Is(err, legacy.ErrImagePullBackOff) {
			t.Fatalf("retry %d: in backoff: %v", i, err)
		}
	}
	if got := reasons(rec.EventsFor("o")); !strings.HasPrefix(got, "Pulling,Failed,BackOff,Pulling,Failed,BackOff") {
		t.Errorf("events %s", got)
	}

	// Idle for more than twice the maximum: forgotten, back to 10 s.
	clk.Step(601 * time.Second)
	if _, err := p.PullImage(ctx, req); !errors.Is(err, legacy.ErrImagePull) {
		t.Fatalf("after idle: %v", err)
	}
	if got := bo.Get("img"); got != 10*time.Second {
		t.Errorf("after idle: backoff %v", got)
	}

	// GC forgets idle keys; a success resets the key.
	bo.Next("other", clk.Now())
	clk.Step(601 * time.Second)
	bo.GC()
	if bo.Len() != 0 {
		t.Errorf("%d keys after GC", bo.Len())
	}
	b.pullErr = nil
	if _, err := p.PullImage(ctx, req); err != nil {
		t.Fatal(err)
	}
	if bo.Get("img") != 0 {
		t.Error("success did not reset the backoff")
	}
}

func TestPullRegistryUnavailable(t *testing.T) {
	b := newFakeBackend()
	b.pullErr = fmt.Errorf("%w: dial tcp: connection refused", legacy.RegistryUnavailable)
	p, _, _, _ := newTestPuller(b, false)
	_, err := p.PullImage(context.Background(), legacy.PullRequest{Image: legacy.ImageSpec{Image: "img"}})
	if !errors.Is(err, legacy.RegistryUnavailable) || errors.Is(err, legacy.ErrImagePull) {
		t.Fatalf("%v", err)
	}
	if !strings.Contains(err.Error(), "registry is unavailable") {
		t.Errorf("message %q", err.Error())
	}
}

func TestPullTriesEachCredential(t *testing.T) {
	b := newFakeBackend()
	b.okAuth = "good"
	p, _, _, _ := newTestPuller(b, false)
	auths := []*runtime.AuthConfig{{Username: "bad"}, {Username: "good"}}
	if _, err := p.PullImage(context.Background(), legacy.PullRequest{Image: legacy.ImageSpec{Image: "img"}, Auths: auths}); err != nil {
		t.Fatal(err)
	}
	if b.pullCount() != 2 {
		t.Errorf("%d pulls, want 2", b.pullCount())
	}
	b.present = map[string]string{}
	_, err := p.PullImage(context.Background(), legacy.PullRequest{Image: legacy.ImageSpec{Image: "img2"}, Auths: auths[:1]})
	if !errors.Is(err, legacy.ErrImagePull) {
		t.Errorf("%v", err)
	}
}

func TestConcurrentPullsMerge(t *testing.T) {
	for _, serialized := range []bool{false, true} {
		t.Run(fmt.Sprint("serialized=", serialized), func(t *testing.T) {
			b := newFakeBackend()
			b.block = make(chan struct{})
			p, _, _, bo := newTestPuller(b, serialized)
			var wg sync.WaitGroup
			var progress atomic.Int32
			errs := make(chan error, 4)
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := p.PullImage(context.Background(), legacy.PullRequest{
						Image: legacy.ImageSpec{Image: "img"}, Progress: func(legacy.PullProgress) { progress.Add(1) },
					})
					errs <- err
				}()
			}
			waitUntil(t, func() bool { return b.pullCount() == 1 })
			time.Sleep(20 * time.Millisecond)
			b.mu.Lock()
			b.pullErr = errors.New("boom")
			b.mu.Unlock()
			close(b.block)
			wg.Wait()
			close(errs)
			for err := range errs {
				if !errors.Is(err, legacy.ErrImagePull) {
					t.Errorf("merged request: %v", err)
				}
			}
			if b.pullCount() != 1 {
				t.Errorf("%d pulls, want 1", b.pullCount())
			}
			// One shared failure counts once.
			if got := bo.Get("img"); got != 10*time.Second {
				t.Errorf("backoff %v after one merged failure", got)
			}
		})
	}
}

func TestSerializedPullerRunsOneAtATime(t *testing.T) {
	b := newFakeBackend()
	b.block = make(chan struct{})
	p, _, _, _ := newTestPuller(b, true)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.PullImage(context.Background(), legacy.PullRequest{Image: legacy.ImageSpec{Image: fmt.Sprint("img", i)}}); err != nil {
				t.Error(err)
			}
		}()
	}
	waitUntil(t, func() bool { return b.pullCount() == 1 })
	time.Sleep(30 * time.Millisecond)
	if b.pullCount() != 1 {
		t.Fatalf("%d pulls running, want 1", b.pullCount())
	}
	close(b.block)
	wg.Wait()
	if b.pullCount() != 4 || b.peak.Load() != 1 {
		t.Errorf("%d pulls, peak %d", b.pullCount(), b.peak.Load())
	}

	// The parallel puller with a limit of 2.
	b2 := newFakeBackend()
	b2.block = make(chan struct{})
	p2 := legacy.NewImagePuller(nil, b2, nil, legacy.WithMaxParallelPulls(2))
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p2.PullImage(context.Background(), legacy.PullRequest{Image: legacy.ImageSpec{Image: fmt.Sprint("img", i)}}); err != nil {
				t.Error(err)
			}
		}()
	}
	waitUntil(t, func() bool { return b2.pullCount() == 2 })
	time.Sleep(30 * time.Millisecond)
	close(b2.block)
	wg.Wait()
	if b2.peak.Load() != 2 {
		t.Errorf("peak %d, want 2", b2.peak.Load())
	}
}

func TestCancelledRequestCancelsItsPull(t *testing.T) {
	b := newFakeBackend()
	b.block = make(chan struct{})
	p, _, _, bo := newTestPuller(b, false)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := p.PullImage(ctx, legacy.PullRequest{Image: legacy.ImageSpec{Image: "img"}})
		done <- err
	}()
	waitUntil(t, func() bool { return b.pullCount() == 1 })
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	waitUntil(t, func() bool { return b.running.Load() == 0 })
	if bo.Get("img") != 0 {
		t.Error("a cancelled request counted as a pull failure")
	}
}

func TestMemoryRecorder(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(100, 0))
	r := legacy.NewMemoryRecorder(3, clk)
	for i := range 5 {
		clk.Step(time.Second)
		r.Eventf(fmt.Sprint("obj", i%2), legacy.EventTypeNormal, legacy.PulledImage, "pulled %d", i)
	}
	evs := r.Events()
	if len(evs) != 3 || evs[0].Message != "pulled 2" || evs[2].Message != "pulled 4" || r.Total() != 5 {
		t.Fatalf("events %v", evs)
	}
	if !evs[2].Time.Equal(time.Unix(105, 0)) {
		t.Errorf("time %v", evs[2].Time)
	}
	if got := r.EventsFor("obj0"); len(got) != 2 {
		t.Errorf("EventsFor: %v", got)
	}
	f := legacy.FilterEventRecorder(r)
	f.Eventf(legacy.ImplicitContainerPrefix+"POD", legacy.EventTypeNormal, legacy.CreatedContainer, "x")
	f.Eventf("pod/a", legacy.EventTypeNormal, legacy.CreatedContainer, "no args")
	if r.Total() != 6 || r.Events()[2].Message != "no args" {
		t.Errorf("filter: %v", r.Events())
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
