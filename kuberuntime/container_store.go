package kuberuntime

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/streaming"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/legacy/crilog"
	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Labels and extension of the containerd containers of pod containers (besides LabelKind,
// LabelSandboxID and the pod labels the sandbox uses too).
const (
	LabelContainerName   = "io.cri-shim.container.name"
	LabelContainerHash   = "io.cri-shim.container.hash"
	containerExtensionID = "io.cri-shim.container.metadata"
	// statusFile, in the container's root dir, keeps what changes after creation.
	statusFile = "status.json"
)

// containerMetadata is stored with the containerd container (an extension) and, with the status
// file, rebuilds the container store after a restart.
type containerMetadata struct {
	ID        string    `json:"id"`
	SandboxID string    `json:"sandbox_id"`
	Config    []byte    `json:"config"` // the CRI ContainerConfig, protobuf
	CreatedAt time.Time `json:"created_at"`
	// ImageRef is what the config asked for; ImageID the image's ID; ImageName the containerd
	// image record the snapshot came from; RepoTag and RepoDigest its first names of each kind.
	ImageRef   string `json:"image_ref"`
	ImageID    string `json:"image_id"`
	ImageName  string `json:"image_name"`
	RepoTag    string `json:"repo_tag,omitempty"`
	RepoDigest string `json:"repo_digest,omitempty"`
	LogPath    string `json:"log_path,omitempty"`
	StopSignal string `json:"stop_signal,omitempty"`
	// The user the process runs as, resolved at creation.
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups,omitempty"`
	// CgroupsPath of the container (to find its OOM counter).
	CgroupsPath string `json:"cgroups_path,omitempty"`
	// ImageVolumes are the images mounted into the container (image_volume.go).
	ImageVolumes []imageVolumeRecord `json:"image_volumes,omitempty"`
	// Restore: CreateContainer made the container from a checkpoint, which StartContainer restores
	// (checkpoint_restore.go). Kept in containerd's record, which only the daemon writes: files
	// under root_dir alone never make a restore.
	Restore bool `json:"restore,omitempty"`
}

func init() {
	typeurl.Register(&containerMetadata{}, "github.com/cri-shim/cri-shim/legacy", "containerMetadata")
}

// containerRecord is the mutable part of a container's state, persisted in its status file.
type containerRecord struct {
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	ExitCode   int32     `json:"exit_code"`
	Reason     string    `json:"reason,omitempty"`
	// Message is the runtime's own word on the state (why the start failed).
	Message string `json:"message,omitempty"`
	// TerminationMessage is the content of the termination-message file, read at the exit.
	TerminationMessage string `json:"termination_message,omitempty"`
	// Resources are the container's current resources (after updates), protobuf.
	Resources []byte `json:"resources,omitempty"`
}

// podContainer is one container in the store.
type podContainer struct {
	// op serializes start, stop-and-remove and updates of the container.
	op sync.Mutex

	meta   containerMetadata
	config *runtime.ContainerConfig
	// hash is HashContainer(config), computed once (the config never changes after creation).
	hashOnce sync.Once
	hash     uint64
	// rootDir keeps its status file and image volumes; stateDir its FIFOs.
	rootDir, stateDir string

	// mu guards the fields below it up to taskGone; only the methods of container_record.go take it.
	mu        sync.RWMutex
	state     legacy.ContainerState
	rec       containerRecord
	resources *runtime.LinuxContainerResources
	pid       uint32
	io        *containerIO
	oomKilled bool
	removing  bool
	// exited is closed once the exit of the started task is recorded.
	exited chan struct{}
	// taskGone, set when the exit is handled, is closed once the exited task is deleted.
	taskGone chan struct{}
	// cntr is the containerd container's handle when this daemon created it (StartContainer
	// saves a lookup); nil after a restart.
	cntr containerd.Container
	// rootfs is the mounts of its snapshot when this daemon prepared it (fast_create.go), until its
	// task is created; nil after a restart.
	rootfs []mount.Mount
	// criEntry caches the container's CRI list entry (container_list_cri.go).
	criEntry atomic.Pointer[criListEntry]
}

// containerIO is a running container's stdio: FIFOs read into the CRI log.
type containerIO struct {
	fifos  *cio.FIFOSet
	dio    cio.IO
	log    *crilog.Writer
	copies sync.WaitGroup
	// attach shares the container's stdio with attach clients; the log keeps all output.
	attach *streaming.Stdio
}

// attachStdio is the container's stdio as attach clients see it.
func (c *containerIO) attachStdio() *streaming.Stdio { return c.attach }

// close waits (up to wait) for the output to be drained into the log, then closes everything.
func (c *containerIO) close(wait time.Duration) {
	done := make(chan struct{})
	go func() { c.copies.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(wait):
	}
	if c.dio != nil {
		c.dio.Cancel()
		c.dio.Close()
	}
	if c.log != nil {
		// Close waits a bounded time for what the log's goroutine has still to write.
		if err := c.log.Close(); err != nil && !crilog.IsClosed(err) {
			logrus.WithError(err).WithField("path", c.log.Path()).Warn("container log")
		}
		if n := c.log.Dropped(); n > 0 {
			logrus.WithField("path", c.log.Path()).Warnf("container log: %d entries dropped (the file did not keep up)", n)
		}
	}
	if c.attach != nil {
		c.attach.Close()
	}
}

// configHash is HashContainer of the container's config, computed on first use.
func (c *podContainer) configHash() uint64 {
	c.hashOnce.Do(func() { c.hash = legacy.HashContainer(c.config) })
	return c.hash
}

// saveRecord writes the status file atomically; the caller holds c.mu (read or write).
func (c *podContainer) saveRecordLocked() error {
	rec := c.rec
	if c.resources != nil {
		b, err := marshalProto(c.resources)
		if err != nil {
			return err
		}
		rec.Resources = b
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.rootDir, statusFile), b)
}

