package standalone

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
)

// Options configure the standalone pods manager.
type Options struct {
	// Dir is the watched manifests directory (created when missing).
	Dir string
	// StateDir holds the pod records (events) the CLI reads: <StateDir>/standalone/pods.
	StateDir string
	// RecursiveReadOnly tells whether the runtime applies recursive read-only mounts
	// (ConvertOptions.RecursiveReadOnly).
	RecursiveReadOnly func() bool
	// VolumeRoot holds the pods' emptyDir volumes.
	VolumeRoot string
	// SeccompRoot is the dir of the Localhost seccomp profiles manifests name (empty: Localhost
	// profiles are refused).
	SeccompRoot string
	// HostResolvConf is the host's resolv.conf, the base of a pod's DNS under the policies that
	// use the node's (the same file the runtime gives a sandbox without a DNS config); default
	// /etc/resolv.conf.
	HostResolvConf string
	// PodLogRoot holds the pods' log directories (default /var/log/pods).
	PodLogRoot string
	// Runtime runs the pods.
	Runtime legacy.PodRuntime
	// Cache is the runtime's pod status cache; its GetNewerThan drives each pod's sync. Nil:
	// the pods are read from the runtime every ResyncInterval.
	Cache legacy.Cache
	// Images pulls the images (through an ImagePuller with its backoff).
	Images legacy.ImageBackend
	// MaxParallelPulls bounds the pulls at once (0: unlimited).
	MaxParallelPulls int
	// GC removes the dead containers of the standalone pods by GCPolicy every GCInterval; nil:
	// no GC.
	GC         legacy.GCRuntime
	GCPolicy   legacy.ContainerGCPolicy
	GCInterval time.Duration
	// Backoff is the crash-loop backoff (nil: 10 s doubling to 300 s).
	Backoff *legacy.Backoff
	// ScanInterval is how often the directory is read (default 1 s).
	ScanInterval time.Duration
	// ResyncInterval bounds the wait for a newer status (default 2 s).
	ResyncInterval time.Duration
}

// Manager runs the pods of the manifests directory: one worker per pod syncs it through the
// model's SyncPod whenever the status cache has a newer status of it, probes its containers, and
// kills and removes it when its manifest goes.
type Manager struct {
	opts    Options
	syncer  *legacy.PodSyncer
	records *Records

	mu        sync.Mutex
	workers   map[string]*worker // namespace/name
	unhealthy map[string]bool    // container IDs that failed liveness
	files     map[string]fileState
	// scanned is set once the manifests directory has been read.
	scanned atomic.Bool
}

// fileState is the last content seen of a manifest file.
type fileState struct {
	sum [32]byte
	pod *Pod
	err error
}

type worker struct {
	current atomic.Pointer[Pod]
	cancel  context.CancelFunc
	done    chan struct{}
	// probes by container ID; only the worker's goroutine touches it.
	probes map[string][]*probeWorker
	// fsGroupApplied is the fsGroup given to each emptyDir (volumes.go); only the worker's
	// goroutine touches it.
	fsGroupApplied map[string]int64
}

func (w *worker) pod() *Pod { return w.current.Load() }

// New returns a manager; Run starts it.
func New(opts Options) (*Manager, error) {
	if opts.Dir == "" {
		return nil, errors.New("standalone: no manifests directory")
	}
	if opts.Runtime == nil {
		return nil, errors.New("standalone: no runtime")
	}
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = time.Second
	}
	if opts.HostResolvConf == "" {
		opts.HostResolvConf = "/etc/resolv.conf"
	}
	if opts.ResyncInterval <= 0 {
		opts.ResyncInterval = 2 * time.Second
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = time.Minute
	}
	m := &Manager{opts: opts, records: NewRecords(opts.StateDir, nil), workers: map[string]*worker{},
		unhealthy: map[string]bool{}, files: map[string]fileState{}}
	var puller legacy.ImagePuller
	if opts.Images != nil {
		puller = legacy.NewImagePuller(m.records, opts.Images, nil, legacy.WithMaxParallelPulls(opts.MaxParallelPulls))
	}
	m.syncer = legacy.NewPodSyncer(opts.Runtime, puller, m.records, opts.Backoff)
	// The containers' subPaths are mounted before each is created, the sandbox's DNS follows
	// the pod's dnsPolicy (runtime_helper.go).
	m.syncer.Helper = runtimeHelper{m: m}
	// The containers' lifecycle hooks: exec through the runtime, httpGet to the pod's IP.
	m.syncer.Hooks = legacy.NewHandlerRunner(opts.Runtime, nil, legacy.PodIPFromRuntime(opts.Runtime))
	m.syncer.Unhealthy = func(_ *legacy.PodSpec, id string) bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.unhealthy[id]
	}
	return m, nil
}

