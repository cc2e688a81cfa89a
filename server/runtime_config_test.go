package server

import (
	"context"
	"testing"

	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeConfig reports the configured cgroup driver, which the kubelet adopts; no driver set is
// cgroupfs.
func TestRuntimeConfigReportsCgroupDriver(t *testing.T) {
	for d, want := range map[cgroupdriver.Driver]runtime.CgroupDriver{
		cgroupdriver.Systemd:  runtime.CgroupDriver_SYSTEMD,
		cgroupdriver.Cgroupfs: runtime.CgroupDriver_CGROUPFS,
		"":                    runtime.CgroupDriver_CGROUPFS,
	} {
		c := dial(t, Options{Backend: legacytest.NewFakeRuntime(), CgroupDriver: d})
		rc, err := c.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := rc.GetLinux().GetCgroupDriver(); got != want {
			t.Errorf("driver %q: RuntimeConfig says %v, want %v", d, got, want)
		}
	}
}
