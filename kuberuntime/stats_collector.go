package kuberuntime

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
)

// Sampling of stats: cgroups are read directly (never through the shims), a reading younger
// than statsMaxAge is served again, an older one is read again by the call, and a background
// sweep every statsInterval keeps the readings, the CPU windows (nano cores) and the writable
// layer usage (a du of the snapshot, expensive) current.
var (
	// statsMaxAge bounds the age of a reading a call serves: a reading taken before an answer is
	// at least as old as that answer, so any call one second or more after it finds it too old
	// and reads again, and its answer carries a newer timestamp (crictl stats, and any client
	// that computes rates between two calls, needs that). Calls closer together share readings.
	statsMaxAge        = time.Second
	statsInterval      = 5 * time.Second
	statsLayerInterval = 30 * time.Second
	// statsMinWindow is the shortest window nano cores are normally computed over.
	statsMinWindow = time.Second
	// statsLimitsMaxAge is how long the memory and swap limits read from a cgroup are kept.
	statsLimitsMaxAge = 30 * time.Second
)

// statsCollector samples the cgroups of a runtime's containers and pods.
type statsCollector struct {
	r  *ContainerdRuntime
	fs *cgroupstats.CgroupFS

	// mu guards the reader and the samples.
	mu   sync.Mutex
	rd   *cgroupstats.StatReader
	ctrs map[string]*sampled // by container ID
	pods map[string]*sampled // by sandbox ID
	// pauses are the readings of the sandboxes' pause containers (pods without a cgroup parent).
	pauses map[string]*sampled
	// pauseCgroups are the cgroups of the sandboxes' pause containers.
	pauseCgroups map[string]string
	// entries are the containers' CRI stats entries (stats_list_cri.go), by container ID; conv
	// the server's conversion, known from its first ListCRIContainerStats.
	entries map[string]*criStatsEntry
	conv    atomic.Pointer[statsConv]

	layerMu sync.Mutex
	layers  map[string]*layerUsage // by container ID
	snRoots map[string]string      // snapshotter -> its root directory
	// layerReq asks the background loop to measure a container's layer soon.
	layerReq chan string

	start sync.Once
	// clock is the collector's time (nil: time.Now); tests set a fake one.
	clock func() time.Time
}

// now is the collector's current time: readings are stamped with it and their age measured by it.
func (c *statsCollector) now() time.Time {
	if c.clock != nil {
		return c.clock()
	}
	return time.Now()
}

// sampled is the last reading of a cgroup.
type sampled struct {
	at time.Time
	// limitsAt is when the limits in cg were read.
	limitsAt time.Time
	ok       bool // the cgroup could be read
	cg       cgroupstats.CgroupSample
	win      legacy.CpuWindow
	nano     uint64
	hasNano  bool
	// net is the pod's network (pods only).
	net *legacy.NetworkStats
}

type layerUsage struct {
	at                 time.Time
	snapshotter, key   string
	used, inodes       uint64
	measured, notFound bool
}

// stats returns the stats collector of r, starting its background sweep on first use.
func (r *ContainerdRuntime) stats() *statsCollector {
	r.statsOnce.Do(func() {
		fs := cgroupstats.DetectCgroupFS()
		r.statsState = &statsCollector{
			r: r, fs: fs, rd: fs.Reader(),
			ctrs: map[string]*sampled{}, pods: map[string]*sampled{}, pauses: map[string]*sampled{}, pauseCgroups: map[string]string{},
			entries: map[string]*criStatsEntry{},
			layers:  map[string]*layerUsage{}, snRoots: map[string]string{}, layerReq: make(chan string, 256),
		}
	})
	c := r.statsState
	c.start.Do(func() {
		if r.bg == nil || r.bg.Err() != nil {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			c.loop(r.bg)
		}()
	})
	return c
}

// loop sweeps every container and pod each statsInterval, and measures writable layers each
// statsLayerInterval and when asked.
func (c *statsCollector) loop(ctx context.Context) {
	defer func() {
		c.mu.Lock()
		c.rd.Close()
		c.mu.Unlock()
	}()
	tick := time.NewTicker(statsInterval)
	defer tick.Stop()
	// Containers that start are read soon after (in batches), not at the next sweep. Their
	// events are taken by a goroutine of their own: a slow sweep never makes the hub drop any.
	started := c.watchStarted(ctx)
	var startedBatch <-chan time.Time
	c.refreshLayers(ctx, nil)
	layersAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-started.signal:
			if startedBatch == nil {
				startedBatch = time.After(statsStartedDelay)
			}
		case <-startedBatch:
			c.sampleStarted(started.take())
			startedBatch = nil
		case id := <-c.layerReq:
			ids := []string{id}
			for more := true; more; {
				select {
				case id := <-c.layerReq:
					ids = append(ids, id)
				default:
					more = false
				}
			}
			c.refreshLayers(ctx, ids)
			c.refreshEntries(ids)
		case <-tick.C:
			c.sweep(ctx)
			if time.Since(layersAt) >= statsLayerInterval {
				c.refreshLayers(ctx, nil)
				c.refreshEntries(nil)
				layersAt = time.Now()
			}
		}
	}
}

