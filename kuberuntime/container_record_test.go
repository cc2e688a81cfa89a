package kuberuntime

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func testRecordContainer(t *testing.T) *podContainer {
	return &podContainer{meta: containerMetadata{ID: "c1"}, rootDir: t.TempDir(),
		state: legacy.ContainerStateCreated, exited: make(chan struct{})}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestContainerSnapshotIsACopy(t *testing.T) {
	c := testRecordContainer(t)
	c.markRunning(42)
	snap := c.snapshot()
	if snap.state != legacy.ContainerStateRunning || snap.pid != 42 || snap.rec.StartedAt.IsZero() {
		t.Fatalf("snapshot after markRunning: %+v", snap)
	}
	snap.state, snap.pid, snap.rec.Reason = legacy.ContainerStateExited, 1, "changed"
	if again := c.snapshot(); again.state != legacy.ContainerStateRunning || again.pid != 42 || again.rec.Reason != "" {
		t.Fatalf("a change of the snapshot reached the container: %+v", again)
	}
}

func TestContainerMarkExitedOnce(t *testing.T) {
	c := testRecordContainer(t)
	c.markRunning(7)
	if changed, err := c.markOOMKilled(); changed || err != nil {
		t.Fatalf("markOOMKilled of a running container: changed %v, %v", changed, err)
	}
	calls := 0
	at := time.Unix(100, 0)
	reason, ok := c.markExited(137, at, false, "bye", func(err error) {
		calls++
		if err != nil {
			t.Errorf("status file: %v", err)
		}
		if isClosed(c.exited) {
			t.Error("exited closed before the recorded callback")
		}
	})
	if !ok || reason != legacy.ReasonOOMKilled || calls != 1 || !isClosed(c.exited) {
		t.Fatalf("first exit: reason %q ok %v, %d calls, exited closed %v", reason, ok, calls, isClosed(c.exited))
	}
	snap := c.snapshot()
	if snap.state != legacy.ContainerStateExited || snap.pid != 0 || snap.rec.ExitCode != 137 || !snap.rec.FinishedAt.Equal(at) || snap.rec.TerminationMessage != "bye" || snap.rec.Message != "" {
		t.Fatalf("after the exit: %+v", snap)
	}
	rec, err := loadRecord(c.rootDir)
	if err != nil || rec.ExitCode != 137 || rec.Reason != legacy.ReasonOOMKilled {
		t.Fatalf("status file: %+v, %v", rec, err)
	}
	// A second exit (the monitor's and a recovery's) changes nothing and closes nothing again.
	if _, ok := c.markExited(0, time.Now(), false, "", func(error) { calls++ }); ok || calls != 1 {
		t.Fatalf("second exit recorded: ok %v, %d calls", ok, calls)
	}
	if snap := c.snapshot(); snap.rec.ExitCode != 137 {
		t.Fatalf("second exit overwrote the record: %+v", snap.rec)
	}
}

func TestContainerMarkExitedReasons(t *testing.T) {
	for _, tc := range []struct {
		code uint32
		oom  bool
		want string
	}{{0, false, legacy.ReasonCompleted}, {1, false, legacy.ReasonError}, {137, true, legacy.ReasonOOMKilled}} {
		c := testRecordContainer(t)
		if reason, _ := c.markExited(tc.code, time.Now(), tc.oom, "", nil); reason != tc.want {
			t.Errorf("code %d oom %v: reason %q, want %q", tc.code, tc.oom, reason, tc.want)
		}
	}
}

func TestContainerMarkStartFailed(t *testing.T) {
	c := testRecordContainer(t)
	c.setIO(&containerIO{})
	c.markStartFailed(errors.New("boom"))
	snap := c.snapshot()
	if snap.state != legacy.ContainerStateExited || snap.rec.ExitCode != 128 || snap.rec.Reason != legacy.ReasonStartError || snap.rec.Message != "boom" || snap.io != nil {
		t.Fatalf("after a failed start: %+v", snap)
	}
	if isClosed(c.exited) {
		t.Fatal("markStartFailed closed exited (the caller does, after its event)")
	}
	if rec, err := loadRecord(c.rootDir); err != nil || rec.Reason != legacy.ReasonStartError {
		t.Fatalf("status file: %+v, %v", rec, err)
	}
}

func TestContainerStdioAndExitHandling(t *testing.T) {
	c := testRecordContainer(t)
	ctrIO := &containerIO{}
	c.setIO(ctrIO)
	if got := c.takeIO(); got != ctrIO {
		t.Fatalf("takeIO: %p, want %p", got, ctrIO)
	}
	if c.takeIO() != nil || c.snapshot().io != nil {
		t.Fatal("stdio still attached after takeIO")
	}
	c.setIO(&containerIO{})
	c.closeIO()
	if c.snapshot().io != nil {
		t.Fatal("stdio still attached after closeIO")
	}
	if c.exitHandled() || c.taskGoneCh() != nil {
		t.Fatal("exit handled before beginExitHandling")
	}
	first, second := make(chan struct{}), make(chan struct{})
	c.beginExitHandling(first)
	c.beginExitHandling(second)
	if !c.exitHandled() || c.taskGoneCh() != first {
		t.Fatal("beginExitHandling: the first channel is the one kept")
	}
}

func TestContainerRemovingStopsRecordWrites(t *testing.T) {
	c := testRecordContainer(t)
	c.markRunning(3)
	if err := c.saveRecordUnlessRemoving(); err != nil {
		t.Fatal(err)
	}
	if rec, err := loadRecord(c.rootDir); err != nil || rec.StartedAt.IsZero() {
		t.Fatalf("status file: %+v, %v", rec, err)
	}
	c.markRemoving()
	if !c.snapshot().removing {
		t.Fatal("not removing after markRemoving")
	}
	// The removal deletes the dir: a late write of the started record must not bring it back.
	if err := os.Remove(filepath.Join(c.rootDir, statusFile)); err != nil {
		t.Fatal(err)
	}
	if err := c.saveRecordUnlessRemoving(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(c.rootDir, statusFile)); !os.IsNotExist(err) {
		t.Fatalf("status file written for a container being removed: %v", err)
	}
}

func TestContainerSetResources(t *testing.T) {
	c := testRecordContainer(t)
	if err := c.setResources(&runtime.LinuxContainerResources{CpuShares: 512}); err != nil {
		t.Fatal(err)
	}
	if got := c.snapshot().resources.GetCpuShares(); got != 512 {
		t.Fatalf("resources: cpu shares %d", got)
	}
	rec, err := loadRecord(c.rootDir)
	if err != nil || len(rec.Resources) == 0 {
		t.Fatalf("status file without the resources: %+v, %v", rec, err)
	}
}

// TestContainerOOMEventAfterTheExit: containerd's OOM event that comes after the exit was recorded
// (under systemd the scope, and its memory.events, are gone by then) still makes the reason
// OOMKilled, in the status file too; a start error stays what it is.
func TestContainerOOMEventAfterTheExit(t *testing.T) {
	c := testRecordContainer(t)
	c.markRunning(7)
	if reason, _ := c.markExited(137, time.Now(), false, "", nil); reason != legacy.ReasonError {
		t.Fatalf("reason %q before the OOM event, want Error", reason)
	}
	if changed, err := c.markOOMKilled(); !changed || err != nil {
		t.Fatalf("markOOMKilled after the exit: changed %v, %v", changed, err)
	}
	if snap := c.snapshot(); snap.rec.Reason != legacy.ReasonOOMKilled || snap.rec.ExitCode != 137 {
		t.Fatalf("after the late OOM event: %+v", snap.rec)
	}
	if rec, err := loadRecord(c.rootDir); err != nil || rec.Reason != legacy.ReasonOOMKilled {
		t.Fatalf("status file: %+v, %v", rec, err)
	}
	if changed, _ := c.markOOMKilled(); changed {
		t.Fatal("a second OOM event reported a change")
	}

	failed := testRecordContainer(t)
	failed.markStartFailed(errors.New("boom"))
	if changed, _ := failed.markOOMKilled(); changed || failed.snapshot().rec.Reason != legacy.ReasonStartError {
		t.Fatalf("an OOM event changed a start error: %+v", failed.snapshot().rec)
	}
}
