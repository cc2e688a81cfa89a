package legacytest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeContainers is FakeRuntime's in-memory container manager.
type fakeContainers struct {
	mu   sync.Mutex
	byID map[string]*legacy.ContainerDetails
	next int
}

func (f *FakeRuntime) containers() *fakeContainers {
	f.containersOnce.Do(func() { f.containerSet = &fakeContainers{byID: map[string]*legacy.ContainerDetails{}} })
	return f.containerSet
}

var _ legacy.ContainerManager = (*FakeRuntime)(nil)

// FakeContainers returns the fake's containers, newest first.
func (f *FakeRuntime) FakeContainers() []*legacy.ContainerDetails {
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return fc.sortedLocked()
}

func (fc *fakeContainers) sortedLocked() []*legacy.ContainerDetails {
	out := make([]*legacy.ContainerDetails, 0, len(fc.byID))
	for _, c := range fc.byID {
		cc := *c
		out = append(out, &cc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID.ID > out[j].ID.ID })
	return out
}

func (fc *fakeContainers) getLocked(id string) (*legacy.ContainerDetails, error) {
	return legacy.LookupID(fc.byID, "container", id)
}

func (f *FakeRuntime) record(name string) {
	f.Lock()
	f.called(name)
	f.Unlock()
}

func (f *FakeRuntime) CreateContainer(ctx context.Context, sandboxID string, config *runtime.ContainerConfig) (string, error) {
	f.record("CreateContainer")
	if err := legacy.ValidateContainerConfig(config); err != nil {
		return "", err
	}
	f.Lock()
	sb, err := f.getLocked(sandboxID)
	var sbID, logDir string
	ready := false
	if err == nil {
		sbID, ready, logDir = sb.ID, sb.State == legacy.SandboxStateReady, sb.Config.GetLogDirectory()
	}
	ferr := f.Err
	f.Unlock()
	if err != nil {
		return "", err
	}
	if ferr != nil {
		return "", ferr
	}
	if !ready {
		return "", fmt.Errorf("sandbox %s is not ready: %w", sbID, errdefs.ErrFailedPrecondition)
	}
	var created string
	defer f.note(&f.CreatedContainers, &created)
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	md := config.GetMetadata()
	for _, c := range fc.byID {
		if c.SandboxID == sbID && c.Name == md.GetName() && c.Attempt == md.GetAttempt() {
			return "", fmt.Errorf("container name reserved for %s: %w", c.ID.ID, errdefs.ErrAlreadyExists)
		}
	}
	fc.next++
	id := fmt.Sprintf("c%063x", fc.next)
	d := &legacy.ContainerDetails{
		ContainerStatus: legacy.ContainerStatus{
			ID: legacy.BuildContainerID("fake", id), Name: md.GetName(), State: legacy.ContainerStateCreated, CreatedAt: time.Now(),
			Image: config.GetImage().GetImage(), ImageID: "sha256:fake", ImageRef: "sha256:fake",
			Hash: legacy.HashContainer(config), RestartCount: int(md.GetAttempt()),
		},
		SandboxID: sbID, Attempt: md.GetAttempt(), Config: proto.Clone(config).(*runtime.ContainerConfig),
		ImageName: config.GetImage().GetImage(), Resources: config.GetLinux().GetResources(),
	}
	if logDir != "" && config.GetLogPath() != "" {
		d.LogPath = logDir + "/" + config.GetLogPath()
	}
	fc.byID[id] = d
	created = d.Name
	return id, nil
}

func (f *FakeRuntime) StartContainer(ctx context.Context, id string) error {
	f.record("StartContainer")
	var started string
	defer f.note(&f.StartedContainers, &started)
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c, err := fc.getLocked(id)
	if err != nil {
		return err
	}
	if c.State != legacy.ContainerStateCreated {
		return fmt.Errorf("container %s is %s: %w", c.ID.ID, c.State, errdefs.ErrFailedPrecondition)
	}
	c.State, c.StartedAt, c.Pid = legacy.ContainerStateRunning, time.Now(), 4242
	started = c.Name
	return nil
}

func (f *FakeRuntime) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	f.record("StopContainer")
	var stopped string
	defer f.note(&f.StoppedContainers, &stopped)
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c, err := fc.getLocked(id)
	if err != nil {
		return err
	}
	if c.State == legacy.ContainerStateRunning {
		c.State, c.FinishedAt, c.ExitCode, c.Reason, c.Pid = legacy.ContainerStateExited, time.Now(), 137, legacy.ReasonError, 0
		stopped = c.Name
	}
	return nil
}

func (f *FakeRuntime) RemoveContainer(ctx context.Context, id string) error {
	f.record("RemoveContainer")
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c, err := fc.getLocked(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	delete(fc.byID, c.ID.ID)
	return nil
}

func (f *FakeRuntime) ContainerStatus(ctx context.Context, id string, verbose bool) (*legacy.ContainerDetails, error) {
	f.record("ContainerStatus")
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c, err := fc.getLocked(id)
	if err != nil {
		return nil, err
	}
	cc := *c
	if verbose {
		cc.Info = map[string]string{"info": fmt.Sprintf(`{"pid":%d}`, c.Pid)}
	}
	return &cc, nil
}

func (f *FakeRuntime) ListContainers(ctx context.Context, filter *legacy.ContainerFilter) ([]*legacy.ContainerDetails, error) {
	f.record("ListContainers")
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	var out []*legacy.ContainerDetails
	for _, c := range fc.sortedLocked() {
		if filter.Match(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *FakeRuntime) UpdateContainerResources(ctx context.Context, id string, resources *runtime.LinuxContainerResources) error {
	f.record("UpdateContainerResources")
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c, err := fc.getLocked(id)
	if err != nil {
		return err
	}
	c.Resources = resources
	return nil
}

func (f *FakeRuntime) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*legacy.ExecSyncResult, error) {
	f.record("ExecSync")
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c, err := fc.getLocked(id)
	if err != nil {
		return nil, err
	}
	if c.State != legacy.ContainerStateRunning {
		return nil, fmt.Errorf("container %s is not running: %w", c.ID.ID, errdefs.ErrFailedPrecondition)
	}
	return &legacy.ExecSyncResult{Stdout: []byte(strings.Join(cmd, " ") + "\n")}, nil
}

func (f *FakeRuntime) ReopenContainerLog(ctx context.Context, id string) error {
	f.record("ReopenContainerLog")
	fc := f.containers()
	fc.mu.Lock()
	defer fc.mu.Unlock()
	c, err := fc.getLocked(id)
	if err != nil {
		return err
	}
	if c.State != legacy.ContainerStateRunning {
		return fmt.Errorf("container %s is not running: %w", c.ID.ID, errdefs.ErrFailedPrecondition)
	}
	return nil
}
