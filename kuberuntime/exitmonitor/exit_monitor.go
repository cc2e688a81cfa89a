package exitmonitor

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	tasktypes "github.com/containerd/containerd/api/types/task"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/typeurl/v2"
	"github.com/sirupsen/logrus"
)

// The exits of all running containers' and sandboxes' tasks come from one subscription to
// containerd's /tasks/exit events, instead of a Wait call (a goroutine and an HTTP/2 stream) per
// task. No exit may be lost:
//
//   - An exit that arrives before its task is watched (the task exited right after its start) is
//     kept for a while (recent), and the watch takes it.
//   - Exits published before the subscription took effect at containerd, or while it was broken
//     (containerd restarted), are found by a reconciliation: once an event the monitor publishes
//     itself after (re)subscribing comes back (so every later exit will come too), it lists the
//     tasks, and every watched task that stopped, or is gone, has exited.
//
// Every watch gets its exit exactly once: it is taken out of the watch table under the lock
// before its handler runs.

// exitSyncTopic is the topic of the monitor's own marker event.
const exitSyncTopic = "/cri-shim/exit-monitor/sync"

// exitKeep is how long an exit that nobody watches is kept for a watch to come.
const exitKeep = 5 * time.Minute

// exitReconcilePeriod is the interval of the safety reconciliations: an exit the events did not
// bring (which should not happen) is found at the latest after one, or two for a task that is gone.
// A task list makes containerd ask every shim for its tasks' states, hence not more often.
const exitReconcilePeriod = 5 * time.Minute

// exitSyncTimeout is how long the monitor waits for its marker before it publishes another.
const exitSyncTimeout = 2 * time.Second

// Source is containerd as the exit monitor sees it (a fake in the tests).
type Source interface {
	// Subscribe streams the events of the topics /tasks/exit and exitSyncTopic.
	Subscribe(ctx context.Context) (<-chan *events.Envelope, <-chan error)
	// Sync publishes a marker event with token on exitSyncTopic.
	Sync(ctx context.Context, token string) error
	// List returns the tasks by id.
	List(ctx context.Context) (map[string]TaskState, error)
}

// TaskState is a task as containerd lists it.
type TaskState struct {
	pid     uint32
	Stopped bool
	code    uint32
	at      time.Time
}

// Handler gets a task's exit: its code and time, or found false when the task was gone without
// a recorded exit (code 255).
type Handler func(code uint32, at time.Time, found bool)

type exitWatch struct {
	pid uint32 // the task's pid; 0: unknown
	fn  Handler
}

type recentExit struct {
	pid  uint32
	code uint32
	at   time.Time
	seen time.Time
}

// New returns the exit monitor of a containerd namespace reading src; its goroutines run on bg
// and are counted in wg.
func New(src Source, namespace string, bg context.Context, wg *sync.WaitGroup) *Monitor {
	return &Monitor{src: src, namespace: namespace, bg: bg, wg: wg}
}

// Monitor dispatches task exits to their watches.
type Monitor struct {
	once      sync.Once
	src       Source
	namespace string
	bg        context.Context
	wg        *sync.WaitGroup

	mu        sync.Mutex
	watches   map[string]exitWatch
	recent    map[string]recentExit
	lastPrune time.Time
	// suspect are the watches whose task a periodic reconciliation did not find: gone, unless
	// their exit event was on its way; the next one delivers what is still watched and gone.
	suspect map[string]bool

	// live is closed once the first reconciliation is done (every later exit comes as an event).
	live     chan struct{}
	liveOnce sync.Once

	// period is the interval of the safety reconciliations while the subscription holds.
	period time.Duration

	// reconciled counts the reconciliations (for tests and metrics).
	reconciled atomic.Int64
}

// start runs the monitor (once).
func (m *Monitor) start() {
	m.once.Do(func() {
		m.init()
		m.wg.Add(1)
		go m.run()
	})
}

func (m *Monitor) init() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.watches == nil {
		m.watches = map[string]exitWatch{}
		m.recent = map[string]recentExit{}
		m.suspect = map[string]bool{}
		m.live = make(chan struct{})
	}
	if m.period == 0 {
		m.period = exitReconcilePeriod
	}
}

