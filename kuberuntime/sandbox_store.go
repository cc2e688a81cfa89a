package kuberuntime

import (
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// sandboxMetadata is what is stored with the pause container (as a containerd extension) and lets
// the sandbox store be rebuilt after a restart.
type sandboxMetadata struct {
	ID             string    `json:"id"`
	Config         []byte    `json:"config"` // the CRI PodSandboxConfig, protobuf
	RuntimeHandler string    `json:"runtime_handler"`
	RuntimeType    string    `json:"runtime_type"`
	Image          string    `json:"image"`
	CreatedAt      time.Time `json:"created_at"`
	NetNSPath      string    `json:"netns_path,omitempty"`
	IP             string    `json:"ip,omitempty"`
	AdditionalIPs  []string  `json:"additional_ips,omitempty"`
	// NetworkReady is set once CNI ADD finished; a sandbox without it (and not on the host
	// network) was half made when the daemon died.
	NetworkReady bool `json:"network_ready"`
	// GroupedShim: the sandbox has a record in containerd's sandbox store, and its containers'
	// records name it (shim_grouping.go).
	GroupedShim bool `json:"grouped_shim,omitempty"`
	// PauseLess: the sandbox has no pause process; its namespaces are pinned (sandbox_pauseless.go).
	PauseLess bool `json:"pause_less,omitempty"`
}

func init() {
	typeurl.Register(&sandboxMetadata{}, "github.com/cri-shim/cri-shim/legacy", "sandboxMetadata")
}

// podSandbox is one sandbox in the store.
type podSandbox struct {
	// op serializes the state-changing operations (stop, remove) on the sandbox.
	op sync.Mutex

	meta   sandboxMetadata
	config *runtime.PodSandboxConfig
	files  sandbox.Files

	// startMu is held (read) by each StartContainer while it makes its task, and (write) while
	// the sandbox is marked stopping: no task is made in a sandbox being stopped, which must
	// delete its pause task after all the others (shim_grouping.go).
	startMu  sync.RWMutex
	stopping bool
	// taskMu serializes the task creations of a pod without a pause process, whose first task
	// starts the pod's shim (sandbox_pauseless.go), and guards shimUp: that pod's shim runs and
	// has its record in containerd's sandbox store (pod_shim.go).
	taskMu sync.Mutex
	shimUp bool

	// mu guards the fields below it up to exitedAt; only the methods of sandbox_store.go and
	// sandbox_record.go take it.
	mu       sync.RWMutex
	state    legacy.SandboxState
	pid      uint32
	netUp    bool // the network is set up and not torn down yet
	cni      *sandbox.NetworkResult
	exitedAt time.Time
	// criEntry caches the sandbox's CRI list entry (sandbox_list_cri.go).
	criEntry atomic.Pointer[criSandboxEntry]
}

func (s *podSandbox) hostNetwork() bool {
	return s.config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
}

// setStopped marks the sandbox NotReady (its pause process gone) and tells whether it was not
// already: the sandbox's stopped event is sent once, by whoever sees the change first (the stop or
// the exit monitor).
func (s *podSandbox) setStopped(at time.Time) (changed bool) {
	s.mu.Lock()
	changed = s.state != legacy.SandboxStateNotReady
	s.state, s.pid = legacy.SandboxStateNotReady, 0
	if s.exitedAt.IsZero() {
		s.exitedAt = at
	}
	s.mu.Unlock()
	return changed
}

func (s *podSandbox) status() *legacy.SandboxStatus {
	md := s.config.GetMetadata()
	s.mu.RLock()
	defer s.mu.RUnlock()
	return &legacy.SandboxStatus{
		ID: s.meta.ID, Name: md.GetName(), Namespace: md.GetNamespace(), UID: legacy.UID(md.GetUid()),
		Attempt: md.GetAttempt(), State: s.state, CreatedAt: s.meta.CreatedAt,
		IP: s.meta.IP, AdditionalIPs: s.meta.AdditionalIPs, HostNetwork: s.hostNetwork(),
		NetNSPath: s.meta.NetNSPath, Pid: s.pid, RuntimeHandler: s.meta.RuntimeHandler,
		Labels: s.config.GetLabels(), Annotations: s.config.GetAnnotations(), Config: s.config,
	}
}

// nameKey is the unique name of a sandbox: name, namespace, uid and attempt.
func nameKey(md *runtime.PodSandboxMetadata) string {
	return md.GetName() + "_" + md.GetNamespace() + "_" + md.GetUid() + "_" + strconv.FormatUint(uint64(md.GetAttempt()), 10)
}

// sandboxStore is the in-memory index of sandboxes, rebuilt from containerd at start.
type sandboxStore struct {
	mu    sync.RWMutex
	byID  map[string]*podSandbox
	names map[string]string // nameKey -> id (also for sandboxes being created)
}

func newSandboxStore() *sandboxStore {
	return &sandboxStore{byID: map[string]*podSandbox{}, names: map[string]string{}}
}

// reserve claims name for id; a name held by another sandbox is AlreadyExists.
func (st *sandboxStore) reserve(name, id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if other, ok := st.names[name]; ok && other != id {
		return fmt.Errorf("sandbox name %q is reserved for %q: %w", name, other, errdefs.ErrAlreadyExists)
	}
	st.names[name] = id
	return nil
}

// release frees name if id holds it.
func (st *sandboxStore) release(name, id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.names[name] == id {
		delete(st.names, name)
	}
}

func (st *sandboxStore) add(s *podSandbox) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.byID[s.meta.ID] = s
	st.names[nameKey(s.config.GetMetadata())] = s.meta.ID
}

func (st *sandboxStore) remove(s *podSandbox) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.byID, s.meta.ID)
	name := nameKey(s.config.GetMetadata())
	if st.names[name] == s.meta.ID {
		delete(st.names, name)
	}
}

// get finds a sandbox by ID or unique ID prefix: NotFound when none matches, InvalidArgument when
// the prefix is ambiguous.
func (st *sandboxStore) get(id string) (*podSandbox, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return legacy.LookupID(st.byID, "sandbox", id)
}

// exact returns the sandbox with exactly this ID, or nil.
func (st *sandboxStore) exact(id string) *podSandbox {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.byID[id]
}

// list returns every sandbox, newest first.
func (st *sandboxStore) list() []*podSandbox {
	st.mu.RLock()
	out := make([]*podSandbox, 0, len(st.byID))
	for _, s := range st.byID {
		out = append(out, s)
	}
	st.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].meta.CreatedAt.After(out[j].meta.CreatedAt) })
	return out
}
