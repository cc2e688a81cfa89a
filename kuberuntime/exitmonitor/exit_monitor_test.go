package exitmonitor

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/typeurl/v2"
)

// fakeExits is an exit source: tests publish exits on the current subscription, break it, and
// set the task list. Like containerd, a subscription sees only what is published after it began
// (and its own sync markers, when syncs are delivered).
type fakeExits struct {
	mu       sync.Mutex
	ch       chan *events.Envelope
	errCh    chan error
	subs     int
	tasks    map[string]TaskState
	lists    int
	dropSync bool
	subbed   chan struct{} // gets a value per subscription
}

func newFakeExits() *fakeExits {
	return &fakeExits{tasks: map[string]TaskState{}, subbed: make(chan struct{}, 16)}
}

func (f *fakeExits) Subscribe(ctx context.Context) (<-chan *events.Envelope, <-chan error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ch = make(chan *events.Envelope, 64)
	f.errCh = make(chan error, 1)
	f.subs++
	f.subbed <- struct{}{}
	return f.ch, f.errCh
}

func envelope(topic string, ev *eventstypes.TaskExit) *events.Envelope {
	a, err := typeurl.MarshalAny(ev)
	if err != nil {
		panic(err)
	}
	return &events.Envelope{Namespace: "test", Topic: topic, Event: a}
}

func (f *fakeExits) Sync(ctx context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dropSync {
		return nil
	}
	f.ch <- envelope(exitSyncTopic, &eventstypes.TaskExit{ContainerID: token})
	return nil
}

func (f *fakeExits) List(ctx context.Context) (map[string]TaskState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	out := map[string]TaskState{}
	for k, v := range f.tasks {
		out[k] = v
	}
	return out, nil
}

// exit publishes the exit of task id on the live subscription (lost when there is none).
func (f *fakeExits) exit(id string, pid, code uint32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tasks[id] = TaskState{pid: pid, Stopped: true, code: code, at: time.Now()}
	if f.ch != nil {
		f.ch <- envelope("/tasks/exit", &eventstypes.TaskExit{ContainerID: id, ID: id, Pid: pid, ExitStatus: code,
			ExitedAt: protobuf.ToTimestamp(time.Now())})
	}
}

// crash breaks the subscription; exits until the next one are not delivered.
func (f *fakeExits) crash() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errCh <- errors.New("connection reset")
	f.ch = nil
}

func (f *fakeExits) running(id string, pid uint32) {
	f.mu.Lock()
	f.tasks[id] = TaskState{pid: pid}
	f.mu.Unlock()
}

type gotExit struct {
	id    string
	code  uint32
	found bool
}

type exitRecorder struct {
	mu  sync.Mutex
	got []gotExit
	ch  chan gotExit
}

func newExitRecorder() *exitRecorder { return &exitRecorder{ch: make(chan gotExit, 100)} }

func (r *exitRecorder) handler(id string) Handler {
	return func(code uint32, _ time.Time, found bool) {
		g := gotExit{id, code, found}
		r.mu.Lock()
		r.got = append(r.got, g)
		r.mu.Unlock()
		r.ch <- g
	}
}

func (r *exitRecorder) next(t *testing.T) gotExit {
	t.Helper()
	select {
	case g := <-r.ch:
		return g
	case <-time.After(5 * time.Second):
		t.Fatal("no exit delivered")
		return gotExit{}
	}
}

func (r *exitRecorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case g := <-r.ch:
		t.Fatalf("unexpected exit %+v", g)
	case <-time.After(d):
	}
}

func newTestMonitor(t *testing.T, src Source) (*Monitor, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	m := &Monitor{src: src, namespace: "test", bg: ctx, wg: &wg}
	stop := func() { cancel(); wg.Wait() }
	t.Cleanup(stop)
	return m, stop
}