// startLive starts the monitor and waits (up to timeout) until its subscription is known to be
// in effect, so that the exit of every task started (or found running) from then on comes as
// an event.
func (m *Monitor) StartLive(timeout time.Duration) bool {
	m.start()
	select {
	case <-m.live:
		return true
	case <-time.After(timeout):
		return false
	case <-m.bg.Done():
		return false
	}
}

// watch calls fn (in a goroutine of its own) when task id, with pid, exits; at once when it exited
// already and the monitor saw it.
func (m *Monitor) Watch(id string, pid uint32, fn Handler) {
	m.start()
	m.mu.Lock()
	if e, ok := m.recent[id]; ok {
		delete(m.recent, id)
		if samePid(pid, e.pid) {
			m.mu.Unlock()
			m.deliver(fn, e.code, e.at, true)
			return
		}
	}
	m.watches[id] = exitWatch{pid: pid, fn: fn}
	m.mu.Unlock()
}

func samePid(a, b uint32) bool { return a == 0 || b == 0 || a == b }

func (m *Monitor) deliver(fn Handler, code uint32, at time.Time, found bool) {
	if m.bg.Err() != nil {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		fn(code, at, found)
	}()
}

// exited hands the exit of task id to its watch, or keeps it for one to come.
func (m *Monitor) exited(id string, pid, code uint32, at time.Time) {
	now := time.Now()
	m.mu.Lock()
	if w, ok := m.watches[id]; ok {
		if !samePid(w.pid, pid) {
			m.mu.Unlock()
			return // an earlier task of the same id
		}
		delete(m.watches, id)
		m.mu.Unlock()
		m.deliver(w.fn, code, at, true)
		return
	}
	m.recent[id] = recentExit{pid: pid, code: code, at: at, seen: now}
	if now.Sub(m.lastPrune) > time.Minute {
		m.lastPrune = now
		for k, e := range m.recent {
			if now.Sub(e.seen) > exitKeep {
				delete(m.recent, k)
			}
		}
	}
	m.mu.Unlock()
}

// reconcile lists the tasks and hands every watch whose task stopped, or is gone, its exit. A
// periodic reconciliation (the subscription held since the last one) delivers a gone task's exit
// only when the previous one found it gone too: its exit event may be on its way meanwhile.
func (m *Monitor) reconcile(ctx context.Context, periodic bool) error {
	m.mu.Lock()
	ids := make([]string, 0, len(m.watches))
	for id := range m.watches {
		ids = append(ids, id)
	}
	m.mu.Unlock()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	states, err := m.src.List(lctx)
	if err != nil {
		return err
	}
	now := time.Now()
	var found, gone int
	suspect := map[string]bool{}
	for _, id := range ids {
		st, ok := states[id]
		if ok && !st.Stopped {
			continue
		}
		m.mu.Lock()
		w, watched := m.watches[id]
		if watched && ok && !samePid(w.pid, st.pid) {
			watched = false // a new task under the id: not the one watched
		}
		if watched && !ok && periodic && !m.suspect[id] {
			suspect[id] = true
			watched = false
		}
		if watched {
			delete(m.watches, id)
		}
		m.mu.Unlock()
		if !watched {
			continue
		}
		if ok {
			found++
			m.deliver(w.fn, st.code, st.at, true)
		} else {
			gone++
			m.deliver(w.fn, 255, now, false)
		}
	}
	m.mu.Lock()
	m.suspect = suspect
	m.mu.Unlock()
	m.reconciled.Add(1)
	m.liveOnce.Do(func() { close(m.live) })
	logrus.WithFields(logrus.Fields{"watched": len(ids), "exited": found, "gone": gone}).Debug("exit monitor: reconciled")
	return nil
}