// Records returns the pods' records (events, readiness).
func (m *Manager) Records() *Records { return m.records }

// EnsureDir creates the manifests directory (0700) when missing and refuses one that others may
// write to: a manifest there runs privileged containers.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("static_pods_dir: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("static_pods_dir: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("static_pods_dir: %s is not a directory", dir)
	}
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("static_pods_dir: %s is writable by group or others (mode %04o): refusing to run pods from it", dir, st.Mode().Perm())
	}
	return nil
}

// Run watches the directory and runs the pods until ctx ends. The pods keep running when the
// manager stops (a restarted daemon adopts them); only a removed manifest removes its pod.
func (m *Manager) Run(ctx context.Context) error {
	if err := EnsureDir(m.opts.Dir); err != nil {
		return err
	}
	if m.opts.VolumeRoot != "" {
		if err := ensurePrivateDir(m.opts.VolumeRoot); err != nil {
			return fmt.Errorf("standalone volume root: %w", err)
		}
	}
	logrus.WithField("dir", m.opts.Dir).Info("running standalone pods from the manifests directory")
	var wg sync.WaitGroup
	if m.opts.GC != nil {
		gc, err := legacy.NewContainerGC(&podsGCView{rt: m.opts.GC, m: m}, m.opts.GCPolicy)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() { defer wg.Done(); gc.Run(ctx, m.opts.GCInterval) }()
	}
	t := time.NewTicker(m.opts.ScanInterval)
	defer t.Stop()
	for {
		m.scan(ctx)
		select {
		case <-ctx.Done():
			m.mu.Lock()
			ws := make([]*worker, 0, len(m.workers))
			for _, w := range m.workers {
				ws = append(ws, w)
			}
			m.mu.Unlock()
			for _, w := range ws {
				w.cancel()
				<-w.done
			}
			wg.Wait()
			return nil
		case <-t.C:
		}
	}
}

// readDir reads the manifests: *.yaml, *.yml and *.json, hidden files (temporary ones) left out.
func (m *Manager) readDir() map[string]*Pod {
	entries, err := os.ReadDir(m.opts.Dir)
	if err != nil {
		logrus.WithError(err).Warn("read static_pods_dir")
		return nil
	}
	pods := map[string]*Pod{}
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		ext := filepath.Ext(name)
		if e.IsDir() || strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml" && ext != ".json") {
			continue
		}
		path := filepath.Join(m.opts.Dir, name)
		seen[path] = true
		data, err := os.ReadFile(path)
		if err != nil {
			logrus.WithError(err).WithField("manifest", path).Warn("read manifest")
			continue
		}
		sum := sha256.Sum256(data)
		fs, ok := m.files[path]
		if !ok || fs.sum != sum {
			prev := fs.pod
			fs = fileState{sum: sum}
			var parsed *Pod
			pod, err := ParseManifest(data)
			if err == nil {
				parsed, err = Convert(pod, path, ConvertOptions{PodLogRoot: m.opts.PodLogRoot, VolumeRoot: m.opts.VolumeRoot,
					SeccompRoot: m.opts.SeccompRoot, UsernsHostID: usernsAllocator{root: m.opts.VolumeRoot}.hostID,
					RecursiveReadOnly: m.opts.RecursiveReadOnly})
			}
			if err != nil {
				fs.err = err
				if prev != nil {
					// A broken edit does not take a running pod down: the last valid spec stays.
					logrus.WithError(err).WithFields(logrus.Fields{"manifest": path, "pod": prev.Key()}).Warn("invalid pod manifest: keeping the pod's last valid spec")
					m.records.Eventf(prev.Spec.EventObject(), legacy.EventTypeWarning, legacy.FailedValidation, "Invalid manifest %s, the last valid spec stays: %v", path, err)
					parsed = prev
				} else {
					logrus.WithError(err).WithField("manifest", path).Warn("invalid pod manifest: ignored")
				}
			}
			fs.pod = parsed
			m.files[path] = fs
		}
		if fs.pod == nil {
			continue
		}
		if other, dup := pods[fs.pod.Key()]; dup {
			logrus.WithFields(logrus.Fields{"manifest": path, "other": other.Source, "pod": fs.pod.Key()}).Warn("two manifests name the same pod: the second is ignored")
			continue
		}
		pods[fs.pod.Key()] = fs.pod
	}
	for path := range m.files {
		if !seen[path] {
			delete(m.files, path)
		}
	}
	return pods
}

