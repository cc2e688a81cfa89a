package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/kuberuntime/cdi"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/kuberuntime/exitmonitor"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/distribution/reference"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels cri-shim puts on the containerd containers it creates. Containers of a pod carry
// LabelKind=KindContainer and LabelSandboxID, so that stopping or removing the pod finds them.
const (
	LabelKind          = "io.cri-shim.kind"
	KindSandbox        = "sandbox"
	KindContainer      = "container"
	LabelSandboxID     = "io.cri-shim.sandbox.id"
	LabelPodName       = "io.cri-shim.pod.name"
	LabelPodNamespace  = "io.cri-shim.pod.namespace"
	LabelPodUID        = "io.cri-shim.pod.uid"
	LabelAttempt       = "io.cri-shim.attempt"
	sandboxExtensionID = "io.cri-shim.sandbox.metadata"
)

// PodNetwork sets a pod's network up and tears it down (CNI); sandbox.Network implements it.
type PodNetwork interface {
	legacy.NetworkStatuser
	Setup(ctx context.Context, id, netnsPath string, config *runtime.PodSandboxConfig) (*sandbox.NetworkResult, error)
	Teardown(ctx context.Context, id, netnsPath string, config *runtime.PodSandboxConfig) error
}

// Options configure the containerd runtime.
type Options struct {
	// Namespace is the containerd namespace of everything cri-shim creates.
	Namespace string
	// RootDir keeps per-pod files that survive a restart (<RootDir>/sandboxes/<id>).
	RootDir string
	// StateDir keeps what does not survive a reboot: network namespaces (<StateDir>/netns) and
	// /dev/shm mounts (<StateDir>/sandboxes/<id>).
	StateDir string
	// SandboxImage is the pause image every sandbox runs.
	SandboxImage string
	// Images finds and pulls the sandbox image (required).
	Images legacy.ImageBackend
	// Network is the pod network (CNI); nil: pods can only use the host's network.
	Network PodNetwork
	// RuntimeHandlers the pods may name; the first is the default. Empty: runc.
	RuntimeHandlers []legacy.RuntimeHandler
	// HandlerSpecs are what the handlers, by name, do to their pods' specs (handler_spec.go);
	// a handler without one changes nothing.
	HandlerSpecs map[string]HandlerSpec
	// ShmSize is the size of a pod's /dev/shm; 0: 64 MiB.
	ShmSize int64
	// MaxCheckpointSize bounds the bytes a restore copies from a checkpoint into the container's
	// directory; 0: only the checkpoint's own size bounds it.
	MaxCheckpointSize int64
	// ExecIODrain is how long the output of an exec'd process may take to arrive after the
	// process exited (exec_io.go); 0: DefaultExecIODrain.
	ExecIODrain time.Duration
	// CgroupDriver names the cgroups of pods and containers and is given to the runc handlers
	// (SystemdCgroup); the zero value is cgroupfs.
	CgroupDriver cgroupdriver.Driver
	// EnableCDI injects the CDI devices containers ask for (cdi_devices, cdi.k8s.io/ annotations)
	// and NRI plugins add, from the spec files of CDISpecDirs (empty: cdi.DefaultSpecDirs). Off,
	// the requests are ignored, as containerd does with enable_cdi off.
	EnableCDI   bool
	CDISpecDirs []string
	// PauseLessPods runs the pods whose containers share no PID namespace without a pause
	// process: their namespaces are pinned instead (sandbox_pauseless.go).
	PauseLessPods bool
}

// ContainerdRuntime is the model's Runtime implemented on containerd.
type ContainerdRuntime struct {
	client    *containerd.Client
	namespace string
	network   legacy.NetworkStatuser
	opts      Options
	net       PodNetwork
	images    legacy.ImageBackend
	handlers  map[string]legacy.RuntimeHandler
	// features caches HandlerFeatures by handler name (runc_features.go).
	featuresMu sync.Mutex
	features   map[string]legacy.HandlerFeatures
	sandboxes  *sandboxStore
	// podStatus feeds the pod status cache (pod_status_cache.go).
	podStatus *podStatusFeeder

	// cdi resolves CDI devices (cdi.go); nil when CDI is off.
	cdi *cdi.Registry
	// imgCache remembers images' configs and unpacked layers (image_cache.go).
	imgCache imageCache
	// userLookups are the users looked up in images' files (containerspec.UserCache).
	userLookups containerspec.UserCache
	// pauseRootfs are the shared pause rootfs dirs (pause_rootfs.go).
	pauseRootfs pauseRootfsSet
	// bg is the context of background work (exit monitors); cancelled by Close.
	bg       context.Context
	bgCancel context.CancelFunc
	wg       sync.WaitGroup
	// exits dispatches the task exits of containerd's events (exit_monitor.go).
	exitsInit sync.Once
	exits     *exitmonitor.Monitor
	// execStarted, when set (by tests), is told the ID of every exec process created.
	execStarted func(execID string)

	// The state of the runtime's parts, made on first use (a runtime made by a struct literal in
	// a test works too) and dropped with the runtime.
	ctrsOnce       sync.Once
	ctrsState      *containerState // container_manager.go
	removalsOnce   sync.Once
	removalsState  *pendingRemovals // container_remove.go
	eventsOnce     sync.Once
	eventHub       *legacy.EventHub         // events_hub.go
	nriAdaptation  atomic.Pointer[nriState] // nri.go; nil when NRI is off
	statsOnce      sync.Once
	statsState     *statsCollector // stats_collector.go
	podResourceMap sync.Map        // sandbox_update.go: sandbox ID -> podResources
	pullerOnce     sync.Once
	puller         legacy.ImagePuller // sync_pod_runtime.go: SyncPod's, so its backoff lasts across calls
}

