package legacy

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/opencontainers/image-spec/identity"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ContainerManager runs the containers of pod sandboxes. Errors wrap the
// github.com/containerd/errdefs classes and the model's sentinels.
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

var _ ContainerManager = (*ContainerdRuntime)(nil)

// ContainerDetails is a container's status as CRI reports it: the model's ContainerStatus with
// what CRI adds.
type ContainerDetails struct {
	ContainerStatus
	SandboxID string
	Attempt   uint32
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

// containerState is the container manager's part of the runtime, created by initContainers.
type containerState struct {
	store    *containerStore
	unpacked sync.Map // snapshotter + "/" + chainID -> true
}

// ctrs returns the container manager's state of r.
func (r *ContainerdRuntime) ctrs() *containerState {
	r.ctrsOnce.Do(func() { r.ctrsState = &containerState{store: newContainerStore()} })
	return r.ctrsState
}

func (r *ContainerdRuntime) containersRoot() string {
	return filepath.Join(r.opts.RootDir, "containers")
}
func (r *ContainerdRuntime) containersState() string {
	return filepath.Join(r.opts.StateDir, "containers")
}

// containerImage is the image a container runs, resolved from the config's reference.
type containerImage struct {
	// Name is the containerd image record to take the snapshot from.
	Name       string
	ID         string
	RepoTag    string
	RepoDigest string
	Config     imagespec.ImageConfig
	ChainID    string
}

// localImage resolves ref (a name, a digest reference or an image ID) among the local images.
// The image service's index answers when the runtime has one; else containerd's records.
func (r *ContainerdRuntime) localImage(ctx context.Context, ref string) (*containerImage, error) {
	if b, ok := r.images.(*ImageServiceBackend); ok && b.svc != nil {
		img, ok := b.svc.Image(ref)
		if !ok {
			return nil, fmt.Errorf("image %q: %w", ref, errdefs.ErrNotFound)
		}
		ci := &containerImage{ID: img.ID, Config: img.Config.Config, ChainID: img.ChainID}
		if len(img.RepoTags) > 0 {
			ci.RepoTag = img.RepoTags[0]
		}
		if len(img.RepoDigests) > 0 {
			ci.RepoDigest = img.RepoDigests[0]
		}
		switch {
		case ci.RepoTag != "":
			ci.Name = ci.RepoTag
		case ci.RepoDigest != "":
			ci.Name = ci.RepoDigest
		case len(img.Names) > 0:
			ci.Name = img.Names[0]
		default:
			ci.Name = img.ID
		}
		return ci, nil
	}
	img, err := r.client.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		if named, perr := reference.ParseDockerRef(ref); perr == nil {
			img, err = r.client.GetImage(ctx, named.String())
		}
	}
	if err != nil {
		return nil, fmt.Errorf("image %q: %w", ref, err)
	}
	spec, err := img.Spec(ctx)
	if err != nil {
		return nil, fmt.Errorf("image config of %s: %w", ref, err)
	}
	cfg, err := img.Config(ctx)
	if err != nil {
		return nil, fmt.Errorf("image config of %s: %w", ref, err)
	}
	ci := &containerImage{
		Name: img.Name(), ID: cfg.Digest.String(), Config: spec.Config,
		ChainID: identity.ChainID(spec.RootFS.DiffIDs).String(),
	}
	if named, err := reference.ParseNormalizedNamed(img.Name()); err == nil {
		if _, tagged := named.(reference.Tagged); tagged {
			ci.RepoTag = named.String()
		}
		ci.RepoDigest = reference.TrimNamed(named).String() + "@" + img.Target().Digest.String()
	}
	return ci, nil
}

// ensureUnpacked unpacks the image for the snapshotter unless its layers are there.
func (r *ContainerdRuntime) ensureUnpacked(ctx context.Context, img *containerImage, snapshotter string) error {
	key := snapshotter + "/" + img.ChainID
	if _, ok := r.ctrs().unpacked.Load(key); ok {
		return nil
	}
	if _, err := r.client.SnapshotService(snapshotter).Stat(ctx, img.ChainID); err == nil {
		r.ctrs().unpacked.Store(key, true)
		return nil
	}
	cimg, err := r.client.GetImage(ctx, img.Name)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Name, err)
	}
	if err := cimg.Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpack %s: %w", img.Name, err)
	}
	r.ctrs().unpacked.Store(key, true)
	return nil
}

func marshalProto(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

func (r *ContainerdRuntime) loadContainer(ctx context.Context, id string) (containerd.Container, error) {
	return r.client.LoadContainer(ctx, id)
}
