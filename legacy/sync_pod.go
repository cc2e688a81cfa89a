package legacy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// Labels SyncPod puts on what it creates.
const (
	// LabelSpecHash holds SpecHash of a container's desired config, or of the sandbox's: a
	// different hash means the spec changed and the object is replaced.
	LabelSpecHash = "io.cri-shim.spec-hash"
	// LabelContainerType is "init" for init containers, "regular" for the others.
	LabelContainerType = "io.cri-shim.container.type"
)

// Crash-loop backoff of containers: 10 s after the first restart, doubling to 300 s; a container
// that ran for ContainerBackoffResetAfter before it exited starts over (as the kubelet).
const (
	CrashLoopBackoffInitial    = 10 * time.Second
	CrashLoopBackoffMax        = 300 * time.Second
	ContainerBackoffResetAfter = 10 * time.Minute
)

// NewCrashLoopBackoff returns the container restart backoff: 10 s doubling to 300 s.
func NewCrashLoopBackoff(clk clock.PassiveClock) *Backoff {
	return NewBackoff(CrashLoopBackoffInitial, CrashLoopBackoffMax, clk)
}

// IsInBackOffSince tells whether id is still backing off from a failure at eventTime: its delay
// has not passed since then (on the backoff's clock). An entry older than twice the maximum delay
// at eventTime no longer counts.
func (b *Backoff) IsInBackOffSince(id string, eventTime time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.entries[id]
	if !ok || b.expired(e, eventTime) {
		return false
	}
	return b.clock.Since(eventTime) < e.backoff
}

// ContainerSpec is a container SyncPod keeps running: its CRI config (SyncPod sets the attempt,
// the log path and its labels) and how its image is pulled.
type ContainerSpec struct {
	Config     *runtime.ContainerConfig
	PullPolicy PullPolicy
	// Lifecycle holds the container's hooks (nil: none); they run when PodSyncer.Hooks is set.
	Lifecycle *Lifecycle
}

// SpecHashLabel is the LabelSpecHash of the container: SpecHash of its config, with its hooks
// when it has some (a changed hook replaces the container, as the kubelet's hash of the whole
// container does; a container without hooks keeps the hash it always had).
func (c ContainerSpec) SpecHashLabel() string {
	h := SpecHash(c.Config)
	if c.Lifecycle != nil {
		b, err := json.Marshal(c.Lifecycle)
		if err != nil {
			b = []byte(fmt.Sprint(err))
		}
		h ^= HashContainer(&runtime.ContainerConfig{Args: []string{"lifecycle", string(b)}})
	}
	return HashString(h)
}

// PodSpec is the desired state of a pod for SyncPod.
type PodSpec struct {
	// Sandbox is the sandbox's config; its metadata (name, namespace, uid) names the pod.
	// SyncPod sets the attempt and LabelSpecHash.
	Sandbox        *runtime.PodSandboxConfig
	RuntimeHandler string
	// InitContainers run one after the other, each to success, before the Containers start.
	InitContainers []ContainerSpec
	Containers     []ContainerSpec
	// RestartPolicy defaults to Always.
	RestartPolicy RestartPolicy
	// StopTimeout is the grace period of a container being killed.
	StopTimeout time.Duration
	// Auths are the registry credentials to try.
	Auths []*runtime.AuthConfig
}

// UID returns the pod's UID.
func (p *PodSpec) UID() UID { return UID(p.Sandbox.GetMetadata().GetUid()) }

// FullName returns the pod's name_namespace.
func (p *PodSpec) FullName() string {
	return BuildPodFullName(p.Sandbox.GetMetadata().GetName(), p.Sandbox.GetMetadata().GetNamespace())
}

// EventObject is the object the pod's events are recorded against: pod/NAMESPACE/NAME.
func (p *PodSpec) EventObject() string {
	return "pod/" + p.Sandbox.GetMetadata().GetNamespace() + "/" + p.Sandbox.GetMetadata().GetName()
}

