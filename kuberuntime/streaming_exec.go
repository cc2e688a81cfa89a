package kuberuntime

import (
	"context"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cri-shim/cri-shim/streaming"
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
	c, task, pspec, err := r.execTarget(ctx, id, cmd)
	if err != nil {
		return err
	}
	if tty && !slices.ContainsFunc(pspec.Env, func(e string) bool { return strings.HasPrefix(e, "TERM=") }) {
		pspec.Env = append(pspec.Env, "TERM=xterm")
	}
	stdio := execStdio{stdin: stdin, tty: tty, resize: resize}
	// A nil WriteCloser in an io.Writer would not be nil.
	if stdout != nil {
		stdio.stdout = stdout
	}
	if stderr != nil {
		stdio.stderr = stderr
	}
	code, err := r.execProcess(ctx, c, task, pspec, stdio, 0)
	if err != nil {
		return err
	}
	if code != 0 {
		return streaming.NewExitError(cmd, int(code))
	}
	return nil
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
