package legacytest

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/crilog"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runPod runs a sandbox of pod uid logging to logDir, and a running container name in it.
func runPod(t *testing.T, f *FakeRuntime, uid, logDir, name string) (sandboxID, containerID string) {
	t.Helper()
	ctx := context.Background()
	sb, res := f.RunPodSandbox(ctx, &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: "pod-" + uid, Namespace: "default", Uid: uid},
		LogDirectory: logDir,
	}, "")
	if err := res.Error(); err != nil {
		t.Fatal(err)
	}
	id, err := f.CreateContainer(ctx, sb, &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name}, Image: &runtime.ImageSpec{Image: "busybox"},
		LogPath: name + ".log",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	return sb, id
}

func TestFakeGetContainerLogs(t *testing.T) {
	defer func(d time.Duration) { crilog.FollowPollInterval = d }(crilog.FollowPollInterval)
	crilog.FollowPollInterval = 5 * time.Millisecond
	ctx := context.Background()
	f := NewFakeRuntime()
	logDir := t.TempDir()
	_, id := runPod(t, f, "u1", logDir, "app")
	log := "2026-01-02T03:04:05Z stdout F hello\n2026-01-02T03:04:06Z stderr F oops\n2026-01-02T03:04:07Z stdout F bye\n"
	if err := os.WriteFile(filepath.Join(logDir, "app.log"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	one := int64(1)
	if err := f.GetContainerLogs(ctx, id[:8], &legacy.LogOptions{TailLines: &one}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if out.String() != "bye\n" || errOut.Len() != 0 {
		t.Fatalf("tail 1: %q %q", out.String(), errOut.String())
	}

	// A follow ends when the container stops.
	out.Reset()
	done := make(chan error, 1)
	go func() { done <- f.GetContainerLogs(ctx, id, &legacy.LogOptions{Follow: true}, &out, io.Discard) }()
	time.Sleep(30 * time.Millisecond)
	if err := f.StopContainer(ctx, id, 0); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the container stopped")
	}
	if out.String() != "hello\nbye\n" {
		t.Fatalf("follow: %q", out.String())
	}

	// The model's error classes.
	if err := f.GetContainerLogs(ctx, "nope", nil, io.Discard, io.Discard); !legacy.IsNotFound(err) {
		t.Errorf("unknown container: %v", err)
	}
	neg := int64(-1)
	if err := f.GetContainerLogs(ctx, id, &legacy.LogOptions{TailLines: &neg}, io.Discard, io.Discard); !legacy.IsInvalidArgument(err) {
		t.Errorf("negative tail: %v", err)
	}
	os.Remove(filepath.Join(logDir, "app.log"))
	if err := f.GetContainerLogs(ctx, id, nil, io.Discard, io.Discard); !legacy.IsNotFound(err) {
		t.Errorf("missing log file: %v", err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(logDir, "app.log")); err != nil {
		t.Fatal(err)
	}
	if err := f.GetContainerLogs(ctx, id, nil, io.Discard, io.Discard); !legacy.IsFailedPrecondition(err) {
		t.Errorf("log path a symlink: %v", err)
	}
	_, noLog := runPod(t, f, "u2", "", "quiet")
	if err := f.GetContainerLogs(ctx, noLog, nil, io.Discard, io.Discard); !legacy.IsFailedPrecondition(err) {
		t.Errorf("no log path: %v", err)
	}
}

func TestFakeGarbageCollect(t *testing.T) {
	ctx := context.Background()
	f := NewFakeRuntime()
	_, live := runPod(t, f, "live", "", "a")
	sbGone, gone := runPod(t, f, "gone", "", "a")
	for _, id := range []string{live, gone} {
		if err := f.StopContainer(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	f.Lock()
	delete(f.Sandboxes, sbGone)
	f.Unlock()
	keepAll := legacy.ContainerGCPolicy{MaxPerPodContainer: -1, MaxContainers: -1}
	if err := f.GarbageCollect(ctx, keepAll, false, false); err != nil {
		t.Fatal(err)
	}
	if n := len(f.FakeContainers()); n != 2 {
		t.Fatalf("sources not ready: %d containers left, want 2", n)
	}
	if err := f.GarbageCollect(ctx, keepAll, true, false); err != nil {
		t.Fatal(err)
	}
	if cs := f.FakeContainers(); len(cs) != 1 || cs[0].ID.ID != live {
		t.Fatalf("all sources ready: left %+v, want the live pod's", cs)
	}
	if err := f.GarbageCollect(ctx, legacy.ContainerGCPolicy{MinAge: -1}, true, false); !legacy.IsInvalidArgument(err) {
		t.Fatalf("bad policy: %v", err)
	}
}

func TestFakeImages(t *testing.T) {
	ctx := context.Background()
	f := NewFakeRuntime()
	spec := legacy.ImageSpec{Image: "busybox:1"}
	if ok, _ := f.IsImagePresent(ctx, spec); ok {
		t.Fatal("present before pull")
	}
	id, err := f.PullImage(ctx, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.IsImagePresent(ctx, legacy.ImageSpec{Image: id}); !ok {
		t.Fatal("absent by ID after pull")
	}
	if imgs, _ := f.ListImages(ctx); len(imgs) != 1 {
		t.Fatalf("list %+v", imgs)
	}
	if err := f.RemoveImage(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if imgs, _ := f.ListImages(ctx); len(imgs) != 0 {
		t.Fatalf("list after remove %+v", imgs)
	}
	if err := f.AssertCalls([]string{"IsImagePresent", "PullImage", "IsImagePresent", "ListImages", "RemoveImage", "ListImages"}); err != nil {
		t.Fatal(err)
	}
}

type nopCloser struct{ *bytes.Buffer }

func (nopCloser) Close() error { return nil }

func TestFakeExecAndAttach(t *testing.T) {
	ctx := context.Background()
	f := NewFakeRuntime()
	_, id := runPod(t, f, "u", "", "a")
	if out, err := f.RunInContainer(ctx, id, []string{"echo", "hi"}, 0); err != nil || string(out) != "echo hi\n" {
		t.Fatalf("run: %q %v", out, err)
	}
	var out bytes.Buffer
	if err := f.ExecInContainer(ctx, id, []string{"ls"}, nil, nopCloser{&out}, nil, false, nil); err != nil || out.String() != "ls\n" {
		t.Fatalf("exec: %q %v", out.String(), err)
	}
	out.Reset()
	if err := f.AttachContainer(ctx, id, strings.NewReader("typed"), nopCloser{&out}, nil, false, nil); err != nil || out.String() != "typed" {
		t.Fatalf("attach: %q %v", out.String(), err)
	}
	f.StopContainer(ctx, id, 0)
	if err := f.AttachContainer(ctx, id, nil, nil, nil, false, nil); !legacy.IsFailedPrecondition(err) {
		t.Fatalf("attach to a stopped container: %v", err)
	}
}

func TestFakeAssertions(t *testing.T) {
	ctx := context.Background()
	f := NewFakeRuntime()
	sb1, _ := runPod(t, f, "u1", "", "a")
	_, b := runPod(t, f, "u2", "", "b")
	f.StopContainer(ctx, b, 0)
	f.StopContainer(ctx, b, 0) // not running any more: not stopped again
	f.StopPodSandbox(ctx, sb1)
	f.StopPodSandbox(ctx, sb1)
	for name, err := range map[string]error{
		"started pods":       f.AssertStartedPods([]string{"u2", "u1"}),
		"killed pods":        f.AssertKilledPods([]string{"u1"}),
		"created containers": f.AssertCreatedContainers([]string{"b", "a"}),
		"started containers": f.AssertStartedContainers([]string{"a", "b"}),
		"stopped containers": f.AssertStoppedContainers([]string{"b"}),
		"killed containers":  f.AssertKilledContainers([]string{"b"}),
	} {
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := f.AssertStartedPods([]string{"u1"}); err == nil || !strings.Contains(err.Error(), "u2") {
		t.Errorf("a missing pod passed: %v", err)
	}
	if err := f.AssertStoppedContainers(nil); err == nil {
		t.Error("an unexpected stop passed")
	}
	f.ClearCalls()
	if err := f.AssertStartedPods(nil); err != nil {
		t.Errorf("after ClearCalls: %v", err)
	}
	if err := f.AssertCreatedContainers(nil); err != nil {
		t.Errorf("after ClearCalls: %v", err)
	}
}

func TestFakeAPIVersionInfo(t *testing.T) {
	f := NewFakeRuntime()
	if v, _ := f.APIVersion(); v.String() != "1.0.0" {
		t.Fatalf("default API version %s", v)
	}
	f.APIVersionInfo = "0.1.0"
	if v, _ := f.APIVersion(); v.String() != "0.1.0" {
		t.Fatalf("API version %s, want the one set", v)
	}
}
