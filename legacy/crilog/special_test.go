package crilog

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"
	"golang.org/x/sys/unix"
)

// unblockFIFOOpen lets an open for writing blocked on the FIFO at path (no reader) return.
func unblockFIFOOpen(t *testing.T, path string) {
	t.Cleanup(func() {
		if fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0); err == nil {
			time.AfterFunc(time.Second, func() { unix.Close(fd) })
		}
	})
}

// A FIFO at the log path, with or without a reader, is refused at once with a clear error: it is
// never opened for writing (which blocks without a reader) nor written (which blocks once the
// reader stops reading), confined to a log dir or not.
func TestOpenRefusesAFIFO(t *testing.T) {
	for _, reader := range []bool{false, true} {
		for _, confined := range []bool{false, true} {
			dir := t.TempDir()
			path := filepath.Join(dir, "0.log")
			if reader {
				testutil.PlantFIFO(t, path)
			} else {
				if err := unix.Mkfifo(path, 0o666); err != nil {
					t.Fatal(err)
				}
				unblockFIFOOpen(t, path)
			}
			var opts []Option
			if confined {
				opts = append(opts, InDir(dir))
			}
			var err error
			testutil.Within(t, 5*time.Second, "Open of a FIFO", func() {
				var w *Writer
				if w, err = Open(path, opts...); w != nil {
					w.Close()
				}
			})
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), path) {
				t.Errorf("reader %v, confined %v: err %v, want ErrNotRegular naming the path", reader, confined, err)
			}
		}
	}
}

// A symlink or a device node at the log path is refused too, even one that stays inside the log
// dir: the kubelet never makes one, and a symlink swapped in between the check and the open could
// lead anywhere.
func TestOpenRefusesSymlinksAndDevices(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "real.log"), []byte("keep"), 0o644)
	os.Symlink("real.log", filepath.Join(dir, "link.log"))
	dev := filepath.Join(dir, "dev.log")
	if err := unix.Mknod(dev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Logf("mknod (not root?): %v; the device case is not tested", err)
		dev = ""
	}
	for _, p := range []string{filepath.Join(dir, "link.log"), dev} {
		if p == "" {
			continue
		}
		for _, opts := range [][]Option{nil, {InDir(dir)}} {
			w, err := Open(p, opts...)
			if w != nil {
				w.Close()
			}
			if !errors.Is(err, ErrNotRegular) {
				t.Errorf("%s (confined %v): err %v, want ErrNotRegular", filepath.Base(p), opts != nil, err)
			}
		}
		if err := CheckInDir(dir, filepath.Base(p)); !errors.Is(err, ErrNotRegular) {
			t.Errorf("CheckInDir %s: %v, want ErrNotRegular", filepath.Base(p), err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "real.log")); string(b) != "keep" {
		t.Fatalf("the symlink's target was written: %q", b)
	}
	// A FIFO already there at create is refused as well.
	unix.Mkfifo(filepath.Join(dir, "fifo.log"), 0o666)
	if err := CheckInDir(dir, "fifo.log"); !errors.Is(err, ErrNotRegular) {
		t.Errorf("CheckInDir of a FIFO: %v, want ErrNotRegular", err)
	}
	if err := CheckInDir(dir, "real.log"); err != nil {
		t.Errorf("CheckInDir of a regular file: %v", err)
	}
}