func (p *PodSpec) policy() RestartPolicy {
	if p.RestartPolicy == "" {
		return RestartPolicyAlways
	}
	return p.RestartPolicy
}

// SpecHash is HashContainer of the config without what SyncPod itself sets (attempt, log path,
// LabelSpecHash): it changes only when the desired container changes.
func SpecHash(config *runtime.ContainerConfig) uint64 {
	c := proto.Clone(config).(*runtime.ContainerConfig)
	if c.Metadata != nil {
		c.Metadata.Attempt = 0
	}
	c.LogPath = ""
	delete(c.Labels, LabelSpecHash)
	return HashContainer(c)
}

// SandboxSpecHash is the hash of a sandbox config without its attempt and LabelSpecHash.
func SandboxSpecHash(config *runtime.PodSandboxConfig) uint64 {
	c := proto.Clone(config).(*runtime.PodSandboxConfig)
	if c.Metadata != nil {
		c.Metadata.Attempt = 0
	}
	delete(c.Labels, LabelSpecHash)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		b = []byte(c.String())
	}
	return HashContainer(&runtime.ContainerConfig{Args: []string{string(b)}})
}

func HashString(h uint64) string { return strconv.FormatUint(h, 16) }

// PodRuntime is what SyncPod drives: the runtime's pods and sandboxes and its containers.
type PodRuntime interface {
	Runtime
	ContainerManager
}

// PodSyncer keeps pods in their desired state: SyncPod compares what runs with the PodSpec and
// acts. It is what the kubelet did for its pods, here for the standalone pods.
type PodSyncer struct {
	Runtime PodRuntime
	// Puller makes the images present (pull policy, image pull backoff).
	Puller ImagePuller
	// Recorder records the events, against PodSpec.EventObject.
	Recorder EventRecorder
	// Backoff is the crash-loop backoff of the containers.
	Backoff *Backoff
	// Unhealthy, when set, tells whether a running container failed its liveness probe: it is
	// killed and restarted by the restart policy.
	Unhealthy func(pod *PodSpec, containerID string) bool
	// Hooks runs the containers' lifecycle hooks; nil: the hooks are not run.
	Hooks HandlerRunner
	// Helper generates the containers' configs and the sandbox's DNS; nil: the spec's configs
	// are used as they are.
	Helper RuntimeHelper
}

// NewPodSyncer returns a syncer with the crash-loop backoff on the real clock and a nop recorder
// when those are nil.
func NewPodSyncer(rt PodRuntime, puller ImagePuller, recorder EventRecorder, backoff *Backoff) *PodSyncer {
	if recorder == nil {
		recorder = NopRecorder{}
	}
	if backoff == nil {
		backoff = NewCrashLoopBackoff(nil)
	}
	return &PodSyncer{Runtime: rt, Puller: puller, Recorder: recorder, Backoff: backoff}
}

// containerKill is a container to stop and why.
type ContainerKill struct {
	ID      string
	Name    string
	Message string
}

// PodActions is what SyncPod will do to a pod.
type PodActions struct {
	// KillPod stops every sandbox of the pod (and their containers) first.
	KillPod bool
	// CreateSandbox makes a new sandbox with Attempt; SandboxID is the ready one otherwise.
	CreateSandbox bool
	SandboxID     string
	Attempt       uint32
	// NextInitContainer is the index of the init container to start, -1 for none.
	NextInitContainer int
	// ContainersToStart are indexes into PodSpec.Containers.
	ContainersToStart []int
	// ContainersToKill are stopped before anything starts.
	ContainersToKill []ContainerKill
	// Reason says why the sandbox is (re)created, for the event.
	Reason string
}

// ContainersToKillNames returns the names of the containers to kill (tests, logs).
func (a PodActions) ContainersToKillNames() []string {
	var out []string
	for _, k := range a.ContainersToKill {
		out = append(out, k.Name)
	}
	return out
}

