package legacy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/cri-shim/cri-shim/legacy/crilog"
	"github.com/cri-shim/cri-shim/streaming"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Runtime is the model's container runtime: the kubelet's container runtime API of old (its
// pkg/kubelet/container Runtime), modernised: context first, CRI configs for what is created, the
// pod's sandboxes managed in their own right. It tells the runtime's version and status, lists
// pods, kills them, serves their logs, collects dead containers, and pulls, lists and removes
// images; it runs sandboxes (SandboxManager) and commands in containers (ContainerCommandRunner,
// ContainerAttacher). The containers themselves are created and run through a ContainerManager,
// which every Runtime of cri-shim is too. Implementations are safe for concurrent use.
type Runtime interface {
	// Type returns the runtime's type, the scheme of its ContainerIDs.
	Type() string
	// Version returns the version of the runtime engine.
	Version(ctx context.Context) (Version, error)
	// APIVersion returns the version of the runtime's API.
	APIVersion() (Version, error)
	// Status returns the RuntimeReady and NetworkReady conditions.
	Status(ctx context.Context) []RuntimeCondition
	// GetPods returns the pods, their sandboxes and containers; all includes exited ones.
	GetPods(ctx context.Context, all bool) ([]*Pod, error)
	// GetPodStatus returns the status of the pod with that UID, name and namespace, with every
	// sandbox and container of it the runtime knows. An unknown pod gives an empty status.
	GetPodStatus(ctx context.Context, uid UID, name, namespace string) (*PodStatus, error)
	// KillPod stops every sandbox (and so every container) of the running pod.
	KillPod(ctx context.Context, pod Pod) PodSyncResult
	// GetContainerLogs writes the log of container containerID (or a unique prefix of it) to
	// stdout and stderr by opts (nil: all of it); with opts.Follow it returns when ctx ends or the
	// container stops running. NotFound for an unknown container or a missing log file,
	// FailedPrecondition for one without a log path or whose log is not a regular file,
	// InvalidArgument for bad options.
	GetContainerLogs(ctx context.Context, containerID string, opts *LogOptions, stdout, stderr io.Writer) error
	// GarbageCollect removes dead containers by gcPolicy once. allSourcesReady tells that every
	// pod is known (the dead containers of pods that are gone are then removed);
	// evictNonDeletedPods also removes those of pods that stopped (see GCScope).
	GarbageCollect(ctx context.Context, gcPolicy ContainerGCPolicy, allSourcesReady, evictNonDeletedPods bool) error

	SandboxManager
	ImageService
	ContainerCommandRunner
	ContainerAttacher
}

// LogOptions select the part of a container's log GetContainerLogs writes, as the kubelet's
// v1.PodLogOptions do.
type LogOptions = crilog.LogOptions

// ReadContainerLogs is GetContainerLogs over the CRI log file of a container: status tells the
// container's log path and whether it still runs (it is asked again while following).
func ReadContainerLogs(ctx context.Context, status func(ctx context.Context, id string) (*ContainerDetails, error), id string, opts *LogOptions, stdout, stderr io.Writer) error {
	d, err := status(ctx, id)
	if err != nil {
		return err
	}
	if d.LogPath == "" {
		return fmt.Errorf("container %s has no log file: %w", d.ID.ID, ErrFailedPrecondition)
	}
	fullID := d.ID.ID
	running := func() bool {
		d, err := status(ctx, fullID)
		return err == nil && d.State == ContainerStateRunning
	}
	err = crilog.ReadLogs(ctx, d.LogPath, opts, stdout, stderr, running)
	switch {
	case errors.Is(err, crilog.ErrInvalidOptions):
		return fmt.Errorf("%w: %w", err, ErrInvalidArgument)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("log of container %s: %w: %w", fullID, err, ErrNotFound)
	case errors.Is(err, crilog.ErrNotRegular):
		return fmt.Errorf("log of container %s: %w: %w", fullID, err, ErrFailedPrecondition)
	}
	return err
}

// ContainerCommandRunner runs commands in containers and forwards ports of pods.
type ContainerCommandRunner = streaming.ContainerCommandRunner

// ContainerAttacher attaches to the stdio of a container's own process.
type ContainerAttacher = streaming.ContainerAttacher

// SandboxManager runs pod sandboxes: a pause container holding the pod's namespaces, and the pod's
// network. Errors wrap the model's classes (ErrNotFound, ErrAlreadyExists,
// ErrInvalidArgument) and the model's sentinels (ErrSetupNetwork, ErrRunContainer...).
type SandboxManager interface {
	// RunPodSandbox creates and starts a sandbox for config with the named runtime handler ("" is
	// the default) and returns its ID. The result holds the SetupNetwork and StartContainer
	// steps; on failure every step done is undone and the ID is "".
	RunPodSandbox(ctx context.Context, config *runtime.PodSandboxConfig, runtimeHandler string) (string, PodSyncResult)
	// StopPodSandbox stops every container of the sandbox, its pause container, and tears its
	// network down. Stopping a stopped sandbox succeeds.
	StopPodSandbox(ctx context.Context, id string) PodSyncResult
	// RemovePodSandbox removes the sandbox (stopping it first when it runs), its containers and
	// files. Removing an absent sandbox succeeds.
	RemovePodSandbox(ctx context.Context, id string) error
	// PodSandboxStatus returns the status of the sandbox id (or a unique prefix of it); verbose
	// adds Info.
	PodSandboxStatus(ctx context.Context, id string, verbose bool) (*SandboxStatus, error)
	// ListPodSandbox returns the sandboxes that match filter (nil: all).
	ListPodSandbox(ctx context.Context, filter *SandboxFilter) ([]*SandboxStatus, error)
}

// SandboxFilter selects sandboxes: every set field must match.
type SandboxFilter struct {
	// ID is a sandbox ID or a prefix of one.
	ID string
	// State, when not nil, is the state wanted.
	State *SandboxState
	// Labels must all be present with these values.
	Labels map[string]string
}

// Match tells whether s passes the filter.
func (f *SandboxFilter) Match(s *SandboxStatus) bool {
	if f == nil {
		return true
	}
	if f.ID != "" && !strings.HasPrefix(s.ID, f.ID) {
		return false
	}
	if f.State != nil && s.State != *f.State {
		return false
	}
	for k, v := range f.Labels {
		if got, ok := s.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// lookupID finds an object of kind ("sandbox", "container") by its ID or a unique prefix of it:
// InvalidArgument for an empty ID or an ambiguous prefix, NotFound when nothing matches. The
// caller holds whatever lock guards m.
func LookupID[T any](m map[string]T, kind, id string) (T, error) {
	var zero T
	if id == "" {
		return zero, fmt.Errorf("empty %s ID: %w", kind, ErrInvalidArgument)
	}
	if v, ok := m[id]; ok {
		return v, nil
	}
	found, n := zero, 0
	for k, v := range m {
		if strings.HasPrefix(k, id) {
			found, n = v, n+1
		}
	}
	switch n {
	case 0:
		return zero, fmt.Errorf("%s %q: %w", kind, id, ErrNotFound)
	case 1:
		return found, nil
	}
	return zero, fmt.Errorf("%s ID prefix %q is ambiguous: %w", kind, id, ErrInvalidArgument)
}

// RuntimeHandler is a runtime handler pods may name: the containerd runtime (shim) that runs them.
type RuntimeHandler struct {
	// Name the pods use (RuntimeClass handler).
	Name string
	// Type is the containerd runtime type, e.g. io.containerd.runc.v2.
	Type string
	// Snapshotter for the handler's containers; empty: containerd's default.
	Snapshotter string
	// Options are the runtime's options (e.g. *runc options), nil for the defaults.
	Options any
}