func (m *Monitor) run() {
	defer m.wg.Done()
	m.init()
	delay := 200 * time.Millisecond
	var seq int
	for m.bg.Err() == nil {
		ctx, cancel := context.WithCancel(m.bg)
		if m.session(ctx, &seq) {
			delay = 200 * time.Millisecond
		}
		cancel()
		select {
		case <-time.After(delay):
		case <-m.bg.Done():
			return
		}
		delay = min(2*delay, 5*time.Second)
	}
}

// session runs one subscription until it breaks; it tells whether it got as far as reconciling.
func (m *Monitor) session(ctx context.Context, seq *int) bool {
	evCh, errCh := m.src.Subscribe(ctx)
	token := ""
	attempts := 0
	publish := func() {
		*seq++
		attempts++
		token = strconv.Itoa(*seq)
		if err := m.src.Sync(ctx, token); err != nil && ctx.Err() == nil {
			logrus.WithError(err).Debug("exit monitor: publish the sync marker")
		}
	}
	publish()
	timer := time.NewTimer(exitSyncTimeout)
	defer timer.Stop()
	reconciled := false
	tryReconcile := func() {
		if err := m.reconcile(ctx, reconciled); err != nil {
			if ctx.Err() == nil {
				logrus.WithError(err).Warn("exit monitor: list tasks")
			}
			timer.Reset(time.Second)
			return
		}
		reconciled = true
		timer.Reset(m.period)
	}
	for {
		select {
		case env, ok := <-evCh:
			if !ok {
				return reconciled
			}
			if env == nil || env.Namespace != m.namespace || env.Event == nil {
				continue
			}
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				continue
			}
			ev, ok := v.(*eventstypes.TaskExit)
			if !ok {
				continue
			}
			switch env.Topic {
			case exitSyncTopic:
				if !reconciled && ev.ContainerID == token {
					tryReconcile()
				}
			default:
				if ev.ID != ev.ContainerID && ev.ID != "" {
					continue // an exec'd process
				}
				m.exited(ev.ContainerID, ev.Pid, ev.ExitStatus, protobuf.FromTimestamp(ev.ExitedAt))
			}
		case err := <-errCh:
			if ctx.Err() == nil {
				logrus.WithError(err).Warn("exit monitor: event subscription broke; subscribing again")
			}
			return reconciled
		case <-timer.C:
			if reconciled {
				tryReconcile() // the periodic safety check
				continue
			}
			if attempts >= 3 {
				// The marker does not come back: check the tasks anyway (exits from
				// before the subscription took effect may be missed until the next one).
				tryReconcile()
				continue
			}
			publish()
			timer.Reset(exitSyncTimeout)
		case <-ctx.Done():
			return reconciled
		}
	}
}

// ContainerdSource is the exit source of a containerd namespace.
type ContainerdSource struct {
	client    *containerd.Client
	namespace string
}

func NewContainerdSource(client *containerd.Client, namespace string) ContainerdSource {
	return ContainerdSource{client: client, namespace: namespace}
}

func (s ContainerdSource) withNS(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, s.namespace)
}

func (s ContainerdSource) Subscribe(ctx context.Context) (<-chan *events.Envelope, <-chan error) {
	return s.client.Subscribe(s.withNS(ctx), `topic=="/tasks/exit"`, `topic=="`+exitSyncTopic+`"`)
}

func (s ContainerdSource) Sync(ctx context.Context, token string) error {
	return s.client.EventService().Publish(s.withNS(ctx), exitSyncTopic, &eventstypes.TaskExit{ContainerID: token})
}

func (s ContainerdSource) List(ctx context.Context) (map[string]TaskState, error) {
	resp, err := s.client.TaskService().List(s.withNS(ctx), &tasks.ListTasksRequest{})
	if err != nil {
		return nil, fmt.Errorf("list tasks: %w", err)
	}
	out := make(map[string]TaskState, len(resp.Tasks))
	for _, t := range resp.Tasks {
		out[t.ID] = TaskState{
			pid:     t.Pid,
			Stopped: t.Status == tasktypes.Status_STOPPED,
			code:    t.ExitStatus,
			at:      protobuf.FromTimestamp(t.ExitedAt),
		}
	}
	return out, nil
}
