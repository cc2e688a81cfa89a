package kuberuntime

import (
	"context"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/sirupsen/logrus"
)

// How an exec'd process ends (exec_process.go runs it, for ExecSync and the streaming exec): once the process has
// exited (or was killed at the call's timeout), its output gets a drain timeout to arrive; what has
// not arrived by then is given up, and the process is deleted.
//
// After the exit, the output can only be held open by another process: a child the command left
// running in the background with its stdout (`sh -c 'daemon & echo ok'`, as readiness probes are
// written), which may hold it for ever. Waiting for it, as containerd's CRI does by default (its
// drain_exec_sync_io_timeout is off), leaves such a probe without an answer until the kubelet
// gives up, each call holding goroutines, FIFOs and an exec record in the shim meanwhile.

// DefaultExecIODrain is the drain timeout unless Options.ExecIODrain sets one. When the process
// exits, what is still in flight is what the pipes hold (the process's pipe to the shim and the
// FIFO to us, 64 KiB each by default) and the shim's and our copy buffers (32 KiB each): that moves
// in well under a millisecond on an idle node, so 2 s leaves three orders of magnitude for a loaded
// one, while an exec probe whose command leaves a child answers well within the kubelet's default
// probe period (10 s).
const DefaultExecIODrain = 2 * time.Second

// execIOMinDrain is the drain the output gets even when the call's timeout comes first: the
// process exited just before its timeout, or was killed at it.
const execIOMinDrain = 200 * time.Millisecond

// execKillWait bounds the wait for a killed exec'd process to exit.
const execKillWait = 10 * time.Second

func (r *ContainerdRuntime) execIODrain() time.Duration {
	if r.opts.ExecIODrain > 0 {
		return r.opts.ExecIODrain
	}
	return DefaultExecIODrain
}

// execRun is an exec'd process that was started, and how it ended.
type execRun struct {
	r       *ContainerdRuntime
	process containerd.Process
	exitCh  <-chan containerd.ExitStatus
	log     *logrus.Entry
	// exited: the exit was received (status).
	exited bool
	status containerd.ExitStatus
	// drained: the output copies ended by themselves (all the output was read).
	drained bool
}

// setExited records the exit received from exitCh.
func (e *execRun) setExited(st containerd.ExitStatus) {
	e.exited, e.status = true, st
}

// kill kills the process unless it exited, and waits (at most execKillWait) for its exit.
func (e *execRun) kill(ctx context.Context) {
	if e.exited {
		return
	}
	kctx, cancel := withoutCancel(ctx, execKillWait)
	defer cancel()
	if err := e.process.Kill(kctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		e.log.WithError(err).Debug("kill exec process")
	}
	select {
	case st := <-e.exitCh:
		e.setExited(st)
	case <-kctx.Done():
		e.log.Warn("exec process did not exit after SIGKILL")
	}
}

// drain waits for the output copies to end, the process having exited: for at most the drain
// timeout, and not past deadline (zero: none) unless by execIOMinDrain, nor past the end of ctx.
// Copies that have not ended by then are cancelled; what they copied stands.
func (e *execRun) drain(ctx context.Context, deadline time.Time) {
	pio := e.process.IO()
	if pio == nil {
		e.drained = true
		return
	}
	now := time.Now()
	end := now.Add(e.r.execIODrain())
	if !deadline.IsZero() && deadline.Before(end) {
		end = deadline
		if floor := now.Add(execIOMinDrain); end.Before(floor) {
			end = floor
		}
	}
	done := make(chan struct{})
	go func() {
		pio.Wait()
		close(done)
	}()
	t := time.NewTimer(time.Until(end))
	defer t.Stop()
	select {
	case <-done:
		e.drained = true
		return
	case <-t.C:
		e.log.WithField("drain", time.Since(now).Round(time.Millisecond)).Debug("exec output still open after the process exited (a process it left holds it): giving up on the rest")
	case <-ctx.Done():
	}
	pio.Cancel()
	// The copies end as soon as their FIFOs are closed, unless a writer blocks (a streaming
	// client that does not read): what they had read gets to its writer first.
	select {
	case <-done:
	case <-time.After(execIOMinDrain):
	}
}

// release deletes the process and closes its IO, removing its FIFOs. When the output was
// drained the shim deletes the process at once. When a process left behind holds the output, the
// shim waits up to 10 s for that output before it deletes the process (containerd-shim-runc-v2's
// execProcess.delete): the deletion then goes on in the background (Close waits for it), so that
// the call answers now.
func (e *execRun) release(ctx context.Context) {
	del := func() {
		dctx, cancel := withoutCancel(ctx, cleanupTimeout)
		defer cancel()
		_, err := e.process.Delete(dctx, containerd.WithProcessKill)
		if err == nil {
			return // Delete closed the IO
		}
		if !errdefs.IsNotFound(err) {
			e.log.WithError(err).Warn("delete exec process")
		}
		if pio := e.process.IO(); pio != nil {
			pio.Cancel()
			if err := pio.Close(); err != nil {
				e.log.WithError(err).Debug("close exec IO")
			}
		}
	}
	if e.drained {
		del()
		return
	}
	e.r.wg.Add(1)
	go func() {
		defer e.r.wg.Done()
		del()
	}()
}
