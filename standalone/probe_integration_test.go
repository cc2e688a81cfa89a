//go:build integration

package standalone

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
)

// TestExecProbesBackgroundChild: exec probes whose command leaves a child holding its output
// answer, on a real containerd: a readiness probe that fails at first and then succeeds makes the
// container ready (each probe ends a drain timeout after its command exited, not never); a
// liveness probe whose command runs past its timeout fails as timed out, with what it printed, and
// restarts the container.
func TestExecProbesBackgroundChild(t *testing.T) {
	if os.Getenv("CRI_SHIM_INTEGRATION") == "" {
		t.Fatal("CRI_SHIM_INTEGRATION is not set: run through make integration")
	}
	e := newITEnv(t, legacy.NewBackoff(time.Second, 2*time.Second, nil),
		legacy.ContainerGCPolicy{MinAge: 0, MaxPerPodContainer: 2, MaxContainers: -1})
	e.apply("bgprobe", `
metadata: {name: bgprobe}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox:1.37.0
    command: [sh, -c, 'sleep 4; touch /tmp/ready; exec sleep 3600']
    readinessProbe:
      exec: {command: [sh, -c, 'sleep 1000 & test -f /tmp/ready']}
      periodSeconds: 1
      timeoutSeconds: 10
  - name: slow
    image: busybox:1.37.0
    command: [sleep, "3600"]
    livenessProbe:
      exec: {command: [sh, -c, 'sleep 1000 & echo slow; exec sleep 100']}
      periodSeconds: 1
      timeoutSeconds: 1
      failureThreshold: 2
`)
	start := time.Now()
	e.wait("app ready", 90*time.Second, func() bool {
		rec, err := ReadRecord(e.state, "default", "bgprobe")
		return err == nil && rec.Ready["app"]
	})
	t.Logf("app ready after %v", time.Since(start))
	const timedOut = `Liveness probe failed: command "sh -c sleep 1000 & echo slow; exec sleep 100" timed out after 1s: slow`
	e.wait("slow restarted after its liveness probe timed out", 90*time.Second, func() bool {
		cs := e.containers("bgprobe", "slow")
		return len(cs) > 1 && strings.Contains(e.events("bgprobe"), timedOut)
	})
	t.Logf("events:\n%s", e.events("bgprobe"))
}
