package testutil

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Within runs f and fails the test when it has not returned after d (f is left running: the
// caller's cleanup must unblock it).
func Within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
	}
}

// PlantFIFO makes a FIFO at path with a reader that never reads, as a container with its log
// directory mounted can: an open for writing succeeds, and writes block once the pipe is full.
// The reader is closed at cleanup (a write blocked on it then fails with EPIPE).
func PlantFIFO(t testing.TB, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o666); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
}
