package iopump

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
)

type collected struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ended chan struct{}
}

func newCollected() *collected { return &collected{ended: make(chan struct{})} }

func (c *collected) out(p []byte) <-chan struct{} {
	c.mu.Lock()
	c.buf.Write(p)
	c.mu.Unlock()
	return nil
}

func (c *collected) end() { close(c.ended) }

func (c *collected) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

func isEnded(c *collected) bool {
	select {
	case <-c.ended:
		return true
	default:
		return false
	}
}

func TestPumpIOReadsUntilWritersClose(t *testing.T) {
	dir := t.TempDir()
	fifos := cio.NewFIFOSet(cio.Config{Stdout: filepath.Join(dir, "stdout"), Stderr: filepath.Join(dir, "stderr")}, nil)
	pio, err := New(t.Context(), fifos)
	if err != nil {
		t.Fatal(err)
	}
	defer pio.Close()
	stdout, stderr := newCollected(), newCollected()
	if err := pio.Read(fifos.Stdout, stdout.out, stdout.end); err != nil {
		t.Fatal(err)
	}
	if err := pio.Read(fifos.Stderr, stderr.out, stderr.end); err != nil {
		t.Fatal(err)
	}
	// No writer yet: no EOF.
	time.Sleep(50 * time.Millisecond)
	if isEnded(stdout) || isEnded(stderr) {
		t.Fatal("a stream ended before any writer opened its FIFO")
	}
	wo, err := os.OpenFile(fifos.Stdout, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	we, err := os.OpenFile(fifos.Stderr, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // more than a pipe holds
	done := make(chan struct{})
	go func() {
		defer close(done)
		wo.Write([]byte("hello\n"))
		wo.Write(big)
		wo.Close()
	}()
	we.Write([]byte("oops\n"))
	<-done
	select {
	case <-stdout.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stdout did not end after its writer closed")
	}
	if got, want := stdout.String(), "hello\n"+string(big); got != want {
		t.Fatalf("stdout: got %d bytes, want %d", len(got), len(want))
	}
	if isEnded(stderr) {
		t.Fatal("stderr ended while its writer is open")
	}
	we.Close()
	select {
	case <-stderr.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stderr did not end after its writer closed")
	}
	if got := stderr.String(); got != "oops\n" {
		t.Fatalf("stderr %q", got)
	}
	pio.Wait()
}

func TestPumpIOCloseEndsStreams(t *testing.T) {
	dir := t.TempDir()
	fifos := cio.NewFIFOSet(cio.Config{Stdout: filepath.Join(dir, "io", "stdout"), Stdin: filepath.Join(dir, "io", "stdin")},
		func() error { return os.RemoveAll(filepath.Join(dir, "io")) })
	if err := os.MkdirAll(filepath.Join(dir, "io"), 0o700); err != nil {
		t.Fatal(err)
	}
	pio, err := New(t.Context(), fifos)
	if err != nil {
		t.Fatal(err)
	}
	if pio.Stdin == nil {
		t.Fatal("no stdin writer")
	}
	out := newCollected()
	if err := pio.Read(fifos.Stdout, out.out, out.end); err != nil {
		t.Fatal(err)
	}
	if err := pio.Close(); err != nil {
		t.Fatal(err)
	}
	if !isEnded(out) {
		t.Fatal("Close did not end the stream")
	}
	pio.Wait()
	if _, err := os.Stat(filepath.Join(dir, "io")); !os.IsNotExist(err) {
		t.Fatalf("FIFO dir left: %v", err)
	}
}

func TestPumpManyStreamsOneGoroutine(t *testing.T) {
	dir := t.TempDir()
	const n = 50
	var writers []*os.File
	var outs []*collected
	for i := range n {
		path := filepath.Join(dir, "f"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		pio, err := New(t.Context(), cio.NewFIFOSet(cio.Config{Stdout: path}, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer pio.Close()
		c := newCollected()
		if err := pio.Read(path, c.out, c.end); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		writers, outs = append(writers, w), append(outs, c)
	}
	for round := range 3 {
		for i, w := range writers {
			w.Write([]byte{byte('0' + round), byte('a' + i%26), '\n'})
		}
	}
	for _, w := range writers {
		w.Close()
	}
	for i, c := range outs {
		select {
		case <-c.ended:
		case <-time.After(5 * time.Second):
			t.Fatalf("stream %d did not end", i)
		}
		l := string(rune('a' + i%26))
		if got, want := c.String(), "0"+l+"\n1"+l+"\n2"+l+"\n"; got != want {
			t.Fatalf("stream %d: %q, want %q", i, got, want)
		}
	}
}

// A stream whose out asks to wait (its log does not keep up) is not read until the channel is
// closed, also when its writers hang up meanwhile (no busy loop on the hang-up); the other streams
// are read meanwhile. Then it is read to its end.
func TestPumpPausesAStream(t *testing.T) {
	dir := t.TempDir()
	open := func(name string, out func([]byte) <-chan struct{}, end func()) *os.File {
		path := filepath.Join(dir, name)
		pio, err := New(t.Context(), cio.NewFIFOSet(cio.Config{Stdout: path}, nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pio.Close() })
		if err := pio.Read(path, out, end); err != nil {
			t.Fatal(err)
		}
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	gate := make(chan struct{})
	a := newCollected()
	var aCalls int
	wa := open("a", func(p []byte) <-chan struct{} {
		a.out(p)
		a.mu.Lock()
		aCalls++
		a.mu.Unlock()
		return gate
	}, a.end)
	b := newCollected()
	wb := open("b", b.out, b.end)
	defer wb.Close()

	wa.Write([]byte("a1\n"))
	pollUntil(t, func() bool { return a.String() == "a1\n" })
	wa.Write([]byte("a2\n"))
	wa.Close() // hung up while paused
	wb.Write([]byte("b1\n"))
	pollUntil(t, func() bool { return b.String() == "b1\n" })
	cpu := processCPU()
	time.Sleep(100 * time.Millisecond) // a window in which a paused stream must not be read
	if used := processCPU() - cpu; used > 50*time.Millisecond {
		t.Errorf("%v of CPU in 100ms with a paused stream hung up: a busy loop?", used)
	}
	a.mu.Lock()
	calls := aCalls
	a.mu.Unlock()
	if got := a.String(); got != "a1\n" || calls != 1 || isEnded(a) {
		t.Fatalf("paused stream read on: %q, %d calls, ended %v", got, calls, isEnded(a))
	}
	close(gate)
	select {
	case <-a.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the resumed stream did not end")
	}
	if got := a.String(); got != "a1\na2\n" {
		t.Fatalf("resumed stream: %q", got)
	}
}

// pollUntil polls cond for up to 5s.
func pollUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met after 5s")
		}
	}
}
