package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"io"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/streaming"
	"github.com/sirupsen/logrus"
)

// ErrAttachUnsupported is the error of an attach to a container whose stdio cannot be shared.
var ErrAttachUnsupported = errors.New("attach: the container's stdio is not shared with attach clients")

// AttachContainer connects the client's streams to the stdio of the running container id:
// the container's output (which keeps going to the CRI log) to stdout/stderr, stdin (when the
// container was created with stdin) from the client. With stdin_once (and no tty) the end of the
// client's stdin closes the container's stdin; otherwise it detaches the client. Resize events
// resize the container's terminal.
func (r *ContainerdRuntime) AttachContainer(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	c, _, task, err := r.runningContainer(ctx, id)
	if err != nil {
		return err
	}
	ctrIO := c.snapshot().io
	var stdio *streaming.Stdio
	if ctrIO != nil {
		stdio = ctrIO.attachStdio()
	}
	if stdio == nil {
		return fmt.Errorf("container %s: %w", c.meta.ID, ErrAttachUnsupported)
	}
	log := logrus.WithField("container", c.meta.ID)
	nctx := r.withNS(ctx)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.config.GetTty() && resize != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case size, ok := <-resize:
					if !ok {
						return
					}
					if size.Width == 0 || size.Height == 0 {
						continue
					}
					if err := task.Resize(nctx, uint32(size.Width), uint32(size.Height)); err != nil && !errdefs.IsNotFound(err) {
						log.WithError(err).Debug("resize container terminal")
					}
				}
			}
		}()
	}
	if !c.config.GetStdin() {
		stdin = nil
	}
	opts := streaming.AttachOptions{
		Stdin:     stdin,
		StdinOnce: c.config.GetStdinOnce(),
		TTY:       c.config.GetTty(),
		OnStdinClosed: func() {
			cctx, ccancel := withoutCancel(nctx, cleanupTimeout)
			defer ccancel()
			if err := task.CloseIO(cctx, containerd.WithStdinCloser); err != nil && !errdefs.IsNotFound(err) {
				log.WithError(err).Debug("close container stdin")
			}
		},
	}
	if stdout != nil {
		opts.Stdout = stdout
	}
	if stderr != nil {
		opts.Stderr = stderr
	}
	err = stdio.Attach(ctx, opts)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
