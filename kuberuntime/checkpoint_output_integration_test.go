//go:build integration

package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/checkpointarchive"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
)

// TestCheckpointPodOutputSwap: CheckpointPod's output directory is in a tree others may write to.
// While the pod is checkpointed, a local user swaps the container's directory in it for a symlink
// to a directory of their choosing, as soon as it appears: nothing may be written there (issue
// 19, finding 11). The checkpoint itself may then fail; it must not write through the link.
func TestCheckpointPodOutputSwap(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	if info := criu.ProbeCRIU(ctx); info.Err != nil {
		t.Fatalf("CRIU does not work on this host (run hack/setup.sh): %v", info.Err)
	}
	sb, _ := e.podWithLogs("ckpt-swap")
	id := e.createStart(sb.ID, ctrCfg("counter", "sh", "-c", counterScript))

	out := filepath.Join(t.TempDir(), "out")
	if err := os.Mkdir(out, 0o777); err != nil { // as a directory others can write to
		t.Fatal(err)
	}
	elsewhere := t.TempDir()
	var swapped atomic.Bool
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		dir := filepath.Join(out, "counter")
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
				if os.Rename(dir, dir+".moved") == nil && os.Symlink(elsewhere, dir) == nil {
					swapped.Store(true)
					return
				}
			}
			time.Sleep(200 * time.Microsecond)
		}
	}()
	err := e.rt.CheckpointPod(ctx, sb.ID, out, []string{id}, nil)
	close(stop)
	<-done
	t.Logf("CheckpointPod with the output swapped (swapped: %v): %v", swapped.Load(), err)
	entries, _ := os.ReadDir(elsewhere)
	if len(entries) != 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("the checkpoint wrote through the swapped-in symlink: %v", names)
	}
	if err == nil {
		if _, serr := os.Stat(filepath.Join(out, checkpointarchive.PodDump)); serr != nil {
			t.Fatalf("checkpoint succeeded without %s: %v", checkpointarchive.PodDump, serr)
		}
	}
}
