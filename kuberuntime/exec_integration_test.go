//go:build integration

package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
)

// bgChild is a command that exits at once but leaves a child holding its stdout and stderr, as
// readiness probes written `sh -c 'daemon & echo ok'` do.
var bgChild = []string{"sh", "-c", "sleep 1000 & echo hi"}

// execBound is how long after the process's exit (or the call's timeout) an exec may take: the
// drain and a margin for a loaded machine.
func execBound() time.Duration { return DefaultExecIODrain + 3*time.Second }

// guardCtx ends a call that would otherwise hang, so that the test reports it.
func guardCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// returns runs f and fails the test when f has not returned within 30 s (ExecSync waited for
// its output without a bound, ignoring its context: it never returned).
func returns(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("no answer after 30 s")
	}
}

type execSyncAnswer struct {
	res *legacy.ExecSyncResult
	err error
	d   time.Duration
}

// execSync runs ExecSync under returns.
func (e *env) execSync(t *testing.T, id string, cmd []string, timeout time.Duration) execSyncAnswer {
	t.Helper()
	var a execSyncAnswer
	returns(t, func() {
		start := time.Now()
		a.res, a.err = e.rt.ExecSync(guardCtx(t), id, cmd, timeout)
		a.d = time.Since(start)
	})
	return a
}

// TestExecSyncBackgroundChild: ExecSync returns its output and exit code a drain timeout after
// the process exited even when a child it left holds the output open, and within its timeout
// (killing the process, with the output read so far and DeadlineExceeded) when it does not exit.
// The streaming exec follows the same drain rule.
func TestExecSyncBackgroundChild(t *testing.T) {
	e := newEnv(t, "")
	sb, _ := e.podWithLogs("execbg")
	id := e.createStart(sb.ID, ctrCfg("sleeper", "sleep", "100000"))

	for _, timeout := range []time.Duration{0, 30 * time.Second} {
		t.Run(fmt.Sprintf("child holds the output, timeout %v", timeout), func(t *testing.T) {
			a := e.execSync(t, id, bgChild, timeout)
			res, err, d := a.res, a.err, a.d
			if err != nil {
				t.Fatalf("after %v: %v", d, err)
			}
			if d > execBound() {
				t.Fatalf("took %v", d)
			}
			if string(res.Stdout) != "hi\n" || len(res.Stderr) != 0 || res.ExitCode != 0 {
				t.Fatalf("%q %q %d", res.Stdout, res.Stderr, res.ExitCode)
			}
			t.Logf("returned after %v", d)
		})
	}
	t.Run("child holds the output, timeout shorter than the drain", func(t *testing.T) {
		a := e.execSync(t, id, bgChild, time.Second)
		res, err, d := a.res, a.err, a.d
		if err != nil {
			t.Fatalf("after %v: %v", d, err)
		}
		// The process exited before its timeout: its exit code, and no waiting past the timeout.
		if d > time.Second+time.Second {
			t.Fatalf("took %v", d)
		}
		if string(res.Stdout) != "hi\n" || res.ExitCode != 0 {
			t.Fatalf("%q %d", res.Stdout, res.ExitCode)
		}
	})
	for _, cmd := range []string{"echo partial; echo e >&2; exec sleep 1000", "sleep 1000 & echo partial; echo e >&2; sleep 1000"} {
		t.Run("timeout: "+cmd, func(t *testing.T) {
			a := e.execSync(t, id, []string{"sh", "-c", cmd}, time.Second)
			res, err, d := a.res, a.err, a.d
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("after %v: %v, want DeadlineExceeded", d, err)
			}
			t.Logf("returned after %v", d)
			if d > time.Second+2*time.Second {
				t.Fatalf("took %v", d)
			}
			if res == nil || string(res.Stdout) != "partial\n" || string(res.Stderr) != "e\n" || res.ExitCode != 128+9 {
				t.Fatalf("the output read before the timeout: %+v", res)
			}
			// Killed: no exec'd process of the call runs on.
			if n := e.runningExecs(id); n != 0 {
				t.Fatalf("%d exec processes still run", n)
			}
		})
	}
	t.Run("streaming exec", func(t *testing.T) {
		var out lockedBuffer
		var err error
		var d time.Duration
		returns(t, func() {
			start := time.Now()
			err = e.rt.ExecInContainer(guardCtx(t), id, bgChild, nil, nopWriteCloser{&out}, nopWriteCloser{&out}, false, nil)
			d = time.Since(start)
		})
		if err != nil {
			t.Fatalf("after %v: %v", d, err)
		}
		if d > execBound() || out.String() != "hi\n" {
			t.Fatalf("took %v, output %q", d, out.String())
		}
	})
}

