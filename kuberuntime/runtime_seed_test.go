package kuberuntime

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/crilog"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// seedTestRuntime is a runtime (no containerd) with a ready sandbox "sb1" and a running container
// "c1" in it that logs to <dir>/c1.log.
func seedTestRuntime(t *testing.T) (*ContainerdRuntime, *podSandbox, *podContainer) {
	dir := t.TempDir()
	r := &ContainerdRuntime{bg: context.Background(), sandboxes: newSandboxStore()}
	sb := &podSandbox{
		meta:   sandboxMetadata{ID: "sb1"},
		config: &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}},
		state:  legacy.SandboxStateReady,
	}
	r.sandboxes.add(sb)
	c := &podContainer{
		meta:    containerMetadata{ID: "c1", SandboxID: "sb1", CreatedAt: time.Unix(2, 0), LogPath: filepath.Join(dir, "c1.log")},
		config:  &runtime.ContainerConfig{Metadata: &runtime.ContainerMetadata{Name: "c"}, Image: &runtime.ImageSpec{Image: "busybox"}},
		state:   legacy.ContainerStateRunning,
		rootDir: dir, exited: make(chan struct{}),
	}
	r.ctrs().store.add(c)
	return r, sb, c
}

func TestContainerdGetContainerLogs(t *testing.T) {
	defer func(d time.Duration) { crilog.FollowPollInterval = d }(crilog.FollowPollInterval)
	crilog.FollowPollInterval = 5 * time.Millisecond
	r, _, c := seedTestRuntime(t)
	ctx := context.Background()
	if err := os.WriteFile(c.meta.LogPath, []byte("2026-01-02T03:04:05Z stdout P hel\n2026-01-02T03:04:05Z stdout F lo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- r.GetContainerLogs(ctx, "c", &legacy.LogOptions{Follow: true, Timestamps: true}, &out, io.Discard)
	}()
	time.Sleep(30 * time.Millisecond)
	c.markExited(0, time.Now(), false, "", nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("follow did not end when the container exited")
	}
	if out.String() != "2026-01-02T03:04:05Z hello\n" {
		t.Fatalf("logs %q", out.String())
	}
	if err := r.GetContainerLogs(ctx, "nope", nil, io.Discard, io.Discard); !legacy.IsNotFound(err) {
		t.Fatalf("unknown container: %v", err)
	}
}

func TestContainerdGarbageCollectAndSandboxReady(t *testing.T) {
	r, sb, _ := seedTestRuntime(t)
	ctx := context.Background()
	// The one container runs: nothing to remove (a removal would need containerd).
	if err := r.GarbageCollect(ctx, legacy.ContainerGCPolicy{MaxPerPodContainer: 0, MaxContainers: 0}, true, true); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ctrs().store.get("c1"); err != nil {
		t.Fatalf("the running container went: %v", err)
	}
	if err := r.GarbageCollect(ctx, legacy.ContainerGCPolicy{MinAge: -1}, true, false); !legacy.IsInvalidArgument(err) {
		t.Fatalf("bad policy: %v", err)
	}
	if !r.SandboxReady(ctx, "sb1") || r.SandboxReady(ctx, "sb") || r.SandboxReady(ctx, "gone") {
		t.Fatal("SandboxReady of the ready sandbox, a prefix, an unknown one")
	}
	sb.setStopped(time.Now())
	if r.SandboxReady(ctx, "sb1") {
		t.Fatal("a stopped sandbox is ready")
	}
}

// mapImages is an ImageBackend of a map from names to IDs.
type mapImages map[string]string

func (m mapImages) ImageRef(ctx context.Context, spec legacy.ImageSpec) (string, error) {
	return m[spec.Image], nil
}

func (m mapImages) PullImage(ctx context.Context, spec legacy.ImageSpec, auth *runtime.AuthConfig, progress func(legacy.PullProgress)) (string, error) {
	m[spec.Image] = "sha256:" + spec.Image
	return m[spec.Image], nil
}

func (m mapImages) ListImages(ctx context.Context) ([]legacy.Image, error) {
	var out []legacy.Image
	for name, id := range m {
		out = append(out, legacy.Image{ID: id, RepoTags: []string{name}})
	}
	return out, nil
}

func (m mapImages) RemoveImage(ctx context.Context, spec legacy.ImageSpec) error {
	delete(m, spec.Image)
	return nil
}

func TestContainerdImagesGoToTheBackend(t *testing.T) {
	backend := mapImages{}
	r := &ContainerdRuntime{images: backend}
	ctx := context.Background()
	spec := legacy.ImageSpec{Image: "busybox:1"}
	if ok, err := r.IsImagePresent(ctx, spec); ok || err != nil {
		t.Fatalf("present before the pull: %v %v", ok, err)
	}
	if id, err := r.PullImage(ctx, spec, nil); err != nil || id != "sha256:busybox:1" || backend["busybox:1"] == "" {
		t.Fatalf("pull: %q %v", id, err)
	}
	if ok, _ := r.IsImagePresent(ctx, spec); !ok {
		t.Fatal("absent after the pull")
	}
	if imgs, _ := r.ListImages(ctx); len(imgs) != 1 {
		t.Fatalf("list: %+v", imgs)
	}
	if err := r.RemoveImage(ctx, spec); err != nil || len(backend) != 0 {
		t.Fatalf("remove: %v, left %v", err, backend)
	}
}
