package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/checkpointarchive"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
)

// Checkpoint/restore of containers with CRIU, through containerd's task Checkpoint (runc
// checkpoint). What a checkpoint looks like on disk (an archive for CheckpointContainer, a
// directory for CheckpointPod) is kuberuntime/checkpointarchive's; this file takes one: it pauses
// the tasks, has CRIU dump them, reads their file-system changes and resumes them. Restore:
// checkpoint_restore.go.
//
// Everything starts with the probe of the host's CRIU (kuberuntime/criu, once per daemon): when it
// does not work, every checkpoint and restore request answers FailedPrecondition with the reason.

// DefaultCheckpointTimeout bounds a checkpoint whose request names no timeout.
const DefaultCheckpointTimeout = 5 * time.Minute

// CheckpointContainer implements Checkpointer.
func (r *ContainerdRuntime) CheckpointContainer(ctx context.Context, id, location string, timeout time.Duration) error {
	if err := checkpointarchive.CheckLocation(location); err != nil {
		return err
	}
	c, err := r.ctrs().store.get(id)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if state := c.snapshot().state; state != legacy.ContainerStateRunning {
		return fmt.Errorf("container %s is %s: only running containers can be checkpointed: %w", c.meta.ID, state, errdefs.ErrFailedPrecondition)
	}
	info, err := criu.CriuUsable()
	if err != nil {
		return err
	}
	if timeout <= 0 {
		timeout = DefaultCheckpointTimeout
	}
	ctx, cancel := context.WithTimeout(r.withNS(ctx), timeout)
	defer cancel()
	start := time.Now()
	work, err := os.MkdirTemp(c.rootDir, "checkpoint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	task, err := r.loadTask(ctx, c.meta.ID)
	if err != nil {
		return fmt.Errorf("container %s has no task: %w", c.meta.ID, errdefs.ErrFailedPrecondition)
	}
	// Paused while CRIU dumps it and its file-system changes are read: one consistent cut.
	if err := task.Pause(ctx); err != nil {
		return fmt.Errorf("pause container %s: %w", c.meta.ID, err)
	}
	err = r.dumpContainer(ctx, c, task, work, info)
	rctx, rcancel := withoutCancel(ctx, cleanupTimeout)
	if rerr := resumeAfterDump(rctx, task); rerr != nil {
		err = errors.Join(err, fmt.Errorf("resume container %s: %w", c.meta.ID, rerr))
	}
	rcancel()
	if err != nil {
		return err
	}
	dumped := time.Since(start)
	size, err := checkpointarchive.Write(work, location)
	if err != nil {
		return fmt.Errorf("write checkpoint archive: %w", err)
	}
	logrus.WithFields(logrus.Fields{"container": c.meta.ID, "location": location, "size": size,
		"dump": dumped, "duration": time.Since(start)}).Info("container checkpointed")
	return nil
}

// dumpContainer writes the CRIU images of the container's task and its dump files into dir; the
// task keeps running (or stays paused).
func (r *ContainerdRuntime) dumpContainer(ctx context.Context, c *podContainer, task containerd.Task, dir string, info criu.CriuInfo) error {
	images := filepath.Join(dir, checkpointarchive.ImagesDir)
	if err := os.Mkdir(images, 0o700); err != nil {
		return err
	}
	cntr, err := r.loadContainer(ctx, c.meta.ID)
	if err != nil {
		return err
	}
	cinfo, err := cntr.Info(ctx)
	if err != nil {
		return err
	}
	spec, err := cntr.Spec(ctx)
	if err != nil {
		return err
	}
	config, err := protojson.Marshal(c.config)
	if err != nil {
		return err
	}
	image := c.meta.ImageRef
	if c.meta.RepoTag != "" {
		image = c.meta.RepoTag
	}
	ref := c.meta.ImageID
	if c.meta.RepoDigest != "" {
		ref = c.meta.RepoDigest
	}
	labels := cinfo.Labels
	cfg := checkpointarchive.Config{
		ID: c.meta.ID, Name: c.config.GetMetadata().GetName(), SandboxID: c.meta.SandboxID,
		PodName: labels[LabelPodName], PodNamespace: labels[LabelPodNamespace], PodUID: labels[LabelPodUID],
		RootfsImageName: image, RootfsImageRef: ref, ImageID: c.meta.ImageID, OCIRuntime: cinfo.Runtime.Name,
		CRIUVersion: info.Version, CreatedAt: c.meta.CreatedAt, CheckpointedAt: time.Now(), ContainerConfig: config,
	}
	if _, err := task.Checkpoint(ctx, containerd.WithCheckpointImagePath(images), withCheckpointWorkPath(dir)); err != nil {
		msg := err.Error()
		// CRIU's stderr goes nowhere (runc does not read it): its words are in its log.
		if log, rerr := os.ReadFile(filepath.Join(dir, checkpointarchive.DumpLog)); rerr == nil && len(log) > 0 {
			msg += " (CRIU: " + criu.CriuLogSummary(string(log)) + ")"
		}
		return fmt.Errorf("checkpoint container %s: %s", c.meta.ID, msg)
	}
	if err := r.writeRootfsDiff(ctx, cinfo.Snapshotter, cinfo.SnapshotKey, filepath.Join(dir, checkpointarchive.RootfsDiff)); err != nil {
		return fmt.Errorf("checkpoint container %s: file-system changes: %w", c.meta.ID, err)
	}
	return checkpointarchive.WriteDumps(dir, cfg, spec)
}

// resumeAfterDump resumes a task that was paused for a dump. A failed dump may have thawed it
// already: CRIU thaws the freezer cgroup once it holds the tasks with ptrace and freezes it again
// only when it ends normally, so a CRIU that died or was killed half-way (a checkpoint past its
// deadline) leaves the processes running. runc then answers "container not paused" while
// containerd's shim still holds the task paused, and would forever: the cgroup is frozen again, as
// runc pause does, and the resume goes through the shim.
func resumeAfterDump(ctx context.Context, task containerd.Task) error {
	killCRIUTracers(ctx, task)
	err := task.Resume(ctx)
	if err == nil {
		return nil
	}
	st, serr := task.Status(ctx)
	if serr != nil {
		return err
	}
	switch st.Status {
	case containerd.Running:
		return nil
	case containerd.Paused:
		if ferr := freezeCgroupOf(task.Pid()); ferr != nil {
			return errors.Join(err, ferr)
		}
		if err := task.Resume(ctx); err != nil {
			return err
		}
		logrus.WithField("container", task.ID()).Warn("resume after a failed dump: the container had been thawed; frozen again and resumed")
		return nil
	}
	return err
}

// killCRIUTracers kills a CRIU that still holds the task's processes with ptrace: one that hung
// past the request's deadline. runc is killed then, CRIU is not (it is no child of the shim's
// command), and it would hold them for ever: a signal to one of them would stop it until CRIU
// answered. Killed, it lets them go (the kernel detaches a dead tracer's tracees).
func killCRIUTracers(ctx context.Context, task containerd.Task) {
	procs, err := task.Pids(ctx)
	if err != nil {
		return
	}
	traced := func() map[int]bool {
		tracers := map[int]bool{}
		for _, p := range procs {
			if tracer := tracerPid(int(p.Pid)); tracer > 0 && isCRIU(tracer) {
				tracers[tracer] = true
			}
		}
		return tracers
	}
	tracers := traced()
	if len(tracers) == 0 {
		return
	}
	for tracer := range tracers {
		logrus.WithFields(logrus.Fields{"container": task.ID(), "criu": tracer}).Warn("killing a CRIU that still holds the container's processes after its dump ended")
		_ = unix.Kill(tracer, unix.SIGKILL)
	}
	for deadline := time.Now().Add(5 * time.Second); len(traced()) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
}

// tracerPid is the pid of the process tracing pid (0: none).
func tracerPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// isCRIU tells whether a process is a CRIU: a word of its command line is criu or a path to one
// (hack/setup.sh's runs it through the dynamic loader: "ld-linux... --argv0 criu .../sbin/criu").
func isCRIU(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, a := range strings.Split(string(b), "\x00") {
		if filepath.Base(a) == "criu" {
			return true
		}
	}
	return false
}

// freezeCgroupOf freezes the freezer cgroup of the process pid (cgroup v1's freezer hierarchy
// when there is one, as runc uses it, else cgroup v2) and waits until it is frozen.
func freezeCgroupOf(pid uint32) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return err
	}
	var file, value, done, doneFile string
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if slices.Contains(strings.Split(parts[1], ","), "freezer") {
			dir := filepath.Join(cgroupRoot, parts[1], parts[2])
			file, value, doneFile, done = filepath.Join(dir, "freezer.state"), "FROZEN", filepath.Join(dir, "freezer.state"), "FROZEN"
			break
		}
		if parts[0] == "0" && parts[1] == "" && file == "" {
			dir := filepath.Join(cgroupRoot, parts[2])
			file, value, doneFile, done = filepath.Join(dir, "cgroup.freeze"), "1", filepath.Join(dir, "cgroup.events"), "frozen 1"
		}
	}
	if file == "" {
		return fmt.Errorf("no freezer cgroup for pid %d", pid)
	}
	if err := os.WriteFile(file, []byte(value), 0o644); err != nil {
		return fmt.Errorf("freeze %s: %w", file, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(doneFile)
		if err != nil {
			return err
		}
		if slices.Contains(strings.Split(string(b), "\n"), done) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("freeze %s: not frozen after 5s", file)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func withCheckpointWorkPath(dir string) containerd.CheckpointTaskOpts {
	return func(r *containerd.CheckpointTaskInfo) error {
		if r.Options == nil {
			r.Options = &options.CheckpointOptions{}
		}
		opts, ok := r.Options.(*options.CheckpointOptions)
		if !ok {
			return fmt.Errorf("checkpoint options of type %T", r.Options)
		}
		opts.WorkPath = dir
		opts.Exit = false
		return nil
	}
}

// CheckpointPod implements Checkpointer: it validates the request as CRI defines it, pauses every
// selected container, dumps each, and resumes them all whatever happened.
func (r *ContainerdRuntime) CheckpointPod(ctx context.Context, sandboxID, outputPath string, containerIDs []string, opts map[string]string) (retErr error) {
	if len(opts) > 0 {
		for k := range opts {
			return fmt.Errorf("checkpoint option %q is not supported: %w", k, errdefs.ErrInvalidArgument)
		}
	}
	if outputPath == "" || !filepath.IsAbs(outputPath) {
		return fmt.Errorf("output_path %q must be an absolute path: %w", outputPath, errdefs.ErrInvalidArgument)
	}
	// The output directory is the caller's, in a tree others may write to: it is opened once and
	// written relative to that handle (os.Root), never by path.
	out, err := os.OpenRoot(outputPath)
	if err != nil {
		return fmt.Errorf("output_path %q must be an existing directory: %w", outputPath, errdefs.ErrInvalidArgument)
	}
	defer out.Close()
	if empty, err := checkpointarchive.EmptyDir(out); err != nil || !empty {
		return fmt.Errorf("output_path %q is not empty: %w", outputPath, errdefs.ErrInvalidArgument)
	}
	if len(containerIDs) == 0 {
		return fmt.Errorf("container_ids must name the containers to checkpoint: %w", errdefs.ErrInvalidArgument)
	}
	sb, err := r.sandboxes.get(sandboxID)
	if err != nil {
		return err
	}
	if st := sb.status(); st.State != legacy.SandboxStateReady {
		return fmt.Errorf("sandbox %s is not ready: %w", sb.meta.ID, errdefs.ErrFailedPrecondition)
	}
	seen := map[string]bool{}
	var cs []*podContainer
	for _, id := range containerIDs {
		c, err := r.ctrs().store.get(id)
		if err != nil {
			return err
		}
		if seen[c.meta.ID] {
			return fmt.Errorf("container %s is named twice: %w", c.meta.ID, errdefs.ErrInvalidArgument)
		}
		seen[c.meta.ID] = true
		if c.meta.SandboxID != sb.meta.ID {
			return fmt.Errorf("container %s is not in sandbox %s: %w", c.meta.ID, sb.meta.ID, errdefs.ErrInvalidArgument)
		}
		if state := c.snapshot().state; state != legacy.ContainerStateRunning {
			return fmt.Errorf("container %s is %s: only running containers can be checkpointed: %w", c.meta.ID, state, errdefs.ErrFailedPrecondition)
		}
		cs = append(cs, c)
	}
	info, err := criu.CriuUsable()
	if err != nil {
		return err
	}
	// CRIU writes by path: into a work dir of the sandbox's, which only root can reach; the
	// checkpoint goes to the output directory once the containers run again.
	work, err := os.MkdirTemp(filepath.Join(r.sandboxesRoot(), sb.meta.ID), "checkpoint-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := r.checkpointPod(ctx, sb, work, cs, info); err != nil {
		return err
	}
	names := []string{}
	for _, c := range cs {
		names = append(names, c.config.GetMetadata().GetName())
	}
	// pod.dump last: a directory that has it has the whole checkpoint.
	if err := checkpointarchive.CopyInto(work, out, append(names, checkpointarchive.PodDump)); err != nil {
		return fmt.Errorf("write the pod checkpoint to %s: %w", outputPath, err)
	}
	return nil
}

func (r *ContainerdRuntime) checkpointPod(ctx context.Context, sb *podSandbox, outputPath string, cs []*podContainer, info criu.CriuInfo) (retErr error) {
	ctx = r.withNS(ctx)
	start := time.Now()
	for _, c := range cs {
		c.op.Lock()
		defer c.op.Unlock()
	}
	defer func() {
		if retErr == nil {
			return
		}
		// Partial artifacts go; the directory stays (it is the caller's).
		entries, _ := os.ReadDir(outputPath)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(outputPath, e.Name()))
		}
	}()
	tasks := make([]containerd.Task, len(cs))
	for i, c := range cs {
		t, err := r.loadTask(ctx, c.meta.ID)
		if err != nil {
			return fmt.Errorf("container %s has no task: %w", c.meta.ID, errdefs.ErrFailedPrecondition)
		}
		tasks[i] = t
	}
	// Every container paused before any is dumped: one consistent cut. All resume, whatever
	// happens, even past the caller's deadline.
	for i, t := range tasks {
		if err := t.Pause(ctx); err != nil {
			for _, p := range tasks[:i] {
				rctx, cancel := withoutCancel(ctx, cleanupTimeout)
				_ = p.Resume(rctx)
				cancel()
			}
			return fmt.Errorf("pause container %s: %w", cs[i].meta.ID, err)
		}
	}
	defer func() {
		rctx, cancel := withoutCancel(ctx, cleanupTimeout)
		defer cancel()
		for i, t := range tasks {
			if err := resumeAfterDump(rctx, t); err != nil {
				logrus.WithError(err).WithField("container", cs[i].meta.ID).Error("resume after pod checkpoint")
				retErr = errors.Join(retErr, fmt.Errorf("resume container %s: %w", cs[i].meta.ID, err))
			}
		}
	}()
	sbConfig, err := protojson.Marshal(sb.config)
	if err != nil {
		return err
	}
	pod := checkpointarchive.PodConfig{SandboxID: sb.meta.ID, RuntimeHandler: sb.meta.RuntimeHandler, SandboxConfig: sbConfig,
		Containers: map[string]string{}, CheckpointedAt: time.Now()}
	for i, c := range cs {
		name := c.config.GetMetadata().GetName()
		dir := filepath.Join(outputPath, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			return err
		}
		if err := r.dumpContainer(ctx, c, tasks[i], dir, info); err != nil {
			return err
		}
		pod.Containers[name] = name
	}
	if err := checkpointarchive.WritePodDump(outputPath, pod); err != nil {
		return err
	}
	logrus.WithFields(logrus.Fields{"sandbox": sb.meta.ID, "containers": len(cs), "duration": time.Since(start)}).Info("pod checkpointed")
	return nil
}
