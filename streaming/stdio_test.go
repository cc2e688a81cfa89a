package streaming_test

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/streaming"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type nopWriteCloser struct {
	io.Writer
	closed chan struct{}
}

func (n *nopWriteCloser) Close() error { close(n.closed); return nil }

func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestStdioFanOut(t *testing.T) {
	var stdin syncBuffer
	stdinW := &nopWriteCloser{Writer: &stdin, closed: make(chan struct{})}
	s := streaming.NewStdio(stdinW)
	// The container's output as the runtime reads it towards the log.
	outR, outW := io.Pipe()
	var logged syncBuffer
	logDone := make(chan struct{})
	go func() { io.Copy(&logged, s.Tee(false, outR)); close(logDone) }()

	ctx := context.Background()
	var a, b syncBuffer
	doneA := make(chan error, 1)
	doneB := make(chan error, 1)
	go func() { doneA <- s.Attach(ctx, streaming.AttachOptions{Stdout: &a}) }()
	inR, inW := io.Pipe()
	go func() { doneB <- s.Attach(ctx, streaming.AttachOptions{Stdout: &b, Stdin: inR}) }()
	time.Sleep(50 * time.Millisecond)
	outW.Write([]byte("one\n"))
	waitFor(t, "both clients", func() bool { return a.String() == "one\n" && b.String() == "one\n" })
	inW.Write([]byte("typed"))
	waitFor(t, "stdin", func() bool { return stdin.String() == "typed" })
	// Without stdin_once, the end of the client's stdin detaches it.
	inW.Close()
	if err := <-doneB; err != nil {
		t.Fatal(err)
	}
	outW.Write([]byte("two\n"))
	waitFor(t, "client a", func() bool { return a.String() == "one\ntwo\n" })
	if b.String() != "one\n" {
		t.Fatalf("detached client got %q", b.String())
	}
	// The end of the output ends the attach; the log got everything.
	outW.Close()
	<-logDone
	s.Close()
	if err := <-doneA; err != nil {
		t.Fatal(err)
	}
	if logged.String() != "one\ntwo\n" {
		t.Fatalf("log %q", logged.String())
	}
	<-stdinW.closed
	// Attaching after the end returns at once.
	if err := s.Attach(ctx, streaming.AttachOptions{Stdout: &a}); err != nil {
		t.Fatal(err)
	}
}

func TestStdioStdinOnce(t *testing.T) {
	var stdin syncBuffer
	stdinW := &nopWriteCloser{Writer: &stdin, closed: make(chan struct{})}
	s := streaming.NewStdio(stdinW)
	closedCalled := make(chan struct{})
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- s.Attach(context.Background(), streaming.AttachOptions{
			Stdin: strings.NewReader("input"), Stdout: &out, StdinOnce: true,
			OnStdinClosed: func() { close(closedCalled) },
		})
	}()
	<-closedCalled
	<-stdinW.closed
	if stdin.String() != "input" || s.HasStdin() {
		t.Fatalf("stdin %q, open %v", stdin.String(), s.HasStdin())
	}
	// Still attached to the output until it ends.
	s.Write(false, []byte("bye"))
	waitFor(t, "output", func() bool { return out.String() == "bye" })
	select {
	case err := <-done:
		t.Fatalf("attach ended early: %v", err)
	default:
	}
	s.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// blockingWriter never returns until released.
type blockingWriter struct{ release chan struct{} }

func (b *blockingWriter) Write(p []byte) (int, error) { <-b.release; return len(p), nil }

// A client that does not read never holds the container's output: it is detached.
func TestStdioSlowClientDetached(t *testing.T) {
	s := streaming.NewStdio(nil)
	w := &blockingWriter{release: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- s.Attach(context.Background(), streaming.AttachOptions{Stdout: w}) }()
	time.Sleep(50 * time.Millisecond)
	finished := make(chan struct{})
	go func() {
		for range 5000 {
			s.Write(false, []byte("x"))
		}
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
		t.Fatal("the output waited for a slow client")
	}
	close(w.release)
	if err := <-done; err != streaming.ErrDetached {
		t.Fatalf("got %v, want ErrDetached", err)
	}
	s.Close()
}

func TestStdioCancel(t *testing.T) {
	s := streaming.NewStdio(nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Attach(ctx, streaming.AttachOptions{Stdout: io.Discard}) }()
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatal(err)
	}
	s.Write(false, []byte("after"))
	s.Close()
}

func TestStartPty(t *testing.T) {
	cmd := exec.Command("sh", "-c", "tty; stty size")
	master, err := streaming.StartPty(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	// Output written before the size is set is fine either way; set it before sh runs stty.
	streaming.SetPtySize(master, streaming.TerminalSize{Width: 100, Height: 30})
	var out bytes.Buffer
	io.Copy(&out, master) // EIO once the child exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if !strings.Contains(out.String(), "/dev/pts/") {
		t.Fatalf("not on a terminal: %q", out.String())
	}
}
