package crilog

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// processCPU is the CPU time the process used so far (user + system, all threads): what a
// benchmark costs whichever goroutines do the work, and unlike wall time, little affected by
// other processes on a loaded machine.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the process CPU time per op since start (as cpu-ns/op).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
}