// scan brings the workers in line with the directory and removes the standalone pods no manifest
// names (also those left from before a restart).
func (m *Manager) scan(ctx context.Context) {
	pods := m.readDir()
	if pods == nil {
		return
	}
	m.mu.Lock()
	var gone []*worker
	for key, w := range m.workers {
		p, ok := pods[key]
		if !ok || p.UID != w.pod().UID {
			gone = append(gone, w)
			delete(m.workers, key)
		}
	}
	m.mu.Unlock()
	for _, w := range gone {
		m.removePod(ctx, w)
	}
	m.mu.Lock()
	uids := map[legacy.UID]bool{}
	for key, p := range pods {
		uids[p.UID] = true
		if w, ok := m.workers[key]; ok {
			if w.pod() != p {
				w.current.Store(p)
				m.records.Add(p)
				logrus.WithField("pod", key).Info("standalone pod manifest changed")
			}
			continue
		}
		wctx, cancel := context.WithCancel(ctx)
		w := &worker{cancel: cancel, done: make(chan struct{}), probes: map[string][]*probeWorker{}, fsGroupApplied: map[string]int64{}}
		w.current.Store(p)
		m.workers[key] = w
		m.records.Add(p)
		logrus.WithFields(logrus.Fields{"pod": key, "uid": p.UID, "manifest": p.Source}).Info("standalone pod added")
		go m.runWorker(wctx, w)
	}
	m.mu.Unlock()
	m.scanned.Store(true)
	// Standalone pods of no manifest (their manifest went while the daemon was down).
	sandboxes, err := m.opts.Runtime.ListPodSandbox(ctx, &legacy.SandboxFilter{Labels: map[string]string{LabelOwner: OwnerValue}})
	if err != nil {
		return
	}
	for _, sb := range sandboxes {
		if uids[sb.UID] {
			continue
		}
		logrus.WithFields(logrus.Fields{"sandbox": sb.ID, "pod": sb.Namespace + "/" + sb.Name}).Info("removing a standalone pod whose manifest is gone")
		if err := m.opts.Runtime.RemovePodSandbox(ctx, sb.ID); err != nil {
			logrus.WithError(err).WithField("sandbox", sb.ID).Warn("remove standalone pod")
			uids[sb.UID] = true // its containers may still use its volumes
		}
	}
	m.removeOrphanVolumes(uids)
}

// removeOrphanVolumes removes the volume dirs (with their subPath mounts) of the pods no manifest
// names: their pod was removed above, or went while the daemon was down.
func (m *Manager) removeOrphanVolumes(uids map[legacy.UID]bool) {
	if m.opts.VolumeRoot == "" {
		return
	}
	entries, err := os.ReadDir(m.opts.VolumeRoot)
	if err != nil {
		return
	}
	for _, e := range entries {
		if uids[legacy.UID(e.Name())] {
			continue
		}
		dir := filepath.Join(m.opts.VolumeRoot, e.Name())
		logrus.WithField("dir", dir).Info("removing the volumes of a standalone pod whose manifest is gone")
		if err := removeVolumes(dir); err != nil {
			logrus.WithError(err).Warn("remove standalone pod volumes")
		}
	}
}

