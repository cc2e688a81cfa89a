package legacytest

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/streaming"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The rest of the Runtime on the fake: logs, garbage collection, images, exec and attach, and the
// assertions on what the fake was asked to do.

// GetContainerLogs reads the CRI log file at the container's LogPath (the sandbox's log directory
// joined with the config's log path), which the test writes; a follow ends when the container
// stops running.
func (f *FakeRuntime) GetContainerLogs(ctx context.Context, containerID string, opts *legacy.LogOptions, stdout, stderr io.Writer) error {
	f.record("GetContainerLogs")
	return legacy.ReadContainerLogs(ctx, f.containerStatus, containerID, opts, stdout, stderr)
}

// containerStatus is ContainerStatus without recording a call.
func (f *FakeRuntime) containerStatus(ctx context.Context, id string) (*legacy.ContainerDetails, error) {
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c, err := fc.getLocked(id)
	if err != nil {
		return nil, err
	}
	cc := *c
	return &cc, nil
}

// GarbageCollect runs the model's container GC on the fake's containers (a container's pod is its
// sandbox's UID) and records the call; Err fails it.
func (f *FakeRuntime) GarbageCollect(ctx context.Context, gcPolicy legacy.ContainerGCPolicy, allSourcesReady, evictNonDeletedPods bool) error {
	f.Lock()
	f.called("GarbageCollect")
	err := f.Err
	f.Unlock()
	if err != nil {
		return err
	}
	return legacy.GarbageCollect(ctx, fakeGC{f}, gcPolicy, allSourcesReady, evictNonDeletedPods)
}

// fakeGC is the fake seen by the garbage collector.
type fakeGC struct{ f *FakeRuntime }

var (
	_ legacy.GCRuntime          = fakeGC{}
	_ legacy.GCSandboxReadiness = fakeGC{}
)

func (g fakeGC) GCContainers(ctx context.Context) ([]legacy.GCContainer, error) {
	uids := map[string]legacy.UID{}
	g.f.Lock()
	for id, s := range g.f.Sandboxes {
		uids[id] = s.UID
	}
	g.f.Unlock()
	var out []legacy.GCContainer
	for _, c := range g.f.FakeContainers() {
		uid, ok := uids[c.SandboxID]
		if !ok {
			uid = legacy.UID("sandbox:" + c.SandboxID)
		}
		out = append(out, legacy.GCContainer{ID: c.ID.ID, Name: c.Name, PodUID: uid, SandboxID: c.SandboxID,
			CreatedAt: c.CreatedAt, Running: c.State == legacy.ContainerStateRunning})
	}
	return out, nil
}

func (g fakeGC) SandboxExists(ctx context.Context, id string) bool {
	g.f.Lock()
	defer g.f.Unlock()
	_, ok := g.f.Sandboxes[id]
	return ok
}

func (g fakeGC) SandboxReady(ctx context.Context, id string) bool {
	g.f.Lock()
	defer g.f.Unlock()
	s, ok := g.f.Sandboxes[id]
	return ok && s.State == legacy.SandboxStateReady
}

func (g fakeGC) RemoveGCContainer(ctx context.Context, c legacy.GCContainer) error {
	return g.f.RemoveContainer(ctx, c.ID)
}

// PullImage adds the image to ImageList (ID "sha256:" and its name) unless there; Err fails it.
func (f *FakeRuntime) PullImage(ctx context.Context, image legacy.ImageSpec, auth *runtime.AuthConfig) (string, error) {
	f.Lock()
	defer f.Unlock()
	f.called("PullImage")
	if f.Err != nil {
		return "", f.Err
	}
	if img, ok := f.imageLocked(image); ok {
		return img.ID, nil
	}
	img := legacy.Image{ID: "sha256:" + image.Image, RepoTags: []string{image.Image}}
	f.ImageList = append(f.ImageList, img)
	return img.ID, nil
}

// IsImagePresent tells whether ImageList has the image (by ID or tag); InspectErr fails it.
func (f *FakeRuntime) IsImagePresent(ctx context.Context, image legacy.ImageSpec) (bool, error) {
	f.Lock()
	defer f.Unlock()
	f.called("IsImagePresent")
	if f.InspectErr != nil {
		return false, f.InspectErr
	}
	_, ok := f.imageLocked(image)
	return ok, nil
}

// ListImages returns ImageList.
func (f *FakeRuntime) ListImages(ctx context.Context) ([]legacy.Image, error) {
	f.Lock()
	defer f.Unlock()
	f.called("ListImages")
	return slices.Clone(f.ImageList), f.Err
}