// newestSandbox returns the newest of the pod's sandboxes, nil when none.
func newestSandbox(status *PodStatus) *SandboxStatus {
	if status == nil || len(status.SandboxStatuses) == 0 {
		return nil
	}
	s := append([]*SandboxStatus(nil), status.SandboxStatuses...)
	sort.SliceStable(s, func(i, j int) bool {
		if s[i].Attempt != s[j].Attempt {
			return s[i].Attempt > s[j].Attempt
		}
		return s[i].CreatedAt.After(s[j].CreatedAt)
	})
	return s[0]
}

// containersStatus turns the containers of a sandbox into a PodStatus, newest first, as
// ShouldContainerBeRestarted reads it.
func containersStatus(pod *PodSpec, containers []*ContainerDetails) *PodStatus {
	ps := &PodStatus{ID: pod.UID()}
	sorted := append([]*ContainerDetails(nil), containers...)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Attempt != sorted[j].Attempt {
			return sorted[i].Attempt > sorted[j].Attempt
		}
		return sorted[i].CreatedAt.After(sorted[j].CreatedAt)
	})
	for _, c := range sorted {
		cs := c.ContainerStatus
		ps.ContainerStatuses = append(ps.ContainerStatuses, &cs)
	}
	return ps
}

// newestContainer returns the newest container of that name, nil when none.
func newestContainer(containers []*ContainerDetails, name string) *ContainerDetails {
	var best *ContainerDetails
	for _, c := range containers {
		if c.Name != name {
			continue
		}
		if best == nil || c.Attempt > best.Attempt || (c.Attempt == best.Attempt && c.CreatedAt.After(best.CreatedAt)) {
			best = c
		}
	}
	return best
}

// newestExited returns the newest exited container of that name, nil when none.
func newestExited(containers []*ContainerDetails, name string) *ContainerDetails {
	var exited []*ContainerDetails
	for _, c := range containers {
		if c.State == ContainerStateExited {
			exited = append(exited, c)
		}
	}
	return newestContainer(exited, name)
}

// ComputePodActions decides what SyncPod does, from the desired pod, the pod's status (its
// sandboxes), the containers of its newest sandbox and the IDs of the running containers that
// failed their liveness probe. It is the kubelet's computePodActions on the model's types.
func ComputePodActions(pod *PodSpec, status *PodStatus, containers []*ContainerDetails, unhealthy map[string]bool) PodActions {
	actions := PodActions{NextInitContainer: -1}
	sb := newestSandbox(status)
	if sandboxActions(&actions, pod, sb) {
		if sb != nil {
			actions.KillPod = true
			// A pod that must not restart and already ran its containers is done: no new sandbox.
			if pod.policy() == RestartPolicyNever && len(containers) > 0 && actions.Reason == "sandbox not ready" {
				actions.CreateSandbox = false
				return actions
			}
		}
		if len(pod.InitContainers) > 0 {
			actions.NextInitContainer = 0
		} else {
			for i := range pod.Containers {
				actions.ContainersToStart = append(actions.ContainersToStart, i)
			}
		}
		return actions
	}
	actions.ContainersToKill = unwantedContainers(pod, containers)
	if !initContainerActions(&actions, pod, containers) {
		return actions
	}
	containerActions(&actions, pod, containers, unhealthy)
	return actions
}

// sandboxActions decides whether the pod needs a new sandbox (none, not ready, or its spec
// changed) and tells it; otherwise it keeps the ready one.
func sandboxActions(actions *PodActions, pod *PodSpec, sb *SandboxStatus) bool {
	switch {
	case sb == nil:
		actions.CreateSandbox, actions.Reason = true, "no sandbox"
	case sb.State != SandboxStateReady:
		actions.CreateSandbox, actions.Reason = true, "sandbox not ready"
		actions.Attempt = sb.Attempt + 1
	case sb.Labels[LabelSpecHash] != HashString(SandboxSpecHash(pod.Sandbox)):
		actions.CreateSandbox, actions.Reason = true, "sandbox spec changed"
		actions.Attempt = sb.Attempt + 1
	default:
		actions.SandboxID = sb.ID
	}
	return actions.CreateSandbox
}

