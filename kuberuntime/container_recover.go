package kuberuntime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/kuberuntime/kmsgoom"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// initContainers sets the container manager up: it rebuilds the container store from containerd
// and the root dir, and follows containerd's OOM events.
func (r *ContainerdRuntime) initContainers(ctx context.Context) error {
	st := r.ctrs()
	for _, d := range []string{r.containersRoot(), r.containersState()} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return err
		}
	}
	r.watchOOM()
	r.watchKernelOOM()
	ctx = r.withNS(ctx)
	cs, err := r.client.Containers(ctx, fmt.Sprintf(`labels.%q==%q`, LabelKind, KindContainer))
	if err != nil {
		return err
	}
	known := map[string]bool{}
	loaded := map[string]*podContainer{}
	for _, cntr := range cs {
		if r.finishRemoveAtStart(ctx, cntr) { // container_remove.go
			continue
		}
		c, err := r.loadPodContainer(ctx, cntr)
		if err != nil {
			// Half made (no metadata): nothing can use it; remove it.
			logrus.WithError(err).WithField("container", cntr.ID()).Warn("recover container: removing it")
			if task, err := cntr.Task(ctx, nil); err == nil {
				_, _ = task.Delete(ctx, containerd.WithProcessKill)
			}
			if err := cntr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
				logrus.WithError(err).WithField("container", cntr.ID()).Warn("remove unrecoverable container")
			}
			continue
		}
		known[c.meta.ID] = true
		loaded[c.meta.ID] = c
		st.store.add(c)
	}
	r.recoverImageVolumes(ctx, loaded)
	for _, dir := range []string{r.containersRoot(), r.containersState()} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !known[e.Name()] {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}
	}
	logrus.WithField("containers", len(known)).Debug("container store rebuilt")
	return nil
}

// loadPodContainer rebuilds a container from its metadata and status file, and its task: a running
// one gets its log and exit monitor back, one that exited while the daemon was away gets its exit
// recorded.
func (r *ContainerdRuntime) loadPodContainer(ctx context.Context, cntr containerd.Container) (*podContainer, error) {
	info, err := cntr.Info(ctx)
	if err != nil {
		return nil, err
	}
	ext, ok := info.Extensions[containerExtensionID]
	if !ok {
		return nil, fmt.Errorf("no container metadata")
	}
	v, err := typeurl.UnmarshalAny(ext)
	if err != nil {
		return nil, fmt.Errorf("container metadata: %w", err)
	}
	meta, ok := v.(*containerMetadata)
	if !ok {
		return nil, fmt.Errorf("container metadata of type %T", v)
	}
	config := &runtime.ContainerConfig{}
	if err := proto.Unmarshal(meta.Config, config); err != nil {
		return nil, fmt.Errorf("container config: %w", err)
	}
	c := &podContainer{
		meta: metaInMemory(*meta), config: config,
		rootDir:  filepath.Join(r.containersRoot(), meta.ID),
		stateDir: filepath.Join(r.containersState(), meta.ID),
		state:    legacy.ContainerStateCreated,
		exited:   make(chan struct{}),
	}
	rec, err := loadRecord(c.rootDir)
	if err != nil && !os.IsNotExist(err) {
		logrus.WithError(err).WithField("container", meta.ID).Warn("container status file")
	}
	c.rec = rec
	if len(rec.Resources) > 0 {
		res := &runtime.LinuxContainerResources{}
		if proto.Unmarshal(rec.Resources, res) == nil {
			c.resources = res
		}
	}
	if c.resources == nil {
		if spec, err := cntr.Spec(ctx); err == nil {
			c.resources = resourcesFromSpec(spec)
		}
	}
	if !rec.FinishedAt.IsZero() {
		c.state = legacy.ContainerStateExited
		close(c.exited)
	}
	task, err := cntr.Task(ctx, nil)
	if err != nil {
		if c.state != legacy.ContainerStateExited && !rec.StartedAt.IsZero() {
			// Started, and its task is gone without a recorded exit.
			c.state = legacy.ContainerStateExited
			c.rec.FinishedAt, c.rec.ExitCode, c.rec.Reason = time.Now(), 255, legacy.ReasonUnknown
			_ = c.saveRecord()
			close(c.exited)
		}
		return c, nil
	}
	if c.state == legacy.ContainerStateExited {
		// Recorded already: the task is a leftover.
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
		return c, nil
	}
	status, err := task.Status(ctx)
	if err != nil {
		return c, nil
	}
	switch status.Status {
	case containerd.Running, containerd.Paused, containerd.Pausing:
		ctrIO, err := r.openContainerIO(ctx, c)
		if err != nil {
			logrus.WithError(err).WithField("container", meta.ID).Warn("reopen container stdio")
		}
		c.state, c.pid, c.io = legacy.ContainerStateRunning, task.Pid(), ctrIO
		if c.rec.StartedAt.IsZero() {
			c.rec.StartedAt = time.Now()
		}
		r.monitorContainer(c, task.Pid()) // the exit monitor's reconciliation finds an exit meanwhile
	case containerd.Stopped:
		// Exited while the daemon was away.
		if c.rec.StartedAt.IsZero() {
			c.rec.StartedAt = status.ExitTime
		}
		c.state = legacy.ContainerStateRunning // handleContainerExit moves it to exited
		r.handleContainerExit(c, true, status.ExitStatus, status.ExitTime)
	default:
		// Created but never started (the daemon died during StartContainer).
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
	}
	return c, nil
}