var _ legacy.Runtime = (*ContainerdRuntime)(nil)

// NewContainerdRuntime returns the Runtime on a connected containerd client and rebuilds its
// sandbox store from containerd and the root dir.
func NewContainerdRuntime(ctx context.Context, client *containerd.Client, opts Options) (*ContainerdRuntime, error) {
	if opts.Namespace == "" {
		return nil, fmt.Errorf("containerd runtime: no namespace")
	}
	if opts.RootDir == "" || opts.StateDir == "" {
		return nil, fmt.Errorf("containerd runtime: root and state dirs are required")
	}
	if opts.SandboxImage == "" {
		return nil, fmt.Errorf("containerd runtime: no sandbox image")
	}
	named, err := reference.ParseDockerRef(opts.SandboxImage)
	if err != nil {
		return nil, fmt.Errorf("sandbox image %q: %w", opts.SandboxImage, err)
	}
	opts.SandboxImage = named.String()
	if len(opts.RuntimeHandlers) == 0 {
		opts.RuntimeHandlers = DefaultRuntimeHandlers()
	}
	r := &ContainerdRuntime{
		client:    client,
		namespace: opts.Namespace,
		opts:      opts,
		net:       opts.Network,
		images:    opts.Images,
		handlers:  runtimeHandlers(opts),
		sandboxes: newSandboxStore(),
		podStatus: newPodStatusFeeder(),
	}
	if opts.Network != nil {
		r.network = opts.Network
	}
	if r.images == nil {
		return nil, errors.New("legacy: Options.Images is required")
	}
	for _, d := range []string{r.sandboxesRoot(), r.sandboxesState(), r.netnsDir()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return nil, err
		}
	}
	r.bg, r.bgCancel = context.WithCancel(namespaces.WithNamespace(context.Background(), opts.Namespace))
	// Task exits come from one event subscription (exit_monitor.go), in effect before any task
	// is watched.
	r.startExitMonitor()
	if err := r.recover(ctx); err != nil {
		r.bgCancel()
		return nil, fmt.Errorf("recover sandboxes: %w", err)
	}
	// The containers of the pods (container_*.go): their store, and the sandbox hooks.
	if err := r.initContainers(ctx); err != nil {
		r.bgCancel()
		return nil, fmt.Errorf("recover containers: %w", err)
	}
	// A shared pause rootfs that an earlier run left mounted (killed) and no pod uses any more.
	r.releasePauseRootfsAtStart(ctx)
	r.startPodStatusCache()
	r.stats() // the stats collector reads from the start: a first stats call reads nothing (stats_list_cri.go)
	r.startCDI()
	return r, nil
}

// Close stops the runtime's background work; containers keep running. The shared pause rootfs is
// unmounted when no pod's pause uses it (pause_rootfs.go).
func (r *ContainerdRuntime) Close() error {
	// No pod is given the shared pause rootfs from now on; those given it finish first.
	drained := r.closePauseRootfs(pauseRootfsDrainTimeout)
	r.bgCancel()
	r.wg.Wait()
	r.releasePauseRootfsAtClose(drained)
	r.stopCDI()
	return nil
}

// Client is the containerd client the runtime works with.
func (r *ContainerdRuntime) Client() *containerd.Client { return r.client }

// Namespace is the containerd namespace the runtime works in.
func (r *ContainerdRuntime) Namespace() string { return r.namespace }

// HasRuntimeHandler tells whether pods may name handler ("" is the default).
func (r *ContainerdRuntime) HasRuntimeHandler(handler string) bool {
	_, ok := r.handlers[handler]
	return ok
}

func (r *ContainerdRuntime) withNS(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, r.namespace)
}

func (r *ContainerdRuntime) sandboxesRoot() string { return filepath.Join(r.opts.RootDir, "sandboxes") }

func (r *ContainerdRuntime) sandboxesState() string {
	return filepath.Join(r.opts.StateDir, "sandboxes")
}

func (r *ContainerdRuntime) netnsDir() string { return filepath.Join(r.opts.StateDir, "netns") }

// podNetNSPath is where the network namespace of sandbox id is pinned (sandbox.NewNetNS's dir/id).
func (r *ContainerdRuntime) podNetNSPath(id string) string { return filepath.Join(r.netnsDir(), id) }

// SandboxRootDir is where the files of sandbox id that survive a restart live (hostname, hosts,
// resolv.conf), for the containers that mount them.
func (r *ContainerdRuntime) SandboxRootDir(id string) string {
	return filepath.Join(r.sandboxesRoot(), id)
}

// SandboxStateDir is where the volatile files of sandbox id live (its /dev/shm mount).
func (r *ContainerdRuntime) SandboxStateDir(id string) string {
	return filepath.Join(r.sandboxesState(), id)
}
