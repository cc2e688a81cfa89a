//go:build integration

package imageservice

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/test/critest/testregistry"
)

// viaTransferForTest makes newEnv's services pull through containerd's Transfer service.
var viaTransferForTest bool

// TestIntegrationBothPullPaths runs the pull tests on each path of image_pull_via_transfer:
// the records, statuses, codes and leftovers must not differ.
func TestIntegrationBothPullPaths(t *testing.T) {
	tests := []struct {
		name string
		fn   func(*testing.T)
	}{
		{"PullStatusListRemove", TestIntegrationPullStatusListRemove},
		{"SameImageTwoNames", TestIntegrationSameImageTwoNames},
		{"RetagMovesTag", TestIntegrationRetagMovesTag},
		{"Pinned", TestIntegrationPinned},
		{"BasicAuth", TestIntegrationBasicAuth},
		{"CredentialsNotSentOnRedirect", TestIntegrationCredentialsNotSentOnRedirect},
		{"ImageUsers", TestIntegrationImageUsers},
		{"PullsAndRemovesRacing", TestIntegrationPullsAndRemovesRacing},
		{"StalledBlobIsCancelled", TestIntegrationStalledBlobIsCancelled},
		{"CancelledRequestCancelsPull", TestIntegrationCancelledRequestCancelsPull},
		{"BadRegistries", TestIntegrationBadRegistries},
		{"ConcurrentPullsMerged", TestIntegrationConcurrentPullsMerged},
		{"MaxConcurrentPulls", TestIntegrationMaxConcurrentPulls},
		{"PullRemoveLoop", TestIntegrationPullRemoveLoop},
	}
	// Not SlowPullWithProgressIsNotCancelled on the transfer path: containerd reports a blob's
	// bytes as its content writer takes them, in 1 MiB pieces (content.Copy fills its buffer
	// before writing), so a blob smaller than that shows no progress before it is complete; the
	// test trickles a 32 KiB blob over 3 s with a 1 s timeout. TestIntegrationTransferSlowPull
	// holds the transfer path to its own granularity.
	for _, via := range []bool{false, true} {
		name := "client"
		if via {
			name = "transfer"
		}
		t.Run(name, func(t *testing.T) {
			viaTransferForTest = via
			defer func() { viaTransferForTest = false }()
			for _, tc := range tests {
				t.Run(tc.name, tc.fn)
			}
		})
	}
}

// TestIntegrationTransferSlowPull: on the transfer path, a pull slower than the timeout is not
// cancelled while each blob moves by 1 MiB (containerd's progress step) or completes within it,
// and its progress comes from containerd's events. (throttle spreads each blob over 3 s.)
func TestIntegrationTransferSlowPull(t *testing.T) {
	e := newEnv(t, envOpts{
		reg:    testregistry.Options{Middleware: throttle},
		config: Config{PullProgressTimeout: 4 * time.Second, PullViaTransfer: true},
	})
	push(t, e.reg.Addr(), "slow:1", randomImage(t, 3<<20, 1), nil)
	var last atomic.Value
	var updates atomic.Int64
	start := time.Now()
	_, err := e.svc.Pull(context.Background(), "test.local/slow:1", PullOptions{Progress: func(p Progress) { last.Store(p); updates.Add(1) }})
	if err != nil {
		t.Fatalf("slow pull: %v", err)
	}
	if d := time.Since(start); d < 4*time.Second {
		t.Errorf("pull took %s: not slower than the timeout, tests nothing", d)
	}
	p, _ := last.Load().(Progress)
	if !p.Finished || p.Done != p.Total || p.Total < 3<<20 || len(p.Blobs) < 3 || p.BytesRead < 3<<20 {
		t.Errorf("last progress %+v", p)
	}
	t.Logf("slow pull in %s, %d progress updates", time.Since(start).Round(time.Millisecond), updates.Load())
}

// TestIntegrationTransferServiceMissing: with containerd's Transfer service off, pulls take the
// client path instead of failing.
func TestIntegrationTransferServiceMissing(t *testing.T) {
	e := newEnv(t, envOpts{disabledPlugins: []string{"io.containerd.grpc.v1.transfer"}, config: Config{PullViaTransfer: true}})
	img := randomImage(t, 4096, 1)
	push(t, e.reg.Addr(), "app:1", img, nil)
	wantID, _ := ids(t, img)
	for i := 0; i < 2; i++ {
		if id := e.mustPull("test.local/app:1"); id != wantID {
			t.Fatalf("pull %d: %s, want %s", i, id, wantID)
		}
		e.remove("test.local/app:1")
	}
	e.expectNothingLeft("pulls")
}
