// Package streaming is cri-shim's exec / attach / port-forward server, built on
// k8s.io/cri-streaming (the streaming server the kubelet's runtimes use), and the runtime side of it
// as the model names it: ContainerCommandRunner (exec, port-forward) and ContainerAttacher. The
// containerd runtime in legacy/ implements them; the CRI server hands out the single-use URLs.
//
// It never imports legacy/ or server/.
package streaming

import (
	"context"
	"fmt"
	"io"
	"time"

	"k8s.io/cri-streaming/pkg/streaming/remotecommand"
	utilexec "k8s.io/utils/exec"
)

// TerminalSize is a terminal's size in characters, as the client's resize events carry it.
type TerminalSize = remotecommand.TerminalSize

// ContainerCommandRunner runs commands in containers and forwards ports of pods.
type ContainerCommandRunner interface {
	// RunInContainer runs cmd in the running container id and returns its combined output; a
	// non-zero exit gives an error that is an ExitError. timeout 0 means none.
	RunInContainer(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, error)
	// ExecInContainer runs cmd in the running container id with the given streams (nil: not
	// wanted), optionally on a terminal resized by the events of resize. It returns when the
	// command exits (a non-zero exit gives an error that is an ExitError) or when ctx ends (the
	// client went away), in which case the process is killed.
	ExecInContainer(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan TerminalSize) error
	// PortForward copies between stream and the TCP port inside the network namespace of the pod
	// sandbox podSandboxID until either side closes. An unreachable port is an error.
	PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error
}

// ContainerAttacher attaches to the stdio of a container's own process.
type ContainerAttacher interface {
	// AttachContainer copies between the given streams (nil: not wanted) and the running
	// container's stdio until the container exits, the client closes its streams, or ctx ends.
	AttachContainer(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan TerminalSize) error
}

// Runtime is what the streaming server serves from.
type Runtime interface {
	ContainerCommandRunner
	ContainerAttacher
}

// ExitError is a command's non-zero exit: the streaming server reports its code to the client.
type ExitError = utilexec.ExitError

// NewExitError returns the ExitError of a command that exited with code.
func NewExitError(cmd []string, code int) error {
	return utilexec.CodeExitError{Err: fmt.Errorf("command %q exited with code %d", cmd, code), Code: code}
}
