//go:build integration

package legacy

import (
	"os"
	"testing"

	"github.com/cri-shim/cri-shim/sandbox"
)

func TestCleanStaleNetNS(t *testing.T) {
	e := newEnv(t, "")
	sb := e.run(podCfg("netns-gc"))
	stale, err := sandbox.NewNetNS(e.rt.netnsDir(), "0123456789abcdef-stale")
	if err != nil {
		t.Fatal(err)
	}
	if !sandbox.NetNSPinned(stale) {
		t.Fatal("stale netns not pinned")
	}
	removed, err := e.rt.CleanStaleNetNS(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != stale {
		t.Fatalf("removed %v, want only %s", removed, stale)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale netns still there: %v", err)
	}
	if !sandbox.NetNSPinned(sb.NetNSPath) {
		t.Fatalf("the live pod's netns %s was removed", sb.NetNSPath)
	}
}