// RemoveImage removes the image from ImageList; an absent one is no error.
func (f *FakeRuntime) RemoveImage(ctx context.Context, image legacy.ImageSpec) error {
	f.Lock()
	defer f.Unlock()
	f.called("RemoveImage")
	if f.Err != nil {
		return f.Err
	}
	f.ImageList = slices.DeleteFunc(f.ImageList, func(img legacy.Image) bool { return imageIs(img, image) })
	return nil
}

func (f *FakeRuntime) imageLocked(image legacy.ImageSpec) (legacy.Image, bool) {
	for _, img := range f.ImageList {
		if imageIs(img, image) {
			return img, true
		}
	}
	return legacy.Image{}, false
}

func imageIs(img legacy.Image, spec legacy.ImageSpec) bool {
	return img.ID == spec.Image || slices.Contains(img.RepoTags, spec.Image)
}

// RunInContainer is ExecSync: the output is the command line.
func (f *FakeRuntime) RunInContainer(ctx context.Context, id string, cmd []string, timeout time.Duration) ([]byte, error) {
	f.record("RunInContainer")
	if _, err := f.runningContainer(id); err != nil {
		return nil, err
	}
	return []byte(strings.Join(cmd, " ") + "\n"), nil
}

// ExecInContainer writes the command line to stdout.
func (f *FakeRuntime) ExecInContainer(ctx context.Context, id string, cmd []string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	f.record("ExecInContainer")
	if _, err := f.runningContainer(id); err != nil {
		return err
	}
	if stdout != nil {
		_, err := io.WriteString(stdout, strings.Join(cmd, " ")+"\n")
		return err
	}
	return nil
}

// PortForward echoes the stream back until it ends.
func (f *FakeRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	f.Lock()
	f.called("PortForward")
	_, err := f.getLocked(podSandboxID)
	f.Unlock()
	if err != nil {
		return err
	}
	_, err = io.Copy(stream, stream)
	return err
}

// AttachContainer copies stdin to stdout, as a cat would.
func (f *FakeRuntime) AttachContainer(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.WriteCloser, tty bool, resize <-chan streaming.TerminalSize) error {
	f.record("AttachContainer")
	if _, err := f.runningContainer(id); err != nil {
		return err
	}
	if stdin != nil && stdout != nil {
		_, err := io.Copy(stdout, stdin)
		return err
	}
	return nil
}

func (f *FakeRuntime) runningContainer(id string) (*legacy.ContainerDetails, error) {
	c, err := f.containerStatus(context.Background(), id)
	if err != nil {
		return nil, err
	}
	if c.State != legacy.ContainerStateRunning {
		return nil, fmt.Errorf("container %s is not running: %w", c.ID.ID, legacy.ErrFailedPrecondition)
	}
	return c, nil
}

// AssertStartedPods checks that the pods with these UIDs, and no others, had a sandbox run (in any
// order).
func (f *FakeRuntime) AssertStartedPods(pods []string) error {
	return f.assertSet("started pods", pods, func() []string { return f.StartedPods })
}

// AssertKilledPods checks that the pods with these UIDs, and no others, had a sandbox stopped (in
// any order).
func (f *FakeRuntime) AssertKilledPods(pods []string) error {
	return f.assertSet("killed pods", pods, func() []string { return f.KilledPods })
}

// AssertCreatedContainers checks that containers of these names, and no others, were created (in
// any order).
func (f *FakeRuntime) AssertCreatedContainers(containers []string) error {
	return f.assertSet("created containers", containers, func() []string { return f.CreatedContainers })
}

// AssertStartedContainers checks that containers of these names, and no others, were started (in
// any order).
func (f *FakeRuntime) AssertStartedContainers(containers []string) error {
	return f.assertSet("started containers", containers, func() []string { return f.StartedContainers })
}

// AssertStoppedContainers checks that containers of these names, and no others, were stopped
// while running (in any order).
func (f *FakeRuntime) AssertStoppedContainers(containers []string) error {
	return f.assertSet("stopped containers", containers, func() []string { return f.StoppedContainers })
}

// AssertKilledContainers is AssertStoppedContainers, by the seed's name.
func (f *FakeRuntime) AssertKilledContainers(containers []string) error {
	return f.AssertStoppedContainers(containers)
}

// note appends name to the list under the fake's lock, when name is set.
func (f *FakeRuntime) note(list *[]string, name *string) {
	if *name == "" {
		return
	}
	f.Lock()
	*list = append(*list, *name)
	f.Unlock()
}

// assertSet compares the sorted want with the sorted list got returns (read under the fake's lock).
func (f *FakeRuntime) assertSet(what string, want []string, got func() []string) error {
	f.Lock()
	have := slices.Clone(got())
	f.Unlock()
	want = slices.Clone(want)
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		return fmt.Errorf("%s: expected %q, got %q", what, want, have)
	}
	return nil
}
