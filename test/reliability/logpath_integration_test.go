//go:build integration

package reliability

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestLogPathCannotEscapeThroughSymlinks plants symlinks in a pod's log directory that lead out
// of it: a container whose log_path goes through one is refused at create (InvalidArgument), and
// a log file swapped for one between create and start makes the start fail the same way, without
// writing outside. A symlink that stays inside the directory works.
func TestLogPathCannotEscapeThroughSymlinks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := newEnv(t, "logs", "10.95.0.0/24")
	e.start()
	e.pull(ctx, busybox)
	cfg := e.podConfig("logs", "evil", 0)
	os.MkdirAll(cfg.LogDirectory, 0o755)
	outside := filepath.Join(e.dir, "outside")
	os.MkdirAll(outside, 0o755)
	victim := filepath.Join(outside, "victim")
	os.WriteFile(victim, []byte("keep\n"), 0o644)
	os.Symlink(outside, filepath.Join(cfg.LogDirectory, "evil"))
	os.MkdirAll(filepath.Join(cfg.LogDirectory, "real"), 0o755)
	os.Symlink("real", filepath.Join(cfg.LogDirectory, "inside"))

	rt := e.client()
	p, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rt.StopPodSandbox(context.Background(), &runtime.StopPodSandboxRequest{PodSandboxId: p.PodSandboxId})
		rt.RemovePodSandbox(context.Background(), &runtime.RemovePodSandboxRequest{PodSandboxId: p.PodSandboxId})
	})
	create := func(name, logPath string) (string, error) {
		c := ctrConfig(name)
		c.LogPath = logPath
		r, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: p.PodSandboxId, SandboxConfig: cfg, Config: c})
		return r.GetContainerId(), err
	}
	if _, err := create("through-dir", "evil/c.log"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("log_path through a symlinked dir leading out: %v, want InvalidArgument", err)
	}
	os.Symlink(victim, filepath.Join(cfg.LogDirectory, "file.log"))
	if _, err := create("through-file", "file.log"); status.Code(err) != codes.InvalidArgument {
		t.Errorf("log_path that is a symlink leading out: %v, want InvalidArgument", err)
	}
	// Swapped after create: the start refuses to open it. The request was valid when made; what
	// changed is the file system under it, so the start answers FailedPrecondition (as for a FIFO
	// or device planted there), and the victim is untouched.
	id, err := create("swapped", "swapped.log")
	if err != nil {
		t.Fatal(err)
	}
	os.Symlink(victim, filepath.Join(cfg.LogDirectory, "swapped.log"))
	if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("start with the log swapped for a symlink leading out: %v, want FailedPrecondition", err)
	}
	// Inside: fine.
	id, err = create("inside", "inside/c.log")
	if err != nil {
		t.Fatalf("log_path through a symlink inside the log dir: %v", err)
	}
	if _, err := rt.StartContainer(ctx, &runtime.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if b, err := os.ReadFile(filepath.Join(cfg.LogDirectory, "real", "c.log")); err != nil || len(b) == 0 {
		t.Errorf("log inside through a symlink: %q %v", b, err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "keep\n" {
		t.Fatalf("a file outside the log dir was written: %q", b)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Fatalf("files created outside the log dir: %v", ents)
	}
}
