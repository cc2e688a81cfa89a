//go:build integration

package kuberuntime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/crilog"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fileGrows polls until the file at path is larger than size, for up to d.
func fileGrows(t *testing.T, path string, size int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if fi, err := os.Stat(path); err == nil && fi.Size() > size {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not grow past %d bytes in %v", path, size, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// A container with its pod's log directory mounted plants a FIFO at another container's log path
// and holds it open without reading. The other container is refused (at create, the FIFO being
// there already) instead of stalling every container's output; a container logging meanwhile
// keeps logging. Then the kubelet's rotation with a FIFO planted before ReopenContainerLog: the
// call fails (FailedPrecondition) at once, output goes on into the rotated file, and once the
// kubelet renamed the file back the reopen succeeds.
func TestLogFIFOPlantedByAContainer(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	sb, logDir := e.podWithLogs("fifo")

	talker := e.createStart(sb.ID, ctrCfg("talker", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done"))
	talkerLog := filepath.Join(logDir, "talker.log")
	fileGrows(t, talkerLog, 0, 20*time.Second)

	planter := ctrCfg("planter", "sh", "-c", "mkfifo /logs/victim.log && exec 3<>/logs/victim.log && echo planted && exec sleep 3600")
	planter.Mounts = []*runtime.Mount{{ContainerPath: "/logs", HostPath: logDir}}
	e.createStart(sb.ID, planter)
	waitLog(t, filepath.Join(logDir, "planter.log"), " stdout F planted\n", 20*time.Second)

	victimCfg := ctrCfg("victim", "sh", "-c", "yes victim | head -c 2000000; sleep 3600")
	var err error
	testutil.Within(t, 10*time.Second, "create and start of the victim", func() {
		var id string
		if id, err = e.rt.CreateContainer(ctx, sb.ID, victimCfg); err == nil {
			err = e.rt.StartContainer(ctx, id)
		}
	})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "victim.log is a FIFO") {
		t.Errorf("create/start with a FIFO at the log path: %v, want InvalidArgument, is a FIFO", err)
	}
	size := fileSize(talkerLog)
	fileGrows(t, talkerLog, size, 10*time.Second)

	// Rotation: the kubelet renames the log, a FIFO appears, ReopenContainerLog.
	rotated := talkerLog + ".20240101-000000"
	if err := os.Rename(talkerLog, rotated); err != nil {
		t.Fatal(err)
	}
	testutil.PlantFIFO(t, talkerLog)
	testutil.Within(t, 10*time.Second, "ReopenContainerLog onto a FIFO", func() { err = e.rt.ReopenContainerLog(ctx, talker) })
	if !errors.Is(err, crilog.ErrNotRegular) || !errdefs.IsFailedPrecondition(err) {
		t.Errorf("ReopenContainerLog onto a FIFO: %v, want ErrNotRegular, FailedPrecondition", err)
	}
	size = fileSize(rotated)
	fileGrows(t, rotated, size, 10*time.Second)
	// The kubelet renames the rotated file back (over the FIFO) and tries again next round.
	if err := os.Rename(rotated, talkerLog); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(talkerLog, rotated); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.ReopenContainerLog(ctx, talker); err != nil {
		t.Fatalf("ReopenContainerLog: %v", err)
	}
	waitLog(t, talkerLog, " stdout F tick ", 10*time.Second)
	readCRILog(t, rotated) // well-formed entries only
	readCRILog(t, talkerLog)
}

// GetContainerLogs of a real container: a follow started while it runs gets both streams (tail,
// timestamps) and ends when the container exits.
func TestGetContainerLogsFollowsUntilExit(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	sb, _ := e.podWithLogs("getlogs")
	id := e.createStart(sb.ID, ctrCfg("talker", "sh", "-c", "echo one; echo two >&2; sleep 1; echo three"))
	var out, errOut lockedBuf
	var err error
	tail := int64(10)
	testutil.Within(t, 30*time.Second, "a follow of the container's logs", func() {
		err = e.rt.GetContainerLogs(ctx, id, &legacy.LogOptions{Follow: true, TailLines: &tail, Timestamps: true}, &out, &errOut)
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 2 || !strings.HasSuffix(lines[0], " one") || !strings.HasSuffix(lines[1], " three") {
		t.Fatalf("stdout %q", out.String())
	}
	if _, perr := time.Parse(time.RFC3339Nano, strings.Fields(lines[0])[0]); perr != nil {
		t.Errorf("no timestamp: %q", lines[0])
	}
	if !strings.HasSuffix(errOut.String(), " two\n") {
		t.Errorf("stderr %q", errOut.String())
	}
}

// lockedBuf is a buffer safe for a writer and a reader in different goroutines.
type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
