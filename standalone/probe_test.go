package standalone

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
)

// execRuntime is the FakeRuntime with an ExecSync of the test's.
type execRuntime struct {
	*legacytest.FakeRuntime
	exec func(ctx context.Context, timeout time.Duration) (*legacy.ExecSyncResult, error)
}

func (r *execRuntime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*legacy.ExecSyncResult, error) {
	return r.exec(ctx, timeout)
}

// TestProbeOutputCapped: an exec probe whose command prints as much as ExecSync returns (16 MiB
// on each stream) gives events of at most the kubelet's 10 KiB of output, the start of it.
func TestProbeOutputCapped(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	big := func(c byte) []byte { return bytes.Repeat([]byte{c}, legacy.MaxExecSyncOutput) }
	rt := &execRuntime{FakeRuntime: legacytest.NewFakeRuntime(), exec: func(context.Context, time.Duration) (*legacy.ExecSyncResult, error) {
		return &legacy.ExecSyncResult{Stdout: big('o'), Stderr: big('e'), ExitCode: 1}, nil
	}}
	m, err := New(Options{Dir: filepath.Join(dir, "manifests"), StateDir: state, VolumeRoot: filepath.Join(dir, "vol"),
		PodLogRoot: filepath.Join(dir, "logs"), Runtime: rt, ScanInterval: 20 * time.Millisecond, ResyncInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "the manifests dir", func() bool { return EnsureDir(filepath.Join(dir, "manifests")) == nil })
	if err := WriteFileAtomic(filepath.Join(dir, "manifests", "loud.yaml"), []byte(`
metadata: {name: loud}
spec:
  containers:
  - name: a
    image: busybox:1
    readinessProbe:
      exec: {command: [cat, /big]}
      periodSeconds: 1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var msg string
	waitFor(t, "a probe failure event", func() bool {
		rec, err := ReadRecord(state, "default", "loud")
		if err != nil {
			return false
		}
		for _, e := range rec.Events {
			if e.Reason == legacy.ContainerUnhealthy {
				msg = e.Message
				return true
			}
		}
		return false
	})
	out, ok := strings.CutPrefix(msg, "Readiness probe failed: ")
	if !ok {
		t.Fatalf("event %.100q", msg)
	}
	if len(out) != maxProbeOutput || strings.Trim(out, "o") != "" {
		t.Fatalf("event with %d bytes of output (%.20q...), want the first %d", len(out), out, maxProbeOutput)
	}
}

// TestExecProbeBounded: an exec probe ends within its timeout and a grace even when the runtime
// does not end the exec (a hung containerd or shim): a failure that says so, not a hang.
func TestExecProbeBounded(t *testing.T) {
	defer func(g time.Duration) { execProbeGrace = g }(execProbeGrace)
	execProbeGrace = 300 * time.Millisecond
	rt := &execRuntime{FakeRuntime: legacytest.NewFakeRuntime(), exec: func(ctx context.Context, _ time.Duration) (*legacy.ExecSyncResult, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	p := Probe{Kind: ProbeReadiness, Exec: []string{"sh", "-c", "sleep 1000 & echo hi"}, Timeout: 100 * time.Millisecond}
	start := time.Now()
	ok, out := runProbe(context.Background(), rt, p, probeTarget{containerID: "c"})
	if d := time.Since(start); d > p.Timeout+execProbeGrace+2*time.Second {
		t.Fatalf("took %v", d)
	}
	if ok || !strings.Contains(out, "timed out") {
		t.Fatalf("%v %q", ok, out)
	}
}

// TestExecProbeTimeoutMessage: a probe killed at its timeout fails as the kubelet's does, with the
// output it printed.
func TestExecProbeTimeoutMessage(t *testing.T) {
	rt := &execRuntime{FakeRuntime: legacytest.NewFakeRuntime(), exec: func(ctx context.Context, timeout time.Duration) (*legacy.ExecSyncResult, error) {
		return &legacy.ExecSyncResult{Stdout: []byte("partial\n"), ExitCode: 137}, context.DeadlineExceeded
	}}
	p := Probe{Kind: ProbeLiveness, Exec: []string{"slow"}, Timeout: time.Second}
	ok, out := runProbe(context.Background(), rt, p, probeTarget{containerID: "c"})
	if ok || out != `command "slow" timed out after 1s: partial` {
		t.Fatalf("%v %q", ok, out)
	}
}