// sweep samples every running container and ready pod, and forgets the samples of those gone.
// It takes the lock for one container or pod at a time: a stats call waits for one read at most.
func (c *statsCollector) sweep(ctx context.Context) {
	ctrs := c.r.ctrs().store.list()
	sbs := c.r.sandboxes.list()
	now := c.now()
	live := make(map[string]bool, len(ctrs))
	for _, pc := range ctrs {
		live[pc.meta.ID] = true
		c.mu.Lock()
		c.sampleContainerLocked(pc, now)
		c.refreshEntryLocked(pc, now)
		c.mu.Unlock()
	}
	c.mu.Lock()
	for id := range c.ctrs {
		if !live[id] {
			delete(c.ctrs, id)
		}
	}
	for id := range c.entries {
		if !live[id] {
			delete(c.entries, id)
		}
	}
	// Close the cgroup files nothing read during the last two sweeps (stopped containers).
	if c.rd.Gen >= 2 {
		c.rd.CloseUnused(c.rd.Gen - 1)
	} else {
		c.rd.CloseUnused(0)
	}
	c.mu.Unlock()
	livePods := make(map[string]bool, len(sbs))
	for _, sb := range sbs {
		livePods[sb.meta.ID] = true
		c.mu.Lock()
		c.samplePodLocked(ctx, sb, c.r.ctrs().store.ofSandboxIn(ctrs, sb.meta.ID), now)
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.pods {
		if !livePods[id] {
			delete(c.pods, id)
		}
	}
	for id := range c.pauses {
		if !livePods[id] {
			delete(c.pauses, id)
			delete(c.pauseCgroups, id)
		}
	}
	c.layerMu.Lock()
	for id := range c.layers {
		if !live[id] {
			delete(c.layers, id)
		}
	}
	c.layerMu.Unlock()
}

// ofSandboxIn picks the containers of a sandbox out of a list (the store's list, taken once).
func (st *containerStore) ofSandboxIn(all []*podContainer, sandboxID string) []*podContainer {
	var out []*podContainer
	for _, pc := range all {
		if pc.meta.SandboxID == sandboxID {
			out = append(out, pc)
		}
	}
	return out
}

// sampleContainerLocked returns the reading of a running container's cgroup, reading it again
// when the last reading is statsMaxAge old or older; nil when the container does not run.
func (c *statsCollector) sampleContainerLocked(pc *podContainer, now time.Time) *sampled {
	state := pc.snapshot().state
	id := pc.meta.ID
	if state != legacy.ContainerStateRunning {
		delete(c.ctrs, id)
		return nil
	}
	e := c.ctrs[id]
	if e == nil {
		e = &sampled{}
		c.ctrs[id] = e
	} else if now.Sub(e.at) < statsMaxAge {
		return e
	}
	c.readLocked(e, pc.meta.CgroupsPath, false)
	return e
}

// readLocked reads the cgroup at path into e and advances its CPU window; the limits are read
// again when those known are older than statsLimitsMaxAge.
func (c *statsCollector) readLocked(e *sampled, cgPath string, pids bool) {
	at := c.now()
	limits := !e.ok || at.Sub(e.limitsAt) >= statsLimitsMaxAge
	s, err := c.rd.Read(cgPath, cgroupstats.ReadOpts{Pids: pids, Limits: limits})
	e.at = at
	if err != nil {
		e.ok, e.hasNano = false, false
		return
	}
	if limits {
		e.limitsAt = at
	} else {
		s.MemoryLimit, s.SwapLimit = e.cg.MemoryLimit, e.cg.SwapLimit
	}
	e.ok, e.cg = true, s
	e.hasNano = false
	if s.HasCPU {
		e.nano, e.hasNano = e.win.Add(legacy.CpuPoint{At: at, Usage: s.CPUUsageNanos}, statsMinWindow)
	}
}

// samplePodLocked returns the reading of a ready pod: its cgroup parent when it has one (the
// kubelet's pod cgroup, or slice under systemd), else the sum of its pause container's and running
// containers' cgroups; and the counters of its network namespace. nil when the pod is not ready.
func (c *statsCollector) samplePodLocked(ctx context.Context, sb *podSandbox, ctrs []*podContainer, now time.Time) *sampled {
	snap := sb.snapshot()
	state, pid := snap.state, snap.pid
	id := sb.meta.ID
	if state != legacy.SandboxStateReady {
		delete(c.pods, id)
		return nil
	}
	e := c.pods[id]
	if e == nil {
		e = &sampled{}
		c.pods[id] = e
	} else if now.Sub(e.at) < statsMaxAge {
		return e
	}
	if parent, ok := cgroupdriver.ParentDir(sb.config.GetLinux().GetCgroupParent()); ok {
		c.readLocked(e, parent, true)
	} else {
		e.ok = false
	}
	if !e.ok {
		c.sumPodLocked(ctx, e, sb, ctrs, now)
	}
	e.net = sb.readNetwork(pid, c.now())
	return e
}

// sumPodLocked fills e with the sum of the pod's pause container's and containers' readings.
func (c *statsCollector) sumPodLocked(ctx context.Context, e *sampled, sb *podSandbox, ctrs []*podContainer, now time.Time) {
	var parts []*sampled
	pauseLess := sb.meta.PauseLess // no pause cgroup: the containers' only (sandbox_pauseless.go)
	if cg := c.pauseCgroupLocked(ctx, sb); cg != "" && !pauseLess {
		pause := c.pauses[sb.meta.ID]
		if pause == nil {
			pause = &sampled{}
			c.pauses[sb.meta.ID] = pause
		}
		c.readLocked(pause, cg, true)
		parts = append(parts, pause)
	}
	// Containers report no process count: theirs are read here, for the pod's.
	var pids uint64
	pidsOK := pauseLess || len(parts) > 0 && parts[0].ok && parts[0].cg.HasPids
	if len(parts) > 0 {
		pids = parts[0].cg.Pids
	}
	for _, pc := range ctrs {
		if s := c.sampleContainerLocked(pc, now); s != nil {
			parts = append(parts, s)
			if s.ok {
				n, ok := c.rd.Pids(pc.meta.CgroupsPath)
				pids += n
				pidsOK = pidsOK && ok
			}
		}
	}
	var sum cgroupstats.CgroupSample
	var any bool
	e.hasNano, e.nano = true, 0
	sum.HasCPU, sum.HasMemory, sum.HasSwap = true, true, true
	for _, p := range parts {
		if !p.ok {
			continue
		}
		any = true
		s := p.cg
		sum.HasCPU = sum.HasCPU && s.HasCPU
		sum.HasMemory = sum.HasMemory && s.HasMemory
		sum.HasSwap = sum.HasSwap && s.HasSwap
		sum.CPUUsageNanos += s.CPUUsageNanos
		sum.MemoryUsage += s.MemoryUsage
		sum.WorkingSet += s.WorkingSet
		sum.RSS += s.RSS
		sum.PageFaults += s.PageFaults
		sum.MajorPageFaults += s.MajorPageFaults
		sum.SwapUsage += s.SwapUsage
		e.hasNano = e.hasNano && p.hasNano
		e.nano += p.nano
	}
	sum.HasPids, sum.Pids = pidsOK, pids
	// Stamped when the sum is made, not with now: a sweep's now is taken before it reads
	// hundreds of cgroups, and a sum must not look older than the readings it adds up.
	e.at = c.now()
	e.ok = any
	e.cg = sum // no limit: the parts' limits do not add up to the pod's
	if !any || !sum.HasCPU {
		e.hasNano = false
	}
}

// pauseCgroupLocked returns the cgroup of the sandbox's pause container, from its OCI spec
// (read once from containerd).
func (c *statsCollector) pauseCgroupLocked(ctx context.Context, sb *podSandbox) string {
	if cg, ok := c.pauseCgroups[sb.meta.ID]; ok {
		return cg
	}
	cg := ""
	if rec, err := c.r.client.ContainerService().Get(c.r.withNS(ctx), sb.meta.ID); err == nil && rec.Spec != nil {
		var spec runtimespec.Spec
		if err := typeurl.UnmarshalTo(rec.Spec, &spec); err == nil && spec.Linux != nil {
			cg = spec.Linux.CgroupsPath
		}
	} else if err != nil && !errdefs.IsNotFound(err) {
		return "" // try again next time
	}
	c.pauseCgroups[sb.meta.ID] = cg
	return cg
}

// readNetwork reads the counters of the ready pod's network namespace: that of its pause process
// (pid), or, for a pod without one, the pinned namespace itself. nil for the host's network.
func (sb *podSandbox) readNetwork(pid uint32, at time.Time) *legacy.NetworkStats {
	if sb.hostNetwork() {
		return nil
	}
	var b []byte
	var err error
	switch {
	case pid != 0:
		b, err = os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/net/dev")
	case sb.meta.PauseLess && sb.meta.NetNSPath != "":
		b, err = sandbox.ReadNetDev(sb.meta.NetNSPath)
	default:
		return nil
	}
	if err != nil {
		return nil
	}
	return parseNetDev(b, at)
}

// parseNetDev reads /proc/net/dev's counters; eth0 is the default interface when there is one.
func parseNetDev(b []byte, at time.Time) *legacy.NetworkStats {
	ifs := cgroupstats.ParseNetDev(b)
	if len(ifs) == 0 {
		return nil
	}
	n := &legacy.NetworkStats{At: at, Interfaces: ifs}
	n.Default = &n.Interfaces[0]
	for i := range n.Interfaces {
		if n.Interfaces[i].Name == "eth0" {
			n.Default = &n.Interfaces[i]
			break
		}
	}
	return n
}

// refreshLayers measures the writable layers of the containers ids (nil: every container).
func (c *statsCollector) refreshLayers(ctx context.Context, ids []string) {
	if ids == nil {
		for _, pc := range c.r.ctrs().store.list() {
			ids = append(ids, pc.meta.ID)
		}
	}
	ctx = c.r.withNS(ctx)
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		c.layerMu.Lock()
		l := c.layers[id]
		if l == nil {
			l = &layerUsage{}
			c.layers[id] = l
		}
		snapshotter, key := l.snapshotter, l.key
		c.layerMu.Unlock()
		if key == "" {
			rec, err := c.r.client.ContainerService().Get(ctx, id)
			if err != nil {
				if errdefs.IsNotFound(err) {
					c.layerMu.Lock()
					l.notFound = true
					c.layerMu.Unlock()
				}
				continue
			}
			snapshotter, key = rec.Snapshotter, rec.SnapshotKey
			if key == "" {
				continue
			}
		}
		u, err := c.r.client.SnapshotService(snapshotter).Usage(ctx, key)
		at := time.Now()
		if err != nil {
			if !errdefs.IsNotFound(err) {
				logrus.WithError(err).WithField("container", id).Debug("stats: writable layer usage")
			}
			continue
		}
		c.snapshotterRoot(ctx, snapshotter)
		c.layerMu.Lock()
		l.snapshotter, l.key = snapshotter, key
		l.at, l.used, l.inodes, l.measured = at, uint64(max(u.Size, 0)), uint64(max(u.Inodes, 0)), true
		c.layerMu.Unlock()
	}
}

