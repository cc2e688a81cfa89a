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
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FakeRuntime is an in-memory Runtime that records the calls made to it, for the unit tests of the
// layers above. Set Err to make every state-changing call fail with it.
type FakeRuntime struct {
	sync.Mutex
	CalledFunctions []string
	// Sandboxes by ID.
	Sandboxes map[string]*legacy.SandboxStatus
	// Conditions returned by Status; nil: both ready.
	Conditions []legacy.RuntimeCondition
	// Handlers the fake accepts ("" always); nil: runc.
	Handlers    []string
	VersionInfo string
	// APIVersionInfo is what APIVersion reports; "": 1.0.0.
	APIVersionInfo string
	RuntimeType    string
	// Err fails RunPodSandbox, StopPodSandbox and RemovePodSandbox.
	Err error
	// StartedSandboxes, StoppedSandboxes and RemovedSandboxes list the IDs in call order.
	StartedSandboxes []string
	StoppedSandboxes []string
	RemovedSandboxes []string
	// StartedPods and KilledPods list the UIDs of the pods whose sandbox was run, and stopped
	// while ready; CreatedContainers, StartedContainers and StoppedContainers the names of the
	// containers created, started, and stopped while running (seed_fake.go asserts on them).
	StartedPods       []string
	KilledPods        []string
	CreatedContainers []string
	StartedContainers []string
	StoppedContainers []string
	// ImageList is the fake's images; InspectErr fails IsImagePresent.
	ImageList  []legacy.Image
	InspectErr error
	next       int

	// The fake's parts, made on first use.
	containersOnce sync.Once
	containerSet   *fakeContainers // container_fake.go
	eventsOnce     sync.Once
	eventHub       *legacy.EventHub // events_fake.go
	resources      sync.Map         // events_fake.go: sandbox ID -> podResources
	usageOnce      sync.Once
	usageSet       *fakeUsage // stats_fake.go
}

var _ legacy.Runtime = (*FakeRuntime)(nil)

// NewFakeRuntime returns an empty FakeRuntime.
func NewFakeRuntime() *FakeRuntime {
	return &FakeRuntime{Sandboxes: map[string]*legacy.SandboxStatus{}, VersionInfo: "1.0.0", RuntimeType: "fake"}
}

func (f *FakeRuntime) called(name string) {
	f.CalledFunctions = append(f.CalledFunctions, name)
}

// ClearCalls forgets the recorded calls.
func (f *FakeRuntime) ClearCalls() {
	f.Lock()
	defer f.Unlock()
	f.CalledFunctions = nil
	f.StartedSandboxes, f.StoppedSandboxes, f.RemovedSandboxes = nil, nil, nil
	f.StartedPods, f.KilledPods = nil, nil
	f.CreatedContainers, f.StartedContainers, f.StoppedContainers = nil, nil, nil
}

// AssertCalls checks that exactly these functions were called, in order.
func (f *FakeRuntime) AssertCalls(calls []string) error {
	f.Lock()
	defer f.Unlock()
	if strings.Join(f.CalledFunctions, ",") != strings.Join(calls, ",") {
		return fmt.Errorf("expected calls %v, got %v", calls, f.CalledFunctions)
	}
	return nil
}

func (f *FakeRuntime) Type() string {
	f.Lock()
	defer f.Unlock()
	f.called("Type")
	return f.RuntimeType
}

func (f *FakeRuntime) Version(ctx context.Context) (legacy.Version, error) {
	f.Lock()
	defer f.Unlock()
	f.called("Version")
	return &legacy.FakeVersion{Version: f.VersionInfo}, nil
}

func (f *FakeRuntime) APIVersion() (legacy.Version, error) {
	f.Lock()
	defer f.Unlock()
	f.called("APIVersion")
	if f.APIVersionInfo != "" {
		return &legacy.FakeVersion{Version: f.APIVersionInfo}, nil
	}
	return &legacy.FakeVersion{Version: "1.0.0"}, nil
}

func (f *FakeRuntime) Status(ctx context.Context) []legacy.RuntimeCondition {
	f.Lock()
	defer f.Unlock()
	f.called("Status")
	if f.Conditions != nil {
		return f.Conditions
	}
	return []legacy.RuntimeCondition{{Type: legacy.RuntimeReady, Status: true}, {Type: legacy.NetworkReady, Status: true}}
}

// HasRuntimeHandler tells whether handler is known.
func (f *FakeRuntime) HasRuntimeHandler(handler string) bool {
	if handler == "" {
		return true
	}
	hs := f.Handlers
	if hs == nil {
		hs = []string{"runc"}
	}
	for _, h := range hs {
		if h == handler {
			return true
		}
	}
	return false
}

func (f *FakeRuntime) GetPods(ctx context.Context, all bool) ([]*legacy.Pod, error) {
	f.Lock()
	defer f.Unlock()
	f.called("GetPods")
	pods := map[legacy.UID]*legacy.Pod{}
	var out []*legacy.Pod
	for _, s := range f.sortedLocked() {
		if !all && s.State != legacy.SandboxStateReady {
			continue
		}
		p := pods[s.UID]
		if p == nil {
			p = &legacy.Pod{ID: s.UID, Name: s.Name, Namespace: s.Namespace}
			pods[s.UID] = p
			out = append(out, p)
		}
		p.Sandboxes = append(p.Sandboxes, legacy.SandboxAsContainer(f.RuntimeType, s))
	}
	return out, nil
}