// unwantedContainers are the running containers the spec no longer has.
func unwantedContainers(pod *PodSpec, containers []*ContainerDetails) []ContainerKill {
	wanted := map[string]bool{}
	for _, c := range pod.InitContainers {
		wanted[c.Config.GetMetadata().GetName()] = true
	}
	for _, c := range pod.Containers {
		wanted[c.Config.GetMetadata().GetName()] = true
	}
	var kills []ContainerKill
	for _, c := range containers {
		if c.State == ContainerStateRunning && !wanted[c.Name] {
			kills = append(kills, ContainerKill{ID: c.ID.ID, Name: c.Name,
				Message: fmt.Sprintf("Container %s is no longer in the pod's spec, it will be killed", c.Name)})
		}
	}
	return kills
}

// initContainerActions runs the init containers one at a time, in order, until each exited 0;
// it tells whether the pod is initialized (once a regular container was created in this sandbox,
// it is).
func initContainerActions(actions *PodActions, pod *PodSpec, containers []*ContainerDetails) bool {
	if len(pod.InitContainers) == 0 {
		return true
	}
	for _, c := range containers {
		if c.Config.GetLabels()[LabelContainerType] == "regular" {
			return true
		}
	}
	for i, ic := range pod.InitContainers {
		cur := newestContainer(containers, ic.Config.GetMetadata().GetName())
		switch {
		case cur == nil:
			actions.NextInitContainer = i
			return false
		case cur.State == ContainerStateRunning:
			return false // wait for it
		case cur.State == ContainerStateExited && cur.ExitCode == 0:
			continue
		case cur.State == ContainerStateExited && pod.policy() == RestartPolicyNever:
			// The pod failed: stop it and leave it.
			actions.KillPod = true
			return false
		default:
			actions.NextInitContainer = i
			return false
		}
	}
	return true
}

// containerActions restarts the running containers whose spec changed or that failed their
// liveness probe, and starts the others by the restart policy.
func containerActions(actions *PodActions, pod *PodSpec, containers []*ContainerDetails, unhealthy map[string]bool) {
	cstatus := containersStatus(pod, containers)
	for i, spec := range pod.Containers {
		name := spec.Config.GetMetadata().GetName()
		cur := newestContainer(containers, name)
		if cur != nil && cur.State == ContainerStateRunning {
			switch {
			case cur.Config.GetLabels()[LabelSpecHash] != spec.SpecHashLabel():
				actions.ContainersToKill = append(actions.ContainersToKill, ContainerKill{ID: cur.ID.ID, Name: name,
					Message: fmt.Sprintf("Container %s definition changed, will be restarted", name)})
				actions.ContainersToStart = append(actions.ContainersToStart, i)
			case unhealthy[cur.ID.ID]:
				actions.ContainersToKill = append(actions.ContainersToKill, ContainerKill{ID: cur.ID.ID, Name: name,
					Message: fmt.Sprintf("Container %s failed liveness probe, will be restarted", name)})
				// Only killed here: the next sync restarts it by the restart policy, through the
				// crash-loop backoff (repeated liveness failures back off like crashes).
			}
			continue
		}
		if ShouldContainerBeRestarted(spec.Config, pod.policy(), cstatus) {
			actions.ContainersToStart = append(actions.ContainersToStart, i)
		}
	}
}

