package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/streaming"
	"github.com/sirupsen/logrus"
)

// The runtime serves the streaming server: exec and port-forward (streaming_exec.go,
// streaming_portforward.go) and attach (streaming_attach.go).
var _ streaming.Runtime = (*ContainerdRuntime)(nil)

// ExecInContainer runs cmd in the running container id with the container's process settings
// (user, env, cwd, capabilities), connected to the client's streams, optionally on a terminal
// (TERM=xterm unless the container sets TERM) resized by the client. It returns the process's exit:
// nil for 0, a streaming.ExitError otherwise. When ctx ends before (the client went away) the
// process is killed; it is always deleted.
func (r *ContainerdRuntime) ExecInContainer(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	if len(cmd) == 0 {
		return fmt.Errorf("exec: empty command: %w", errdefs.ErrInvalidArgument)
	}
	c, cntr, task, err := r.runningContainer(ctx, id)
	if err != nil {
		return err
	}
	nctx := r.withNS(ctx)
	spec, err := cntr.Spec(nctx)
	if err != nil {
		return err
	}
	pspec := spec.Process
	pspec.Args = cmd
	pspec.Terminal = tty
	if tty && !slices.ContainsFunc(pspec.Env, func(e string) bool { return strings.HasPrefix(e, "TERM=") }) {
		pspec.Env = append(pspec.Env, "TERM=xterm")
	}
	// The end of the client's stdin closes the process's: the shim holds a writer of the FIFO
	// until CloseIO, done once the process started.
	var stdinEOF chan struct{}
	if stdin != nil {
		stdinEOF = make(chan struct{})
		stdin = &eofReader{r: stdin, eof: stdinEOF}
	}
	// The shim wants every output FIFO: what the client does not want is discarded.
	var out, errw io.Writer = io.Discard, io.Discard
	if stdout != nil {
		out = stdout
	}
	if stderr != nil && !tty {
		errw = stderr
	}
	opts := []cio.Opt{cio.WithStreams(stdin, out, errw), cio.WithFIFODir(filepath.Join(c.stateDir, "exec"))}
	if tty {
		opts = append(opts, cio.WithTerminal)
	}
	execID := "exec-" + newSandboxID()[:32]
	log := logrus.WithFields(logrus.Fields{"container": c.meta.ID, "exec": execID})
	process, err := task.Exec(nctx, execID, pspec, cio.NewCreator(opts...))
	if err != nil {
		return fmt.Errorf("exec in container %s: %w", c.meta.ID, err)
	}
	run := &execRun{r: r, process: process, log: log}
	// Whatever happens the process is killed (when still running), reaped and deleted, and its
	// IO closed. None of it depends on the client's context, which ends when the client goes.
	defer func() {
		run.kill(nctx)
		run.release(nctx)
	}()
	run.exitCh, err = process.Wait(context.WithoutCancel(nctx))
	if err != nil {
		run.exited = true // not started: nothing to kill
		return err
	}
	// Start is not cancelled with the client: the process may run before the call returns.
	sctx, scancel := withoutCancel(nctx, cleanupTimeout)
	err = process.Start(sctx)
	scancel()
	if err != nil {
		run.exited = true
		return fmt.Errorf("start exec in container %s: %w", c.meta.ID, err)
	}
	done := make(chan struct{})
	defer close(done)
	if stdinEOF != nil {
		go func() {
			select {
			case <-stdinEOF:
				if err := process.CloseIO(nctx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
					log.WithError(err).Debug("close exec stdin")
				}
			case <-done:
			}
		}()
	}
	if tty && resize != nil {
		go func() {
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
					if err := process.Resize(nctx, uint32(size.Width), uint32(size.Height)); err != nil && !errdefs.IsNotFound(err) {
						log.WithError(err).Debug("resize exec terminal")
					}
				}
			}
		}()
	}
	select {
	case st := <-run.exitCh:
		run.setExited(st)
		code, _, err := st.Result()
		if err != nil {
			return fmt.Errorf("wait for exec in container %s: %w", c.meta.ID, err)
		}
		run.drain(ctx, time.Time{})
		log.WithField("exit_code", code).Debug("exec exited")
		if code != 0 {
			return streaming.NewExitError(cmd, int(code))
		}
		return nil
	case <-ctx.Done():
		log.Debug("exec client went away; killing the process")
		return ctx.Err() // the deferred cleanup kills and reaps it
	}
}

// RunInContainer runs cmd in the running container and returns its combined output; a non-zero
// exit gives a streaming.ExitError (with the output).
func (r *ContainerdRuntime) RunInContainer(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, error) {
	res, err := r.ExecSync(ctx, id, cmd, timeout)
	if err != nil {
		return nil, err
	}
	out := append(res.Stdout, res.Stderr...)
	if res.ExitCode != 0 {
		return out, streaming.NewExitError(cmd, int(res.ExitCode))
	}
	return out, nil
}

// runningContainer returns the container id (or unique prefix), its containerd container and its
// task when it runs: NotFound for an unknown container, FailedPrecondition for one that does not
// run.
func (r *ContainerdRuntime) runningContainer(ctx context.Context, id string) (*podContainer, containerd.Container, containerd.Task, error) {
	c, err := r.ctrs().store.get(id)
	if err != nil {
		return nil, nil, nil, err
	}
	c.mu.RLock()
	state := c.state
	c.mu.RUnlock()
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

var errNoNetNS = errors.New("sandbox has no network namespace")

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
