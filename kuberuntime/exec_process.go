package kuberuntime

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/streaming"
	"github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
)

// The one way a command runs in a container, for ExecSync and the streaming exec: execTarget
// finds the running container and the process settings the command inherits, execProcess runs
// it and waits (bounded) for its end; exec_io.go has how the process ends (kill, output drain,
// delete).

// execStdio is what an exec'd process is connected to. The shim wants every output FIFO: a nil
// stdout or stderr is discarded. On a terminal stderr is not used (the terminal carries both).
type execStdio struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	tty            bool
	// resize, with tty, resizes the terminal; sizes with a zero side are ignored.
	resize <-chan streaming.TerminalSize
}

// execTimeoutError is the error of an exec killed at its timeout. It wraps
// context.DeadlineExceeded, which the kubelet takes for a probe's timeout (as containerd's CRI
// answers).
type execTimeoutError struct {
	container string
	timeout   time.Duration
}

func (e *execTimeoutError) Error() string {
	return fmt.Sprintf("exec in container %s: timeout %v exceeded: %v", e.container, e.timeout, context.DeadlineExceeded)
}

func (e *execTimeoutError) Unwrap() error { return context.DeadlineExceeded }

// execTarget returns the running container id (or unique prefix), its task and its process
// settings (user, env, cwd, capabilities) with args cmd: InvalidArgument for an empty command,
// NotFound for an unknown container, FailedPrecondition for one that does not run.
func (r *ContainerdRuntime) execTarget(ctx context.Context, id string, cmd []string) (*podContainer, containerd.Task, *specs.Process, error) {
	if len(cmd) == 0 {
		return nil, nil, nil, fmt.Errorf("exec: empty command: %w", errdefs.ErrInvalidArgument)
	}
	c, cntr, task, err := r.runningContainer(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	spec, err := cntr.Spec(r.withNS(ctx))
	if err != nil {
		return nil, nil, nil, err
	}
	pspec := spec.Process
	pspec.Args = cmd
	return c, task, pspec, nil
}

// execProcess runs pspec as a new process of c's task, connected to stdio, and returns its exit
// code once it has exited and its output has drained (at most the drain timeout after the exit).
// When timeout (zero: none) passes first the process is killed, and the error is an
// *execTimeoutError with the killed process's exit code (-1 when it did not exit); when ctx ends
// first (the client went away) the process is killed and ctx's error returned. Whatever happens
// the process is deleted and its IO closed, even when ctx is cancelled.
func (r *ContainerdRuntime) execProcess(ctx context.Context, c *podContainer, task containerd.Task, pspec *specs.Process, stdio execStdio, timeout time.Duration) (int32, error) {
	ctx = r.withNS(ctx)
	pspec.Terminal = stdio.tty
	// The end of the client's stdin closes the process's: the shim holds a writer of the FIFO
	// until CloseIO, done once the process started.
	var stdinEOF chan struct{}
	if stdio.stdin != nil {
		stdinEOF = make(chan struct{})
		stdio.stdin = &eofReader{r: stdio.stdin, eof: stdinEOF}
	}
	var out, errw io.Writer = io.Discard, io.Discard
	if stdio.stdout != nil {
		out = stdio.stdout
	}
	if stdio.stderr != nil && !stdio.tty {
		errw = stdio.stderr
	}
	opts := []cio.Opt{cio.WithStreams(stdio.stdin, out, errw), cio.WithFIFODir(filepath.Join(c.stateDir, "exec"))}
	if stdio.tty {
		opts = append(opts, cio.WithTerminal)
	}

	execID := newExecID()
	log := logrus.WithFields(logrus.Fields{"container": c.meta.ID, "exec": execID})
	process, err := task.Exec(ctx, execID, pspec, cio.NewCreator(opts...))
	if err != nil {
		return -1, fmt.Errorf("exec in container %s: %w", c.meta.ID, err)
	}
	if r.execStarted != nil {
		r.execStarted(execID)
	}
	run := &execRun{r: r, process: process, log: log}
	defer func() {
		run.kill(ctx)
		run.release(ctx)
	}()
	run.exitCh, err = process.Wait(context.WithoutCancel(ctx))
	if err != nil {
		run.exited = true // not started: nothing to kill
		return -1, fmt.Errorf("wait for exec in container %s: %w", c.meta.ID, err)
	}
	// Start is not tied to the caller's context: a cancel in the middle of it would leave a
	// running process that the deferred delete cannot remove. ctx is honoured right after.
	sctx, scancel := withoutCancel(ctx, cleanupTimeout)
	err = process.Start(sctx)
	scancel()
	if err != nil {
		run.exited = true
		return -1, fmt.Errorf("start exec in container %s: %w", c.meta.ID, err)
	}
	done := make(chan struct{})
	defer close(done)
	if stdinEOF != nil {
		go closeStdinAtEOF(ctx, process, stdinEOF, done, log)
	}
	if stdio.tty && stdio.resize != nil {
		go resizeTerminal(ctx, process, stdio.resize, done, log)
	}

	// The timeout counts from the start: the output drain is not cut short by a slow Exec.
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
			return -1, fmt.Errorf("wait for exec in container %s: %w", c.meta.ID, err)
		}
		run.drain(ctx, deadline)
		log.WithField("exit_code", code).Debug("exec exited")
		return int32(code), nil
	case <-timer:
		run.kill(ctx)
		run.drain(ctx, deadline)
		code := int32(-1)
		if run.exited {
			code = int32(run.status.ExitCode()) // 137 for the SIGKILL
		}
		return code, &execTimeoutError{container: c.meta.ID, timeout: timeout}
	case <-ctx.Done():
		log.Debug("exec caller went away; killing the process")
		return -1, ctx.Err() // the deferred cleanup kills and reaps it
	}
}

