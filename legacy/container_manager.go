package legacy

import (
	"context"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerManager runs the containers of pod sandboxes. Errors wrap the
// the model's error classes (error_classes.go) and sentinels.
type ContainerManager interface {
	// CreateContainer creates a container in the ready sandbox sandboxID and returns its ID.
	CreateContainer(ctx context.Context, sandboxID string, config *runtime.ContainerConfig) (string, error)
	// StartContainer starts a created container.
	StartContainer(ctx context.Context, id string) error
	// StopContainer stops a running container: its stop signal, then SIGKILL after timeout (0:
	// at once). Stopping a container that does not run succeeds.
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	// RemoveContainer removes a container, killing it when it runs; an absent one is no error.
	RemoveContainer(ctx context.Context, id string) error
	// ContainerStatus returns the status of the container id (or a unique prefix of it).
	ContainerStatus(ctx context.Context, id string, verbose bool) (*ContainerDetails, error)
	// ListContainers returns the containers that match filter (nil: all), newest first.
	ListContainers(ctx context.Context, filter *ContainerFilter) ([]*ContainerDetails, error)
	// UpdateContainerResources changes the resources of a created or running container.
	UpdateContainerResources(ctx context.Context, id string, resources *runtime.LinuxContainerResources) error
	// ExecSync runs cmd in the running container and returns its output (each stream capped at
	// MaxExecSyncOutput) and exit code; timeout 0 means none.
	ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecSyncResult, error)
	// ReopenContainerLog reopens the log file of a running container (after rotation).
	ReopenContainerLog(ctx context.Context, id string) error
}

// ContainerDetails is a container's status as CRI reports it: the model's ContainerStatus with
// what CRI adds.
type ContainerDetails struct {
	ContainerStatus
	// RuntimeMessage is the runtime's own message (why the start failed), without the
	// termination message that ContainerStatus.Message ends with: what the CRI status reports,
	// since the kubelet reads the termination-message file itself and appends it.
	RuntimeMessage string
	SandboxID      string
	Attempt        uint32
	// Config is the CRI config the container was created with.
	Config *runtime.ContainerConfig
	// Mounts are the config's mounts as the status reports them (image volumes with the image's
	// ID); nil means the config's.
	Mounts []*runtime.Mount
	// ImageName is the image as the config named it.
	ImageName string
	// Resources are the container's current resources.
	Resources *runtime.LinuxContainerResources
	// UID, GID and Groups of the container's process.
	UID    uint32
	GID    uint32
	Groups []uint32
	// Pid of the running process, 0 otherwise.
	Pid uint32
	// Info is the verbose information, filled only when asked for.
	Info map[string]string
}

// ContainerFilter selects containers: every set field must match.
type ContainerFilter struct {
	// ID is a container ID or a prefix of one.
	ID string
	// State, when not nil, is the state wanted.
	State *ContainerState
	// SandboxID is a sandbox ID or a prefix of one.
	SandboxID string
	// Labels must all be present with these values.
	Labels map[string]string
}

// Match tells whether d passes the filter.
func (f *ContainerFilter) Match(d *ContainerDetails) bool {
	if f == nil {
		return true
	}
	if f.ID != "" && !strings.HasPrefix(d.ID.ID, f.ID) {
		return false
	}
	if f.State != nil && d.State != *f.State {
		return false
	}
	if f.SandboxID != "" && !strings.HasPrefix(d.SandboxID, f.SandboxID) {
		return false
	}
	labels := d.Config.GetLabels()
	for k, v := range f.Labels {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// ExecSyncResult is the outcome of ExecSync.
type ExecSyncResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// MaxExecSyncOutput caps each output stream of ExecSync (16 MiB, as the kubelet's limit).
const MaxExecSyncOutput = 16 << 20