// SyncPod brings the pod to its spec: it computes the actions from status (the pod's status,
// from the status Cache) and the containers of its newest sandbox, then kills the pod or
// containers, creates the sandbox, starts the next init container or the containers (images
// through the Puller, restarts through the crash-loop backoff), and reports every step.
func (s *PodSyncer) SyncPod(ctx context.Context, pod *PodSpec, status *PodStatus) (result PodSyncResult) {
	if pod == nil || pod.Sandbox.GetMetadata().GetUid() == "" {
		result.Fail(errors.New("pod spec without sandbox metadata and uid"))
		return result
	}
	if status == nil {
		status = &PodStatus{ID: pod.UID()}
	}
	containers, unhealthy, err := s.sandboxContainers(ctx, pod, status)
	if err != nil {
		result.Fail(err)
		return result
	}
	actions := ComputePodActions(pod, status, containers, unhealthy)
	logrus.WithField("pod", pod.FullName()).WithFields(logrus.Fields{"createSandbox": actions.CreateSandbox, "killPod": actions.KillPod,
		"init": actions.NextInitContainer, "start": actions.ContainersToStart, "kill": actions.ContainersToKillNames()}).Trace("pod actions")

	if actions.KillPod {
		if !s.killPodStep(ctx, &result, pod, status, containers, actions) || !actions.CreateSandbox {
			return result
		}
	}
	if !s.killContainers(ctx, &result, pod, actions.ContainersToKill) {
		return result
	}
	sandboxID := actions.SandboxID
	if actions.CreateSandbox {
		var ok bool
		if sandboxID, ok = s.createSandbox(ctx, &result, pod, status, actions); !ok {
			return result
		}
		containers = nil
	}
	if actions.NextInitContainer >= 0 {
		s.startContainer(ctx, &result, pod, sandboxID, pod.InitContainers[actions.NextInitContainer], "init", containers)
		return result
	}
	for _, i := range actions.ContainersToStart {
		s.startContainer(ctx, &result, pod, sandboxID, pod.Containers[i], "regular", containers)
	}
	return result
}

// sandboxContainers lists the containers of the pod's newest sandbox, and which of the running
// ones failed their liveness probe. Those of a stopped sandbox are listed too (best effort): they
// tell whether a pod that must not restart already ran.
func (s *PodSyncer) sandboxContainers(ctx context.Context, pod *PodSpec, status *PodStatus) ([]*ContainerDetails, map[string]bool, error) {
	unhealthy := map[string]bool{}
	sb := newestSandbox(status)
	if sb == nil {
		return nil, unhealthy, nil
	}
	cs, err := s.Runtime.ListContainers(ctx, &ContainerFilter{SandboxID: sb.ID})
	if err != nil {
		if sb.State != SandboxStateReady {
			return nil, unhealthy, nil
		}
		return nil, nil, fmt.Errorf("list containers of sandbox %s: %w", sb.ID, err)
	}
	var containers []*ContainerDetails
	for _, c := range cs {
		if c.SandboxID != sb.ID {
			continue
		}
		containers = append(containers, c)
		if sb.State == SandboxStateReady && s.Unhealthy != nil && c.State == ContainerStateRunning && s.Unhealthy(pod, c.ID.ID) {
			unhealthy[c.ID.ID] = true
		}
	}
	return containers, unhealthy, nil
}

// killPodStep stops every sandbox of the pod and their containers, with the events; false when
// that failed.
func (s *PodSyncer) killPodStep(ctx context.Context, result *PodSyncResult, pod *PodSpec, status *PodStatus, containers []*ContainerDetails, actions PodActions) bool {
	obj := pod.EventObject()
	if actions.CreateSandbox && len(status.SandboxStatuses) > 0 {
		s.Recorder.Eventf(obj, EventTypeNormal, SandboxChanged, "Pod sandbox changed (%s), it will be killed and re-created.", actions.Reason)
	}
	for _, c := range containers {
		if c.State == ContainerStateRunning {
			s.Recorder.Eventf(obj, EventTypeNormal, KillingContainer, "Stopping container %s", c.Name)
		}
	}
	kill := s.killPod(ctx, pod, status, containers)
	result.AddPodSyncResult(kill)
	return kill.Error() == nil
}

