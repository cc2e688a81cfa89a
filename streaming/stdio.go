package streaming

import (
	"context"
	"errors"
	"io"
	"sync"
)

// subscriberQueue is how many chunks of output an attached client may lag behind before it is
// detached (the container's output never waits for a client).
const subscriberQueue = 1024

// ErrDetached is returned by Attach when a client was too slow to take the output and was dropped.
var ErrDetached = errors.New("attach client too slow: detached")

// Stdio is a running container's own stdio, shared by the clients attached to it. The container
// runtime passes the container's output through Tee on its way to the log; every attached client
// gets a copy, without ever slowing the container down. The clients' input goes to the container's
// stdin.
type Stdio struct {
	stdin io.WriteCloser

	mu        sync.Mutex
	nextID    int
	subs      map[int]*subscriber
	closed    bool
	done      chan struct{}
	stdinGone bool
}

// NewStdio returns the stdio of a container whose stdin is written through stdin (nil: the
// container has no stdin).
func NewStdio(stdin io.WriteCloser) *Stdio {
	return &Stdio{stdin: stdin, subs: map[int]*subscriber{}, done: make(chan struct{})}
}

// HasStdin tells whether the container has a stdin that is still open.
func (s *Stdio) HasStdin() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stdin != nil && !s.stdinGone
}

// Tee returns a reader yielding what r yields and copying it to the attached clients of the
// stream (stderr false: stdout).
func (s *Stdio) Tee(stderr bool, r io.Reader) io.Reader {
	return &teeReader{s: s, stderr: stderr, r: r}
}

type teeReader struct {
	s      *Stdio
	stderr bool
	r      io.Reader
}

func (t *teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.s.publish(t.stderr, p[:n])
	}
	return n, err
}

// Write copies p to the attached clients of stdout; it is what Tee does, for an output the
// runtime reads itself.
func (s *Stdio) Write(stderr bool, p []byte) { s.publish(stderr, p) }

func (s *Stdio) publish(stderr bool, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	var chunk []byte
	for id, sub := range s.subs {
		w := sub.stdout
		if stderr {
			w = sub.stderr
		}
		if w == nil {
			continue
		}
		if chunk == nil {
			chunk = append([]byte(nil), p...)
		}
		select {
		case sub.queue <- output{stderr: stderr, data: chunk}:
		default:
			// Too slow: drop it rather than hold the container's output.
			delete(s.subs, id)
			sub.drop(ErrDetached)
		}
	}
}

// Close ends the container's output: every attach returns once its client got what was sent
// before. The container's stdin is closed.
func (s *Stdio) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	subs := s.subs
	s.subs = map[int]*subscriber{}
	stdin := s.stdin
	if s.stdinGone {
		stdin = nil
	}
	s.stdinGone = true
	s.mu.Unlock()
	for _, sub := range subs {
		sub.drop(nil)
	}
	close(s.done)
	if stdin != nil {
		stdin.Close()
	}
}

// Done is closed when the container's output ended.
func (s *Stdio) Done() <-chan struct{} { return s.done }

// CloseStdin closes the container's stdin (stdin_once): the process reads EOF once every other
// writer (the shim's) is closed too.
func (s *Stdio) CloseStdin() {
	s.mu.Lock()
	stdin := s.stdin
	gone := s.stdinGone
	s.stdinGone = true
	s.mu.Unlock()
	if stdin != nil && !gone {
		stdin.Close()
	}
}

type output struct {
	stderr bool
	data   []byte
}

type subscriber struct {
	stdout, stderr io.Writer
	queue          chan output
	once           sync.Once
	dropped        chan struct{}
	err            error
}

func (sub *subscriber) drop(err error) {
	sub.once.Do(func() {
		sub.err = err
		close(sub.dropped)
	})
}

// AttachOptions are an attach client's streams (nil: not wanted) and how its stdin behaves.
type AttachOptions struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// StdinOnce closes the container's stdin when this client's stdin ends (and the container is
	// not on a terminal); otherwise the end of the client's stdin detaches the client.
	StdinOnce bool
	TTY       bool
	// OnStdinClosed is called after the container's stdin was closed for StdinOnce (for the
	// runtime to close the shim's side too).
	OnStdinClosed func()
}

// Attach connects a client: its stdin to the container's, the container's output to its stdout
// and stderr. It returns when the container's output ended (after the client got all of it),
// the client's stdin ended (unless StdinOnce applies), a write to the client failed, the client
// was too slow, or ctx ended.
func (s *Stdio) Attach(ctx context.Context, o AttachOptions) error {
	sub := &subscriber{stdout: o.Stdout, stderr: o.Stderr, queue: make(chan output, subscriberQueue), dropped: make(chan struct{})}
	if o.TTY {
		sub.stderr = nil
	}
	s.mu.Lock()
	closed := s.closed
	id := s.nextID
	s.nextID++
	if !closed && (sub.stdout != nil || sub.stderr != nil) {
		s.subs[id] = sub
	}
	stdin := s.stdin
	if s.stdinGone {
		stdin = nil
	}
	s.mu.Unlock()
	if closed {
		return nil
	}
	defer s.unsubscribe(id)

	stdinDone := make(chan error, 1)
	if o.Stdin != nil && stdin != nil {
		go func() {
			_, err := io.Copy(stdin, o.Stdin)
			stdinDone <- err
		}()
	}
	writeFailed := make(chan error, 1)
	go func() {
		// Deliver the queued output; after a drop, what was queued before it still goes out.
		for {
			select {
			case out := <-sub.queue:
				if err := sub.write(out); err != nil {
					writeFailed <- err
					return
				}
			case <-sub.dropped:
				for {
					select {
					case out := <-sub.queue:
						if err := sub.write(out); err != nil {
							writeFailed <- err
							return
						}
					default:
						writeFailed <- nil
						return
					}
				}
			}
		}
	}()
	outputs := sub.stdout != nil || sub.stderr != nil
	done := s.done
	for {
		select {
		case err := <-writeFailed:
			if sub.err != nil {
				return sub.err
			}
			return err
		case err := <-stdinDone:
			if o.StdinOnce && !o.TTY {
				s.CloseStdin()
				if o.OnStdinClosed != nil {
					o.OnStdinClosed()
				}
				if !outputs {
					return nil
				}
				// Keep receiving the output until the container ends it.
				continue
			}
			if err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return err
			}
			return nil
		case <-done:
			if !outputs {
				return nil
			}
			// The output goroutine returns once the queue is drained (the sub was dropped).
			done = nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (sub *subscriber) write(out output) error {
	w := sub.stdout
	if out.stderr {
		w = sub.stderr
	}
	if w == nil {
		return nil
	}
	_, err := w.Write(out.data)
	return err
}

func (s *Stdio) unsubscribe(id int) {
	s.mu.Lock()
	sub, ok := s.subs[id]
	delete(s.subs, id)
	s.mu.Unlock()
	if ok {
		sub.drop(nil)
	}
}
