package legacy

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
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
// cwd), no tty and no stdin, and returns its output and exit code. When timeout passes the process
// is killed and the error wraps context.DeadlineExceeded.
func (r *ContainerdRuntime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecSyncResult, error) {
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

	stdout := &cappedBuffer{max: MaxExecSyncOutput}
	stderr := &cappedBuffer{max: MaxExecSyncOutput}
	execID := "exec-" + newSandboxID()[:32]
	process, err := task.Exec(ctx, execID, pspec, cio.NewCreator(cio.WithStreams(nil, stdout, stderr), cio.WithFIFODir(filepath.Join(c.stateDir, "exec"))))
	if err != nil {
		return nil, fmt.Errorf("exec in container %s: %w", c.meta.ID, err)
	}
	// The process is deleted whatever happens, even when the request is cancelled.
	defer func() {
		dctx, cancel := withoutCancel(ctx, cleanupTimeout)
		defer cancel()
		if _, err := process.Delete(dctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			logrus.WithError(err).WithField("container", c.meta.ID).Warn("delete exec process")
		}
	}()
	exitCh, err := process.Wait(context.WithoutCancel(ctx))
	if err != nil {
		return nil, err
	}
	// Start is not tied to the caller's context: a cancel in the middle of it would leave a
	// running process that the deferred delete cannot remove. ctx is honoured right after.
	sctx, scancel := withoutCancel(ctx, cleanupTimeout)
	err = process.Start(sctx)
	scancel()
	if err != nil {
		return nil, fmt.Errorf("start exec in container %s: %w", c.meta.ID, err)
	}
	var timer <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		timer = t.C
	}
	kill := func() {
		kctx, cancel := withoutCancel(ctx, 10*time.Second)
		defer cancel()
		_ = process.Kill(kctx, syscall.SIGKILL)
		select {
		case <-exitCh:
		case <-kctx.Done():
		}
	}
	select {
	case st := <-exitCh:
		code, _, err := st.Result()
		if err != nil {
			return nil, err
		}
		// The output is complete once the copy is done.
		process.IO().Wait()
		return &ExecSyncResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: int32(code)}, nil
	case <-timer:
		kill()
		return nil, fmt.Errorf("exec in container %s: timeout %v exceeded: %w", c.meta.ID, timeout, context.DeadlineExceeded)
	case <-ctx.Done():
		kill()
		return nil, ctx.Err()
	}
}
