//go:build integration

package criu

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestCRIUProbe probes the host's CRIU for real (criu check, then a dump and restore of a process
// of its own), then again with CRIU's hardware breakpoints kept (CRIU_FAULT set and empty: the
// criu of hack/setup.sh then leaves them on). Where those do not fire (some VMs), CRIU 4.1 hangs;
// the probe must say so, and that CRIU works without them.
func TestCRIUProbe(t *testing.T) {
	ctx := context.Background()
	info := ProbeCRIU(ctx)
	switch {
	case info.Missing:
		t.Fatalf("%v", info.Err)
	case info.Err != nil:
		t.Skipf("CRIU cannot checkpoint on this host (the probe's reason): %v", info.Err)
	}
	t.Logf("CRIU %s at %s: dumped and restored a test process; the probe took %v", info.Version, info.Path, info.Took)
	if info.Path != DefaultCRIUBinary {
		t.Skipf("the breakpoint part needs the criu of hack/setup.sh (%s), not %s", DefaultCRIUBinary, info.Path)
	}

	saved := criuProbeStepTimeout
	t.Cleanup(func() { criuProbeStepTimeout = saved })
	criuProbeStepTimeout = 10 * time.Second
	t.Setenv("CRIU_FAULT", "")
	withBreakpoints := ProbeCRIU(ctx)
	t.Logf("with hardware breakpoints: %v (probe took %v)", withBreakpoints.Err, withBreakpoints.Took)
	if withBreakpoints.Err != nil && !strings.Contains(withBreakpoints.Err.Error(), "hardware breakpoints of this host do not fire") {
		t.Fatalf("CRIU works without hardware breakpoints and fails with them, but the probe does not say why: %v", withBreakpoints.Err)
	}
}