// snapshotterRoot returns (and caches) the root directory a snapshotter exports.
func (c *statsCollector) snapshotterRoot(ctx context.Context, snapshotter string) string {
	c.layerMu.Lock()
	root, ok := c.snRoots[snapshotter]
	c.layerMu.Unlock()
	if ok {
		return root
	}
	resp, err := c.r.client.IntrospectionService().Plugins(ctx, fmt.Sprintf("type==%s,id==%s", plugins.SnapshotPlugin, snapshotter))
	if err != nil {
		return ""
	}
	if len(resp.Plugins) > 0 {
		root = resp.Plugins[0].Exports[plugins.SnapshotterRootDir]
	}
	c.layerMu.Lock()
	c.snRoots[snapshotter] = root
	c.layerMu.Unlock()
	return root
}

// layer returns the last measure of a container's writable layer; a container not measured yet
// is queued for the background loop and reported without one.
func (c *statsCollector) layer(id string) *legacy.FsStats {
	c.layerMu.Lock()
	l := c.layers[id]
	var out *legacy.FsStats
	if l != nil && l.measured {
		out = &legacy.FsStats{At: l.at, Mountpoint: c.snRoots[l.snapshotter], UsedBytes: l.used, InodesUsed: l.inodes}
	}
	c.layerMu.Unlock()
	if l == nil {
		select {
		case c.layerReq <- id:
		default:
		}
	}
	return out
}