// killContainers stops the containers the actions name, each with its event; false at the first
// that could not be stopped.
func (s *PodSyncer) killContainers(ctx context.Context, result *PodSyncResult, pod *PodSpec, kills []ContainerKill) bool {
	for _, k := range kills {
		r := NewSyncResult(KillContainer, k.Name)
		result.AddSyncResult(r)
		s.Recorder.Eventf(pod.EventObject(), EventTypeNormal, KillingContainer, "%s", k.Message)
		if err := s.killContainer(ctx, pod, k.ID, k.Name); err != nil {
			r.Fail(ErrKillContainer, err.Error())
			return false
		}
	}
	return true
}

// createSandbox runs the pod's new sandbox and removes the older ones (already killed) with
// their containers; it returns the new sandbox's ID, or false when it could not be made.
func (s *PodSyncer) createSandbox(ctx context.Context, result *PodSyncResult, pod *PodSpec, status *PodStatus, actions PodActions) (string, bool) {
	obj := pod.EventObject()
	r := NewSyncResult(CreatePodSandbox, pod.FullName())
	result.AddSyncResult(r)
	cfg, err := s.sandboxConfig(ctx, pod, actions.Attempt)
	if err != nil {
		r.FailErr(ErrCreatePodSandbox, err)
		s.Recorder.Eventf(obj, EventTypeWarning, FailedCreatePodSandBox, "Failed to generate sandbox config for pod %s: %v", pod.FullName(), err)
		return "", false
	}
	id, res := s.Runtime.RunPodSandbox(ctx, cfg, pod.RuntimeHandler)
	if err := res.Error(); err != nil {
		r.FailErr(ErrCreatePodSandbox, err)
		s.Recorder.Eventf(obj, EventTypeWarning, FailedCreatePodSandBox, "Failed to create pod sandbox: %v", err)
		return "", false
	}
	for _, old := range status.SandboxStatuses {
		rr := NewSyncResult(RemovePodSandbox, old.ID)
		if err := s.Runtime.RemovePodSandbox(ctx, old.ID); err != nil {
			rr.Fail(err, err.Error())
		}
		result.AddSyncResult(rr)
	}
	return id, true
}

// sandboxConfig is the config a new sandbox of the pod is created with: the spec's, at that
// attempt, labelled with the spec's hash, and with the DNS the Helper gives the pod. The hash is
// the spec's, not the DNS's: what the Helper derives from the host (its resolv.conf) is read when
// a sandbox is made, as the kubelet does, and a change of it does not replace running pods.
func (s *PodSyncer) sandboxConfig(ctx context.Context, pod *PodSpec, attempt uint32) (*runtime.PodSandboxConfig, error) {
	cfg := proto.Clone(pod.Sandbox).(*runtime.PodSandboxConfig)
	cfg.Metadata.Attempt = attempt
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	cfg.Labels[LabelSpecHash] = HashString(SandboxSpecHash(pod.Sandbox))
	if s.Helper != nil {
		dns, err := s.Helper.GetClusterDNS(ctx, pod)
		if err != nil {
			return nil, fmt.Errorf("DNS config: %w", err)
		}
		cfg.DnsConfig = dns
	}
	return cfg, nil
}

// containerConfig is the config the container is created with: the Helper's, or a copy of the
// spec's without a Helper.
func (s *PodSyncer) containerConfig(ctx context.Context, pod *PodSpec, spec *ContainerSpec) (*runtime.ContainerConfig, error) {
	if s.Helper == nil {
		return proto.Clone(spec.Config).(*runtime.ContainerConfig), nil
	}
	cfg, err := s.Helper.GenerateRunContainerOptions(ctx, pod, spec)
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return nil, fmt.Errorf("container %s: no config generated", spec.Config.GetMetadata().GetName())
	}
	// SyncPod sets its own fields on it: the helper's copy is left as it is.
	return proto.Clone(cfg).(*runtime.ContainerConfig), nil
}

// ErrCreatePodSandbox: the pod's sandbox could not be created.
var ErrCreatePodSandbox = errors.New("CreatePodSandboxError")

