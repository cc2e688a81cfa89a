package iopump

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/cri-shim/cri-shim/legacy/crilog"
	"golang.org/x/sys/unix"
)

// processCPU is the CPU time the process used so far (user + system, all threads): on a loaded
// machine a steadier measure of what the pump and the log writers cost than wall time.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPumpToLog is a container's output from its stdout FIFO into its CRI log as the daemon
// moves it: the pump reads the FIFO and a LineWriter writes the entries to the log file. An op is
// 64 KiB of 80-byte lines written into the FIFO; the time includes writing the last of it to the
// log. cpu-ns/op is the process CPU time (the writer of the FIFO included).
func BenchmarkPumpToLog(b *testing.B) {
	dir := b.TempDir()
	w, err := crilog.Open(filepath.Join(dir, "0.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	fifo := filepath.Join(dir, "io", "stdout")
	os.MkdirAll(filepath.Dir(fifo), 0o700)
	pio, err := New(b.Context(), cio.NewFIFOSet(cio.Config{Stdout: fifo}, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer pio.Close()
	lw := w.NewLineWriter(crilog.Stdout)
	ended := make(chan struct{})
	if err := pio.Read(fifo, pumpToLog(lw, w), func() { close(ended) }); err != nil {
		b.Fatal(err)
	}
	f, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	chunk := []byte(strings.Repeat(strings.Repeat("x", 79)+"\n", (64<<10)/80))
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	cpu := processCPU()
	for b.Loop() {
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	f.Close()
	<-ended
	flushLog(w)
	b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
}

// pumpToLog is the pump's output function of a stream logged by lw into w.
func pumpToLog(lw *crilog.LineWriter, w *crilog.Writer) func([]byte) <-chan struct{} {
	return func(p []byte) <-chan struct{} {
		lw.Write(p)
		return w.Backlog()
	}
}

// flushLog waits until w wrote what it accepted.
func flushLog(w *crilog.Writer) { w.Flush() }
