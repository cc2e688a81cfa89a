package kuberuntime

import (
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
)

func TestSandboxSnapshotIsACopy(t *testing.T) {
	sb := &podSandbox{state: legacy.SandboxStateReady, pid: 9, netUp: true}
	snap := sb.snapshot()
	if snap.state != legacy.SandboxStateReady || snap.pid != 9 || !snap.netUp || !sb.ready() {
		t.Fatalf("snapshot: %+v", snap)
	}
	snap.state, snap.pid, snap.netUp = legacy.SandboxStateNotReady, 0, false
	if again := sb.snapshot(); again.state != legacy.SandboxStateReady || again.pid != 9 || !again.netUp {
		t.Fatalf("a change of the snapshot reached the sandbox: %+v", again)
	}
}

func TestSandboxStopAndNetworkDown(t *testing.T) {
	sb := &podSandbox{state: legacy.SandboxStateReady, pid: 9, netUp: true}
	at := time.Unix(50, 0)
	if !sb.setStopped(at) {
		t.Fatal("first stop: not a change")
	}
	if sb.setStopped(time.Now()) {
		t.Fatal("second stop: a change (the stopped event would be sent twice)")
	}
	snap := sb.snapshot()
	if snap.state != legacy.SandboxStateNotReady || snap.pid != 0 || !snap.exitedAt.Equal(at) || sb.ready() {
		t.Fatalf("after the stop: %+v", snap)
	}
	if !snap.netUp {
		t.Fatal("the stop tore the network down")
	}
	sb.markNetworkDown()
	if sb.snapshot().netUp {
		t.Fatal("network up after markNetworkDown")
	}
}