// recordOOMKill marks container c OOM-killed (source: who said so), for its exit reason.
func recordOOMKill(c *podContainer, source string) {
	if changed, err := c.markOOMKilled(); err != nil {
		logrus.WithError(err).WithField("container", c.meta.ID).Warn("write container status")
	} else if changed {
		logrus.WithFields(logrus.Fields{"container": c.meta.ID, "source": source}).Info("OOM kill known after the exit: reason OOMKilled")
	}
}

// watchKernelOOM records the OOM kills the kernel logs in a container's cgroup (or one below it):
// under the systemd driver the container's scope, memory.events with it, may be gone before its
// count is read, and containerd's OOM event then never comes (kmsgoom). Without a readable kernel
// log it says so once; containerd's events and the cgroup's count remain.
func (r *ContainerdRuntime) watchKernelOOM() {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		err := kmsgoom.Watch(r.bg, kmsgPath, func(memcg string) {
			for _, c := range r.ctrs().store.list() {
				dir, ok := cgroupdriver.Dir(c.meta.CgroupsPath)
				if ok && dir != "" && (memcg == dir || strings.HasPrefix(memcg, dir+"/")) {
					recordOOMKill(c, "kernel log")
					return
				}
			}
		})
		if err != nil {
			logrus.WithError(err).Info("the kernel log cannot be read: OOM kills are known from containerd's events and the cgroups' counts only")
		}
	}()
}

// kmsgPath is the kernel log watchKernelOOM reads (a variable for tests).
var kmsgPath = kmsgoom.Path

// watchOOM records the OOM kills containerd reports, for the exit reason.
func (r *ContainerdRuntime) watchOOM() {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		delay := 200 * time.Millisecond
		for r.bg.Err() == nil {
			evCh, errCh := r.client.Subscribe(r.bg, `topic=="/tasks/oom"`)
		loop:
			for {
				select {
				case env := <-evCh:
					if env == nil || env.Namespace != r.namespace {
						continue
					}
					v, err := typeurl.UnmarshalAny(env.Event)
					if err != nil {
						continue
					}
					if ev, ok := v.(*eventstypes.TaskOOM); ok {
						if c, err := r.ctrs().store.get(ev.ContainerID); err == nil && c.meta.ID == ev.ContainerID {
							recordOOMKill(c, "containerd event")
						}
					}
					delay = 200 * time.Millisecond
				case <-errCh:
					break loop
				case <-r.bg.Done():
					return
				}
			}
			select {
			case <-time.After(delay):
			case <-r.bg.Done():
				return
			}
			delay = min(2*delay, 5*time.Second)
		}
	}()
}
