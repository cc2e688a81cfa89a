package kuberuntime

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
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
	c, task, pspec, err := r.execTarget(ctx, id, cmd)
	if err != nil {
		return nil, err
	}
	stdout := &cappedBuffer{max: legacy.MaxExecSyncOutput}
	stderr := &cappedBuffer{max: legacy.MaxExecSyncOutput}
	code, err := r.execProcess(ctx, c, task, pspec, execStdio{stdout: stdout, stderr: stderr}, timeout)
	var timedOut *execTimeoutError
	if err != nil && !errors.As(err, &timedOut) {
		return nil, err
	}
	// At the timeout: the output read until then, with the killed process's exit code.
	return &legacy.ExecSyncResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitCode: code}, err
}