func (f *FakeRuntime) GetPodStatus(ctx context.Context, uid legacy.UID, name, namespace string) (*legacy.PodStatus, error) {
	f.Lock()
	defer f.Unlock()
	f.called("GetPodStatus")
	ps := &legacy.PodStatus{ID: uid, Name: name, Namespace: namespace}
	for _, s := range f.sortedLocked() {
		if s.UID == uid {
			c := *s
			ps.SandboxStatuses = append(ps.SandboxStatuses, &c)
		}
	}
	if len(ps.SandboxStatuses) > 0 && ps.SandboxStatuses[0].IP != "" {
		ps.IPs = []string{ps.SandboxStatuses[0].IP}
	}
	return ps, nil
}

func (f *FakeRuntime) KillPod(ctx context.Context, pod legacy.Pod) (result legacy.PodSyncResult) {
	f.Lock()
	f.called("KillPod")
	f.Unlock()
	for _, s := range pod.Sandboxes {
		result.AddPodSyncResult(f.StopPodSandbox(ctx, s.ID.ID))
	}
	return result
}

func (f *FakeRuntime) RunPodSandbox(ctx context.Context, config *runtime.PodSandboxConfig, runtimeHandler string) (string, legacy.PodSyncResult) {
	f.Lock()
	defer f.Unlock()
	f.called("RunPodSandbox")
	var result legacy.PodSyncResult
	if f.Err != nil {
		result.Fail(f.Err)
		return "", result
	}
	if !f.HasRuntimeHandler(runtimeHandler) {
		result.Fail(fmt.Errorf("unknown runtime handler %q: %w", runtimeHandler, errdefs.ErrInvalidArgument))
		return "", result
	}
	md := config.GetMetadata()
	for _, s := range f.Sandboxes {
		if s.Name == md.GetName() && s.Namespace == md.GetNamespace() && string(s.UID) == md.GetUid() && s.Attempt == md.GetAttempt() {
			result.Fail(fmt.Errorf("sandbox name reserved for %s: %w", s.ID, errdefs.ErrAlreadyExists))
			return "", result
		}
	}
	f.next++
	id := fmt.Sprintf("%064x", f.next)
	hostNet := config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
	ip := ""
	if !hostNet {
		ip = fmt.Sprintf("10.88.0.%d", f.next%250+2)
	}
	f.Sandboxes[id] = &legacy.SandboxStatus{
		ID: id, Name: md.GetName(), Namespace: md.GetNamespace(), UID: legacy.UID(md.GetUid()), Attempt: md.GetAttempt(),
		State: legacy.SandboxStateReady, CreatedAt: time.Now(), IP: ip, HostNetwork: hostNet,
		Pid: uint32(1000 + f.next), RuntimeHandler: runtimeHandler,
		Labels: config.GetLabels(), Annotations: config.GetAnnotations(), Config: config,
	}
	f.StartedSandboxes = append(f.StartedSandboxes, id)
	f.StartedPods = append(f.StartedPods, md.GetUid())
	full := legacy.BuildPodFullName(md.GetName(), md.GetNamespace())
	result.AddSyncResult(legacy.NewSyncResult(legacy.StartContainer, full), legacy.NewSyncResult(legacy.SetupNetwork, full))
	return id, result
}

func (f *FakeRuntime) getLocked(id string) (*legacy.SandboxStatus, error) {
	return legacy.LookupID(f.Sandboxes, "sandbox", id)
}

func (f *FakeRuntime) StopPodSandbox(ctx context.Context, id string) (result legacy.PodSyncResult) {
	f.Lock()
	defer f.Unlock()
	f.called("StopPodSandbox")
	if f.Err != nil {
		result.Fail(f.Err)
		return result
	}
	s, err := f.getLocked(id)
	if err != nil {
		result.Fail(err)
		return result
	}
	if s.State == legacy.SandboxStateReady {
		f.KilledPods = append(f.KilledPods, string(s.UID))
	}
	s.State, s.Pid = legacy.SandboxStateNotReady, 0
	f.StoppedSandboxes = append(f.StoppedSandboxes, s.ID)
	full := legacy.BuildPodFullName(s.Name, s.Namespace)
	result.AddSyncResult(legacy.NewSyncResult(legacy.KillPodSandbox, full), legacy.NewSyncResult(legacy.TeardownNetwork, full))
	return result
}

func (f *FakeRuntime) RemovePodSandbox(ctx context.Context, id string) error {
	f.Lock()
	defer f.Unlock()
	f.called("RemovePodSandbox")
	if f.Err != nil {
		return f.Err
	}
	s, err := f.getLocked(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	delete(f.Sandboxes, s.ID)
	f.RemovedSandboxes = append(f.RemovedSandboxes, s.ID)
	return nil
}

func (f *FakeRuntime) PodSandboxStatus(ctx context.Context, id string, verbose bool) (*legacy.SandboxStatus, error) {
	f.Lock()
	defer f.Unlock()
	f.called("PodSandboxStatus")
	s, err := f.getLocked(id)
	if err != nil {
		return nil, err
	}
	c := *s
	if verbose {
		c.Info = map[string]string{"info": fmt.Sprintf(`{"pid":%d}`, s.Pid)}
	}
	return &c, nil
}

func (f *FakeRuntime) ListPodSandbox(ctx context.Context, filter *legacy.SandboxFilter) ([]*legacy.SandboxStatus, error) {
	f.Lock()
	defer f.Unlock()
	f.called("ListPodSandbox")
	var out []*legacy.SandboxStatus
	for _, s := range f.sortedLocked() {
		if filter.Match(s) {
			c := *s
			out = append(out, &c)
		}
	}
	return out, nil
}

func (f *FakeRuntime) sortedLocked() []*legacy.SandboxStatus {
	out := make([]*legacy.SandboxStatus, 0, len(f.Sandboxes))
	for _, s := range f.Sandboxes {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID > out[j].ID
	})
	return out
}