// removePod stops the pod's worker, then kills the pod and removes its sandboxes, containers,
// volumes and record.
func (m *Manager) removePod(ctx context.Context, w *worker) {
	w.cancel()
	<-w.done
	pod := w.pod()
	obj := pod.Spec.EventObject()
	log := logrus.WithField("pod", pod.Key())
	st, err := m.opts.Runtime.GetPodStatus(ctx, pod.UID, pod.Name, pod.Namespace)
	if err == nil {
		for _, c := range pod.Spec.Containers {
			m.records.Eventf(obj, legacy.EventTypeNormal, legacy.KillingContainer, "Stopping container %s", c.Config.GetMetadata().GetName())
		}
		// The containers' preStop hooks run first, within the pod's grace period.
		if res := m.syncer.KillPod(ctx, pod.Spec, st); res.Error() != nil {
			log.WithError(res.Error()).Warn("kill standalone pod")
		}
		for _, sb := range st.SandboxStatuses {
			if err := m.opts.Runtime.RemovePodSandbox(ctx, sb.ID); err != nil {
				log.WithError(err).WithField("sandbox", sb.ID).Warn("remove standalone pod sandbox")
			}
		}
	}
	if m.opts.VolumeRoot != "" {
		if err := removeVolumes(filepath.Join(m.opts.VolumeRoot, string(pod.UID))); err != nil {
			log.WithError(err).Warn("remove standalone pod volumes")
		}
	}
	for _, c := range append(append([]legacy.ContainerSpec{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		m.syncer.Backoff.Reset(string(pod.UID) + "/" + c.Config.GetMetadata().GetName())
	}
	m.records.Remove(pod.Namespace, pod.Name)
	log.Info("standalone pod removed")
}

func (m *Manager) setUnhealthy(id string, v bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v {
		m.unhealthy[id] = true
	} else {
		delete(m.unhealthy, id)
	}
}

// runWorker syncs the pod whenever the cache has a status newer than the last sync (the runtime's
// events and its relist make one at least every second), until ctx ends.
func (m *Manager) runWorker(ctx context.Context, w *worker) {
	defer close(w.done)
	defer func() {
		for id, ps := range w.probes {
			for _, p := range ps {
				p.stop()
			}
			m.setUnhealthy(id, false)
		}
	}()
	var lastSync time.Time
	var lastErr string
	for {
		pod := w.pod()
		status, err := m.waitStatus(ctx, pod, lastSync)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			logrus.WithError(err).WithField("pod", pod.Key()).Warn("standalone pod status")
			select {
			case <-ctx.Done():
				return
			case <-time.After(m.opts.ResyncInterval):
			}
			continue
		}
		pod = w.pod() // the newest spec
		makeEmptyDirs(pod.EmptyDirs, pod.FSGroup, pod.FSGroupChangePolicy, w.fsGroupApplied)
		res := m.syncer.SyncPod(ctx, pod.Spec, status)
		lastSync = time.Now()
		msg := ""
		if err := res.Error(); err != nil {
			msg = err.Error()
		}
		if msg != lastErr {
			if msg != "" && !onlyBackoff(res) {
				logrus.WithField("pod", pod.Key()).Warn("standalone pod sync: " + msg)
			}
			m.records.SetSyncError(pod.Namespace, pod.Name, msg)
			lastErr = msg
		}
		m.updateProbes(ctx, w, pod)
	}
}

// onlyBackoff tells whether every failure of res is a backoff (expected while crash-looping).
func onlyBackoff(res legacy.PodSyncResult) bool {
	if res.SyncError != nil {
		return false
	}
	for _, r := range res.SyncResults {
		if r.Error != nil && !errors.Is(r.Error, legacy.ErrCrashLoopBackOff) && !errors.Is(r.Error, legacy.ErrImagePullBackOff) {
			return false
		}
	}
	return true
}

// waitStatus returns the pod's status once newer than since: from the cache (bounded by
// ResyncInterval), else read from the runtime.
func (m *Manager) waitStatus(ctx context.Context, pod *Pod, since time.Time) (*legacy.PodStatus, error) {
	if m.opts.Cache != nil {
		wctx, cancel := context.WithTimeout(ctx, m.opts.ResyncInterval)
		status, err := m.opts.Cache.GetNewerThanContext(wctx, pod.UID, since)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err == nil && status != nil {
			if status.Name == "" {
				status.Name, status.Namespace = pod.Name, pod.Namespace
			}
			return status, nil
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
	} else if !since.IsZero() {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(m.opts.ResyncInterval):
		}
	}
	return m.opts.Runtime.GetPodStatus(ctx, pod.UID, pod.Name, pod.Namespace)
}

// updateProbes runs the probes of the pod's running containers and stops those of containers
// that no longer run.
func (m *Manager) updateProbes(ctx context.Context, w *worker, pod *Pod) {
	running := map[string]*legacy.ContainerDetails{}
	state := legacy.ContainerStateRunning
	cs, err := m.opts.Runtime.ListContainers(ctx, &legacy.ContainerFilter{State: &state,
		Labels: map[string]string{labelPodUID: string(pod.UID), LabelOwner: OwnerValue}})
	if err != nil {
		return
	}
	runningNames := map[string]bool{}
	for _, c := range cs {
		running[c.ID.ID] = c
		runningNames[c.Name] = true
	}
	for _, c := range pod.Spec.Containers {
		if name := c.Config.GetMetadata().GetName(); !runningNames[name] {
			m.records.SetReady(pod.Namespace, pod.Name, name, false)
		}
	}
	for id, ps := range w.probes {
		if _, ok := running[id]; !ok {
			for _, p := range ps {
				p.stop()
			}
			delete(w.probes, id)
			m.setUnhealthy(id, false)
		}
	}
	hosts := map[string]string{}
	for id, c := range running {
		if _, ok := w.probes[id]; ok {
			continue
		}
		probes := pod.Probes[c.Name]
		hasReadiness := false
		for _, p := range probes {
			hasReadiness = hasReadiness || p.Kind == ProbeReadiness
		}
		// Without a readiness probe a running container is ready; with one, not until it passes.
		m.records.SetReady(pod.Namespace, pod.Name, c.Name, !hasReadiness)
		w.probes[id] = []*probeWorker{}
		if len(probes) == 0 {
			continue
		}
		host, ok := hosts[c.SandboxID]
		if !ok {
			if sb, err := m.opts.Runtime.PodSandboxStatus(ctx, c.SandboxID, false); err == nil {
				host = sb.IP
				if sb.HostNetwork || host == "" && pod.HostNetwork {
					host = "127.0.0.1"
				}
			}
			hosts[c.SandboxID] = host
		}
		for _, p := range probes {
			pctx, cancel := context.WithCancel(ctx)
			pw := &probeWorker{cancel: cancel, done: make(chan struct{})}
			go func(p Probe, name string, t probeTarget) {
				defer close(pw.done)
				m.runProbes(pctx, w, name, p, t)
			}(p, c.Name, probeTarget{containerID: id, host: host})
			w.probes[id] = append(w.probes[id], pw)
		}
	}
}

// Pods returns the pods of the manifests, by namespace/name.
func (m *Manager) Pods() map[string]*Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]*Pod{}
	for k, w := range m.workers {
		out[k] = w.pod()
	}
	return out
}

// podsGCView is the runtime's GC view restricted to the containers of the standalone pods: their
// GC policy never touches what a kubelet owns.
type podsGCView struct {
	rt legacy.GCRuntime
	m  *Manager
}

func (v *podsGCView) GCContainers(ctx context.Context) ([]legacy.GCContainer, error) {
	all, err := v.rt.GCContainers(ctx)
	if err != nil {
		return nil, err
	}
	uids := map[legacy.UID]bool{}
	for _, p := range v.m.Pods() {
		uids[p.UID] = true
	}
	var out []legacy.GCContainer
	for _, c := range all {
		if c.PodUID != "" && uids[c.PodUID] {
			out = append(out, c)
		}
	}
	return out, nil
}

func (v *podsGCView) SandboxExists(ctx context.Context, id string) bool {
	return v.rt.SandboxExists(ctx, id)
}

func (v *podsGCView) RemoveGCContainer(ctx context.Context, c legacy.GCContainer) error {
	return v.rt.RemoveGCContainer(ctx, c)
}
