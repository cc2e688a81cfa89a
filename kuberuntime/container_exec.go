package kuberuntime

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
)

// cappedBuffer keeps the first max bytes written to it and drops the rest (the writer must not
// block the process).
type cappedBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - len(b.buf); room > 0 {
		b.buf = append(b.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (b *cappedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf...)
}

// ExecSync runs cmd in the running container with the container's process settings (user, env,
// cwd), no tty and no stdin, and returns its output and exit code. The output is what arrived
// within the drain timeout after the exit (exec_io.go): a child the command left holding its
// output does not hold the call. When timeout passes the process is killed, and the output read
// until then comes back with an error that wraps context.DeadlineExceeded (as containerd's CRI
// answers: the kubelet takes DeadlineExceeded for a probe's timeout); the call returns within the
// timeout and a short drain.
func (r *ContainerdRuntime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*legacy.ExecSyncResult, error) {
	if len(cmd) == 0 {
		return nil, fmt.Errorf("exec: empty command: %w", errdefs.ErrInvalidArgument)
	}
	c, cntr, task, err := r.runningContainer(ctx, id)
	if err != nil {
		return nil, err
	}
	ctx = r.withNS(ctx)
	spec, err := cntr.Spec(ctx)
	if err != nil {
		return nil, err
	}
	pspec := spec.Process
	pspec.Terminal = false
	pspec.Args = cmd

	stdout := &cappedBuffer{max: legacy.MaxExecSyncOutput}
	stderr := &cappedBuffer{max: legacy.MaxExecSyncOutput}
	execID := "exec-" + newSandboxID()[:32]
	log := logrus.WithFields(logrus.Fields{"container": c.meta.ID, "exec": execID})
	process, err := task.Exec(ctx, execID, pspec, cio.NewCreator(cio.WithStreams(nil, stdout, stderr), cio.WithFIFODir(filepath.Join(c.stateDir, "exec"))))
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", c.meta.ID, err)
	}
	if r.execStarted != nil {
		r.execStarted(execID)
	}
	run := &execRun{r: r, process: process, log: log}
	// Whatever happens the process is killed (when still running) and deleted, even when the
	// request is cancelled.
	defer func() {
		run.kill(ctx)
		run.release(ctx)
	}()
	run.exitCh, err = process.Wait(context.WithoutCancel(ctx))
	if err != nil {
		run.exited = true // not started: nothing to kill
		return nil, err
	}
	// Start is not tied to the caller's context: a cancel in the middle of it would leave a
	// running process that the deferred delete cannot remove. ctx is honoured right after.
	sctx, scancel := withoutCancel(ctx, cleanupTimeout)
	err = process.Start(sctx)
	scancel()
	if err != nil {
		run.exited = true
		return nil, fmt.Errorf("start exec in container %s: %w", c.meta.ID, err)
	}
	var timer <-chan time.Time
	var deadline time.Time
	if timeout > 0 {
		deadline = time.Now().Add(timeout)
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	select {
	case st := <-run.exitCh:
		run.setExited(st)
		code, _, err := st.Result()
		if err != nil {
			return nil, err
		}
		run.drain(ctx, deadline)
		return &legacy.ExecSyncResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
	case <-timer:
		run.kill(ctx)
		run.drain(ctx, deadline)
		// The killed process's exit code (137), -1 when it did not exit.
		res := &legacy.ExecSyncResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: -1}
		if run.exited {
			res.ExitCode = int32(run.status.ExitCode())
		}
		return res, fmt.Errorf("exec in container %s: timeout %v exceeded: %w", c.meta.ID, timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