// A FIFO planted at the log path between the kubelet's rotation and ReopenContainerLog makes the
// reopen fail at once; the writer keeps writing to the file it had (the rotated one).
func TestReopenRefusesAFIFO(t *testing.T) {
	for _, reader := range []bool{false, true} {
		dir := t.TempDir()
		path := filepath.Join(dir, "0.log")
		w, err := Open(path, InDir(dir), WithClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		w.WriteEntry(Stdout, TagFull, []byte("before"))
		rotated := path + ".1"
		os.Rename(path, rotated)
		if reader {
			testutil.PlantFIFO(t, path)
		} else {
			unix.Mkfifo(path, 0o666)
			unblockFIFOOpen(t, path)
		}
		testutil.Within(t, 5*time.Second, "Reopen onto a FIFO", func() { err = w.Reopen() })
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("reader %v: Reopen: %v, want ErrNotRegular", reader, err)
		}
		lw := w.NewLineWriter(Stdout)
		testutil.Within(t, 5*time.Second, "a write after the failed Reopen", func() {
			lw.Write([]byte(strings.Repeat("x", 1000) + "\nafter\n"))
		})
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		got := readLog(t, rotated)
		if len(got) != 3 || got[0] != ts+" stdout F before" || got[2] != ts+" stdout F after" {
			t.Errorf("reader %v: rotated log %q, want before, x…, after", reader, got)
		}
	}
}

// A log file whose writes block (a hung volume; here the write end of a FIFO nobody reads, put
// in the writer's place) does not block its LineWriters, whose output is the daemon's one pump
// goroutine's: they return at once, the backlog is bounded (what exceeds it is dropped and
// counted), Backlog tells the pump to stop reading the container, and Close returns within its
// bound. Another writer is not held up meanwhile.
func TestStuckLogFileDoesNotBlockWriters(t *testing.T) {
	dir := t.TempDir()
	stuck, err := Open(filepath.Join(dir, "stuck.log"), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "hung")
	testutil.PlantFIFO(t, fifo)
	hung, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	stuck.mu.Lock()
	regular := stuck.f
	stuck.f = hung
	stuck.mu.Unlock()
	regular.Close()

	other, err := Open(filepath.Join(dir, "other.log"), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	lw := stuck.NewLineWriter(Stdout)
	chunk := []byte(strings.Repeat(strings.Repeat("y", 99)+"\n", 640)) // 64000 bytes
	testutil.Within(t, 5*time.Second, "writes into a log whose file blocks", func() {
		for range 64 { // 4 MB: more than the pipe and the backlog take
			lw.Write(chunk)
		}
	})
	backlog := stuck.Backlog()
	if backlog == nil {
		t.Error("Backlog is nil with the file stuck and megabytes written")
	}
	if stuck.Dropped() == 0 {
		t.Error("nothing dropped beyond the backlog's bound")
	}
	olw := other.NewLineWriter(Stderr)
	testutil.Within(t, 5*time.Second, "another log", func() {
		olw.Write([]byte("still flowing\n"))
		if err := other.Close(); err != nil {
			t.Error(err)
		}
	})
	equal(t, readLog(t, filepath.Join(dir, "other.log")), []string{ts + " stderr F still flowing"})
	testutil.Within(t, closeFlushTimeout+5*time.Second, "Close of the stuck log", func() { stuck.Close() })
	if backlog != nil {
		select {
		case <-backlog:
		default:
			t.Error("the backlog channel is not closed by Close")
		}
	}
}

// Rotations while output is written lose no entry and fail no write: a file replaced while the
// writer's goroutine writes to it is closed once that write is done.
func TestReopenWhileWriting(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	w, err := Open(path, InDir(dir), WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	const n = 20000
	done := make(chan error, 1)
	go func() {
		lw := w.NewLineWriter(Stdout)
		for i := range n {
			lw.Write([]byte("line " + strings.Repeat("z", i%200) + "\n"))
			if wait := w.Backlog(); wait != nil {
				<-wait
			}
		}
		done <- lw.Close()
	}()
	rotations := 0
	for writing := true; writing; rotations++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("write: %v", err)
			}
			writing = false
		default:
		}
		if err := os.Rename(path, fmt.Sprintf("%s.%d", path, rotations)); err != nil {
			t.Fatal(err)
		}
		if err := w.Reopen(); err != nil {
			t.Fatalf("Reopen: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	total := 0
	files, _ := filepath.Glob(path + "*")
	for _, f := range files {
		total += len(readLog(t, f))
	}
	if total != n || w.Dropped() != 0 {
		t.Fatalf("%d entries in %d files after %d rotations (%d dropped), want %d", total, len(files), rotations, w.Dropped(), n)
	}
}