func waitReconciled(t *testing.T, m *Monitor, n int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.reconciled.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("reconciled %d times, want %d", m.reconciled.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestExitMonitorDeliversOnce(t *testing.T) {
	src := newFakeExits()
	m, _ := newTestMonitor(t, src)
	rec := newExitRecorder()
	src.running("a", 10)
	m.Watch("a", 10, rec.handler("a"))
	waitReconciled(t, m, 1)
	src.exit("a", 10, 3)
	if g := rec.next(t); g != (gotExit{"a", 3, true}) {
		t.Fatalf("got %+v", g)
	}
	// The same exit again (a duplicate event), and a reconciliation: no second delivery.
	src.exit("a", 10, 3)
	src.crash()
	<-src.subbed
	<-src.subbed
	waitReconciled(t, m, 2)
	rec.none(t, 100*time.Millisecond)
}

func TestExitMonitorExitBeforeWatch(t *testing.T) {
	src := newFakeExits()
	m, _ := newTestMonitor(t, src)
	rec := newExitRecorder()
	m.start()
	waitReconciled(t, m, 1)
	// The task exits between its start and its watch.
	src.exit("b", 20, 0)
	time.Sleep(50 * time.Millisecond)
	m.Watch("b", 20, rec.handler("b"))
	if g := rec.next(t); g != (gotExit{"b", 0, true}) {
		t.Fatalf("got %+v", g)
	}
	// An old exit of the same id with another pid is not the new task's.
	src.exit("c", 30, 1)
	time.Sleep(50 * time.Millisecond)
	m.Watch("c", 31, rec.handler("c"))
	rec.none(t, 100*time.Millisecond)
	src.exit("c", 31, 2)
	if g := rec.next(t); g != (gotExit{"c", 2, true}) {
		t.Fatalf("got %+v", g)
	}
}

func TestExitMonitorExitDuringReconnect(t *testing.T) {
	src := newFakeExits()
	m, _ := newTestMonitor(t, src)
	rec := newExitRecorder()
	for _, id := range []string{"x", "y", "z"} {
		src.running(id, 1)
		m.Watch(id, 1, rec.handler(id))
	}
	waitReconciled(t, m, 1)
	<-src.subbed
	// containerd goes away; x exits meanwhile (no subscription sees it), and z's task is gone.
	src.crash()
	src.exit("x", 1, 137)
	src.mu.Lock()
	delete(src.tasks, "z")
	src.mu.Unlock()
	<-src.subbed
	got := map[string]gotExit{}
	for range 2 {
		g := rec.next(t)
		got[g.id] = g
	}
	if got["x"] != (gotExit{"x", 137, true}) || got["z"] != (gotExit{"z", 255, false}) {
		t.Fatalf("got %+v", got)
	}
	rec.none(t, 100*time.Millisecond)
	// y still runs and is still watched.
	src.exit("y", 1, 0)
	if g := rec.next(t); g != (gotExit{"y", 0, true}) {
		t.Fatalf("got %+v", g)
	}
}

func TestExitMonitorReconcilesWithoutMarker(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the marker timeouts")
	}
	src := newFakeExits()
	src.dropSync = true
	m, _ := newTestMonitor(t, src)
	rec := newExitRecorder()
	src.exit("w", 5, 9) // exited before the monitor began
	m.Watch("w", 5, rec.handler("w"))
	var g gotExit
	select {
	case g = <-rec.ch:
	case <-time.After(15 * time.Second):
		t.Fatal("no exit delivered")
	}
	if g != (gotExit{"w", 9, true}) {
		t.Fatalf("got %+v", g)
	}
}

func TestExitMonitorIgnoresExecsAndOtherNamespaces(t *testing.T) {
	src := newFakeExits()
	m, _ := newTestMonitor(t, src)
	rec := newExitRecorder()
	src.running("p", 7)
	m.Watch("p", 7, rec.handler("p"))
	waitReconciled(t, m, 1)
	src.mu.Lock()
	src.ch <- envelope("/tasks/exit", &eventstypes.TaskExit{ContainerID: "p", ID: "exec-1", Pid: 99, ExitStatus: 1})
	other := envelope("/tasks/exit", &eventstypes.TaskExit{ContainerID: "p", ID: "p", Pid: 7, ExitStatus: 1})
	other.Namespace = "elsewhere"
	src.ch <- other
	src.mu.Unlock()
	rec.none(t, 100*time.Millisecond)
	src.exit("p", 7, 0)
	if g := rec.next(t); g != (gotExit{"p", 0, true}) {
		t.Fatalf("got %+v", g)
	}
}

func TestExitMonitorStopsWithContext(t *testing.T) {
	src := newFakeExits()
	m, stop := newTestMonitor(t, src)
	rec := newExitRecorder()
	src.running("q", 1)
	m.Watch("q", 1, rec.handler("q"))
	waitReconciled(t, m, 1)
	stop() // returns: the monitor's goroutine ended
	src.exit("q", 1, 0)
	rec.none(t, 50*time.Millisecond)
}

func TestExitMonitorStartLive(t *testing.T) {
	src := newFakeExits()
	m, _ := newTestMonitor(t, src)
	if !m.StartLive(5 * time.Second) {
		t.Fatal("not live")
	}
	if m.reconciled.Load() < 1 {
		t.Fatal("live before the first reconciliation")
	}
	src2 := newFakeExits()
	src2.dropSync = true
	m2, _ := newTestMonitor(t, src2)
	if m2.StartLive(100 * time.Millisecond) {
		t.Fatal("live without the marker")
	}
}

func TestExitMonitorPeriodicReconcile(t *testing.T) {
	src := newFakeExits()
	m, _ := newTestMonitor(t, src)
	m.period = 200 * time.Millisecond
	rec := newExitRecorder()
	for _, id := range []string{"lost", "gone", "late"} {
		src.running(id, 1)
		m.Watch(id, 1, rec.handler(id))
	}
	waitReconciled(t, m, 1)
	// An exit whose event never comes: the next periodic check finds the stopped task.
	src.mu.Lock()
	src.tasks["lost"] = TaskState{pid: 1, Stopped: true, code: 4}
	src.mu.Unlock()
	if g := rec.next(t); g != (gotExit{"lost", 4, true}) {
		t.Fatalf("got %+v", g)
	}
	// Two tasks vanish without events; "late"'s event comes after the first check missed it:
	// it gets its real code, not 255.
	src.mu.Lock()
	delete(src.tasks, "gone")
	delete(src.tasks, "late")
	src.mu.Unlock()
	n := m.reconciled.Load()
	waitReconciled(t, m, n+1)
	src.mu.Lock()
	src.ch <- envelope("/tasks/exit", &eventstypes.TaskExit{ContainerID: "late", ID: "late", Pid: 1, ExitStatus: 7})
	src.mu.Unlock()
	got := map[string]gotExit{}
	for range 2 {
		g := rec.next(t)
		got[g.id] = g
	}
	if got["late"] != (gotExit{"late", 7, true}) || got["gone"] != (gotExit{"gone", 255, false}) {
		t.Fatalf("got %+v", got)
	}
	if m.reconciled.Load() < n+2 {
		t.Fatalf("gone delivered after %d checks, want two", m.reconciled.Load()-n+1)
	}
}
