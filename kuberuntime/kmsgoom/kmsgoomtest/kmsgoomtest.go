// Package kmsgoomtest gives tests a stand-in for /dev/kmsg.
package kmsgoomtest

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// FakeLog makes a FIFO to stand in for /dev/kmsg (a pollable file, one record per write) and
// returns its path and its writer end, opened first so that a reader's open does not wait, and
// closed when the test ends.
func FakeLog(t testing.TB) (string, *os.File) {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "kmsg")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return fifo, w
}