// backoffKey keys a container's crash-loop backoff: the pod's UID and the container's name.
func BackoffKey(pod *PodSpec, name string) string {
	return string(pod.UID()) + "/" + name
}

// doBackOff tells whether the container's restart must wait: its newest run exited less than its
// delay ago. Otherwise the delay grows for the next time.
func (s *PodSyncer) DoBackOff(pod *PodSpec, prev *ContainerDetails) (bool, string) {
	if prev == nil || prev.State != ContainerStateExited {
		return false, ""
	}
	key := BackoffKey(pod, prev.Name)
	if !prev.StartedAt.IsZero() && prev.FinishedAt.Sub(prev.StartedAt) >= ContainerBackoffResetAfter {
		// It ran fine for long enough: its next crash starts the backoff over.
		s.Backoff.Reset(key)
	}
	if s.Backoff.IsInBackOffSince(key, prev.FinishedAt) {
		return true, fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", s.Backoff.Get(key), prev.Name, pod.FullName())
	}
	s.Backoff.Next(key, prev.FinishedAt)
	return false, ""
}

// startContainer pulls the image, creates and starts one container, after the backoff allows it.
func (s *PodSyncer) startContainer(ctx context.Context, result *PodSyncResult, pod *PodSpec, sandboxID string, spec ContainerSpec, typ string, containers []*ContainerDetails) {
	name := spec.Config.GetMetadata().GetName()
	obj := pod.EventObject()
	r := NewSyncResult(StartContainer, name)
	result.AddSyncResult(r)
	prev := newestContainer(containers, name)
	// The backoff counts from the newest run that exited (as the kubelet's doBackOff): a container
	// killed for its liveness probe restarts through it too.
	if wait, msg := s.DoBackOff(pod, newestExited(containers, name)); wait {
		s.Recorder.Eventf(obj, EventTypeWarning, BackOffStartContainer, "Back-off restarting failed container %s in pod %s", name, pod.FullName())
		r.Fail(ErrCrashLoopBackOff, msg)
		return
	}
	if s.Puller != nil {
		if _, err := s.Puller.PullImage(ctx, PullRequest{Image: ImageSpec{Image: spec.Config.GetImage().GetImage()},
			PullPolicy: spec.PullPolicy, Auths: pod.Auths, Object: obj}); err != nil {
			var pe *PullError
			reason := ErrImagePull
			if errors.As(err, &pe) {
				reason = pe.Reason
			}
			r.Fail(reason, err.Error())
			return
		}
	}
	cfg, err := s.containerConfig(ctx, pod, &spec)
	if err != nil {
		s.Recorder.Eventf(obj, EventTypeWarning, FailedToCreateContainer, "Error: %v", err)
		r.FailErr(ErrCreateContainerConfig, err)
		return
	}
	var attempt uint32
	if prev != nil {
		attempt = prev.Attempt + 1
	}
	cfg.Metadata.Attempt = attempt
	cfg.LogPath = filepath.Join(name, strconv.FormatUint(uint64(attempt), 10)+".log")
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	cfg.Labels[LabelSpecHash] = spec.SpecHashLabel()
	cfg.Labels[LabelContainerType] = typ
	id, err := s.Runtime.CreateContainer(ctx, sandboxID, cfg)
	if err != nil {
		s.Recorder.Eventf(obj, EventTypeWarning, FailedToCreateContainer, "Error: %v", err)
		r.FailErr(ErrCreateContainer, err)
		return
	}
	s.Recorder.Eventf(obj, EventTypeNormal, CreatedContainer, "Created container %s", name)
	if err := s.Runtime.StartContainer(ctx, id); err != nil {
		s.Recorder.Eventf(obj, EventTypeWarning, FailedToStartContainer, "Error: %v", err)
		r.FailErr(ErrRunContainer, err)
		return
	}
	s.Recorder.Eventf(obj, EventTypeNormal, StartedContainer, "Started container %s", name)
	s.runPostStart(ctx, r, pod, spec, id)
}