// closeStdinAtEOF closes the process's stdin once the client's has ended, until done.
func closeStdinAtEOF(ctx context.Context, process containerd.Process, eof, done <-chan struct{}, log *logrus.Entry) {
	select {
	case <-eof:
		if err := process.CloseIO(ctx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
			log.WithError(err).Debug("close exec stdin")
		}
	case <-done:
	}
}

// resizeTerminal applies the client's terminal sizes to the process's terminal, until done.
func resizeTerminal(ctx context.Context, process containerd.Process, resize <-chan streaming.TerminalSize, done <-chan struct{}, log *logrus.Entry) {
	for {
		select {
		case <-done:
			return
		case size, ok := <-resize:
			if !ok {
				return
			}
			if size.Width == 0 || size.Height == 0 {
				continue
			}
			if err := process.Resize(ctx, uint32(size.Width), uint32(size.Height)); err != nil && !errdefs.IsNotFound(err) {
				log.WithError(err).Debug("resize exec terminal")
			}
		}
	}
}

// runningContainer returns the container id (or unique prefix), its containerd container and its
// task when it runs: NotFound for an unknown container, FailedPrecondition for one that does not
// run.
func (r *ContainerdRuntime) runningContainer(ctx context.Context, id string) (*podContainer, containerd.Container, containerd.Task, error) {
	c, err := r.ctrs().store.get(id)
	if err != nil {
		return nil, nil, nil, err
	}
	state := c.snapshot().state
	notRunning := func() error {
		return fmt.Errorf("container %s is %s, not running: %w", c.meta.ID, state, errdefs.ErrFailedPrecondition)
	}
	if state != legacy.ContainerStateRunning {
		return nil, nil, nil, notRunning()
	}
	ctx = r.withNS(ctx)
	cntr, err := r.loadContainer(ctx, c.meta.ID)
	var task containerd.Task
	if err == nil {
		task, err = cntr.Task(ctx, nil)
	}
	if errdefs.IsNotFound(err) {
		return nil, nil, nil, notRunning()
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return c, cntr, task, nil
}

// eofReader closes eof once its reader ended (EOF or error).
type eofReader struct {
	r    io.Reader
	eof  chan struct{}
	once sync.Once
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil {
		e.once.Do(func() { close(e.eof) })
	}
	return n, err
}