func loadRecord(rootDir string) (containerRecord, error) {
	var rec containerRecord
	b, err := os.ReadFile(filepath.Join(rootDir, statusFile))
	if err != nil {
		return rec, err
	}
	err = json.Unmarshal(b, &rec)
	return rec, err
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// metaInMemory is the metadata a podContainer keeps: without the serialized config, which only
// recovery reads (from containerd's record) and podContainer.config holds parsed.
func metaInMemory(m containerMetadata) containerMetadata {
	m.Config = nil
	return m
}

// containerNameKey is the unique name of a container: its sandbox, name and attempt.
func containerNameKey(sandboxID string, md *runtime.ContainerMetadata) string {
	return sandboxID + "/" + md.GetName() + "/" + strconv.FormatUint(uint64(md.GetAttempt()), 10)
}

// containerStore is the in-memory index of containers, rebuilt from containerd at start.
type containerStore struct {
	mu    sync.RWMutex
	byID  map[string]*podContainer
	names map[string]string // containerNameKey -> id (also for containers being created)
}

func newContainerStore() *containerStore {
	return &containerStore{byID: map[string]*podContainer{}, names: map[string]string{}}
}

func (st *containerStore) reserve(name, id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if other, ok := st.names[name]; ok && other != id {
		return fmt.Errorf("container name %q is reserved for %q: %w", name, other, errdefs.ErrAlreadyExists)
	}
	st.names[name] = id
	return nil
}

func (st *containerStore) release(name, id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.names[name] == id {
		delete(st.names, name)
	}
}

func (st *containerStore) add(c *podContainer) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.byID[c.meta.ID] = c
	st.names[containerNameKey(c.meta.SandboxID, c.config.GetMetadata())] = c.meta.ID
}

func (st *containerStore) remove(c *podContainer) {
	st.mu.Lock()
	defer st.mu.Unlock()
	delete(st.byID, c.meta.ID)
	name := containerNameKey(c.meta.SandboxID, c.config.GetMetadata())
	if st.names[name] == c.meta.ID {
		delete(st.names, name)
	}
}

// get finds a container by ID or unique ID prefix.
func (st *containerStore) get(id string) (*podContainer, error) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	return legacy.LookupID(st.byID, "container", id)
}

// list returns every container, newest first.
func (st *containerStore) list() []*podContainer {
	st.mu.RLock()
	out := make([]*podContainer, 0, len(st.byID))
	for _, c := range st.byID {
		out = append(out, c)
	}
	st.mu.RUnlock()
	slices.SortFunc(out, func(a, b *podContainer) int { return b.meta.CreatedAt.Compare(a.meta.CreatedAt) })
	return out
}

// unsorted returns every container, in no particular order.
func (st *containerStore) unsorted() []*podContainer {
	st.mu.RLock()
	defer st.mu.RUnlock()
	out := make([]*podContainer, 0, len(st.byID))
	for _, c := range st.byID {
		out = append(out, c)
	}
	return out
}

// ofSandbox returns the containers of a sandbox, newest first (only those are sorted: the pod
// status cache asks on every container event).
func (st *containerStore) ofSandbox(sandboxID string) []*podContainer {
	var out []*podContainer
	st.mu.RLock()
	for _, c := range st.byID {
		if c.meta.SandboxID == sandboxID {
			out = append(out, c)
		}
	}
	st.mu.RUnlock()
	slices.SortFunc(out, func(a, b *podContainer) int { return b.meta.CreatedAt.Compare(a.meta.CreatedAt) })
	return out
}

// withCtx is a helper for background work that must outlive a request but not the daemon.
func withoutCancel(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), d)
}