type nopWriteCloser struct{ w *lockedBuffer }

func (n nopWriteCloser) Write(p []byte) (int, error) { return n.w.Write(p) }

func (n nopWriteCloser) Close() error { return nil }

// runningExecs counts the exec'd processes (not the container's own) that run in container id.
func (e *env) runningExecs(id string) int {
	e.t.Helper()
	ctx := e.rt.withNS(context.Background())
	cntr, err := e.client.LoadContainer(ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	task, err := cntr.Task(ctx, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	pids, err := task.Pids(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	n := 0
	for _, p := range pids {
		// The shim describes the main process of each exec with its exec ID.
		if p.Info != nil {
			n++
		}
	}
	return n
}

// TestExecSyncLeaksNothing: 50 ExecSync calls whose command leaves a child holding its output
// (and some that time out) leave no goroutine, fd, FIFO or exec process record behind.
func TestExecSyncLeaksNothing(t *testing.T) {
	e := newEnv(t, "")
	sb, _ := e.podWithLogs("execleak")
	id := e.createStart(sb.ID, ctrCfg("sleeper", "sleep", "100000"))
	c, err := e.rt.ctrs().store.get(id)
	if err != nil {
		t.Fatal(err)
	}
	fifoDir := filepath.Join(c.stateDir, "exec")
	bundle := filepath.Join(e.ctrdState, "io.containerd.runtime.v2.task", e.opts.Namespace, id)
	var mu sync.Mutex
	var execIDs []string
	e.rt.execStarted = func(execID string) {
		mu.Lock()
		defer mu.Unlock()
		execIDs = append(execIDs, execID)
	}
	type counts struct{ goroutines, fds, fifos, pidFiles int }
	count := func() counts {
		fds, _ := os.ReadDir("/proc/self/fd")
		fifos, _ := os.ReadDir(fifoDir)
		pidFiles, _ := filepath.Glob(filepath.Join(bundle, "exec-*.pid"))
		return counts{goroutines: goruntime.NumGoroutine(), fds: len(fds), fifos: len(fifos), pidFiles: len(pidFiles)}
	}
	// One call first: what is set up once (client connections, the FIFO dir) is not a leak.
	if _, err := e.rt.ExecSync(guardCtx(t), id, []string{"true"}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	before := count()
	t.Logf("before: %+v", before)

	const calls, parallel = 50, 10
	start := time.Now()
	for b := 0; b < calls/parallel; b++ {
		var wg sync.WaitGroup
		for i := range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cmd, timeout := bgChild, 5*time.Second
				if i%5 == 0 { // one in five is killed at its timeout, with a child holding the output
					cmd, timeout = []string{"sh", "-c", "sleep 1000 & echo hi; sleep 1000"}, time.Second
				}
				t0 := time.Now()
				res, err := e.rt.ExecSync(guardCtx(t), id, cmd, timeout)
				if d := time.Since(t0); d > timeout+execBound() {
					t.Errorf("call took %v (%v)", d, err)
				}
				if i%5 == 0 && !errors.Is(err, context.DeadlineExceeded) || i%5 != 0 && err != nil {
					t.Errorf("call %d: %v", i, err)
				}
				if res == nil || string(res.Stdout) != "hi\n" {
					t.Errorf("call %d: output %+v", i, res)
				}
			}()
		}
		returns(t, wg.Wait)
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Logf("%d calls in %v", calls, time.Since(start))

	// The exec records whose output a child held are deleted in the background: the shim waits
	// up to 10 s for that output before it lets them go.
	var after counts
	deadline := time.Now().Add(30 * time.Second)
	for {
		after = count()
		if after.goroutines <= before.goroutines+5 && after.fds <= before.fds && after.fifos == before.fifos && after.pidFiles == before.pidFiles {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("leaked: before %+v, after %+v\n%s", before, after, buf[:goruntime.Stack(buf, true)])
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after: %+v (settled %v after the last call)", after, time.Since(deadline.Add(-30*time.Second)))
	mu.Lock()
	defer mu.Unlock()
	if len(execIDs) != calls+1 {
		t.Fatalf("%d exec IDs seen", len(execIDs))
	}
	ctx := e.rt.withNS(context.Background())
	cntr, err := e.client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := cntr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range execIDs {
		if _, err := task.LoadProcess(ctx, x, nil); !errdefs.IsNotFound(err) {
			t.Errorf("exec %s: still known to containerd (%v)", x, err)
		}
	}
	if n := e.runningExecs(id); n != 0 {
		t.Errorf("%d exec processes run", n)
	}
	// The children the commands left run on in the container, as they would under containerd's CRI.
	pids, _ := task.Pids(ctx)
	t.Logf("%d processes in the container", len(pids))
}
