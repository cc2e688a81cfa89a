package kuberuntime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/kuberuntime/iopump"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/streaming"

	"github.com/containerd/cgroups/v3"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy/crilog"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxTerminationMessage caps the message read from the termination-message file (the kubelet's
// limit).
const maxTerminationMessage = 4096

// ioDrainTimeout bounds the wait for the last output of an exited container to reach its log.
const ioDrainTimeout = 5 * time.Second

// fifoSet is the container's stdio FIFOs, at fixed paths under its state dir so that a restarted
// daemon finds them again.
func fifoSet(stateDir string, stdin, tty bool) *cio.FIFOSet {
	dir := filepath.Join(stateDir, "io")
	cfg := cio.Config{Stdout: filepath.Join(dir, "stdout"), Terminal: tty}
	if stdin {
		cfg.Stdin = filepath.Join(dir, "stdin")
	}
	if !tty {
		cfg.Stderr = filepath.Join(dir, "stderr")
	}
	return cio.NewFIFOSet(cfg, func() error { return os.RemoveAll(dir) })
}

// openContainerIO opens the FIFOs and the log and starts copying the output into the log.
func (r *ContainerdRuntime) openContainerIO(ctx context.Context, c *podContainer) (*containerIO, error) {
	fifos := fifoSet(c.stateDir, c.config.GetStdin(), c.config.GetTty())
	if err := os.MkdirAll(filepath.Join(c.stateDir, "io"), 0o700); err != nil {
		return nil, err
	}
	ctrIO := &containerIO{fifos: fifos}
	if c.meta.LogPath != "" {
		// Confined to the sandbox's log directory: a symlink planted in it cannot redirect the
		// log outside (the log path was checked at create; this holds against later symlinks).
		// Not a regular file there (a FIFO, a device, a symlink planted by a container with its log
		// dir mounted): refused at once (crilog.ErrNotRegular), the start fails.
		w, err := crilog.Open(c.meta.LogPath, crilog.InDir(logDirOf(c.meta.LogPath, c.config.GetLogPath())))
		if err != nil {
			err = logOpenError(err)
			logrus.WithError(err).WithField("container", c.meta.ID).Warn("container log")
			return nil, err
		}
		ctrIO.log = w
	}
	pio, err := iopump.New(r.bg, fifos)
	if err != nil {
		if ctrIO.log != nil {
			ctrIO.log.Close()
		}
		return nil, fmt.Errorf("open container stdio: %w", err)
	}
	ctrIO.dio = pio
	ctrIO.attach = streaming.NewStdio(pio.Stdin) // pio.stdin is a nil interface without stdin
	// The output is read by the daemon's one output pump: each read goes to the attached clients
	// and into the log. Neither blocks the pump: the log is written by its own goroutine, and
	// while the log's file does not keep up, the pump stops reading this container (Backlog).
	readOut := func(stream crilog.Stream, path string) error {
		stderr := stream == crilog.Stderr
		var lw *crilog.LineWriter
		if ctrIO.log != nil {
			lw = ctrIO.log.NewLineWriter(stream)
		}
		ctrIO.copies.Add(1)
		err := pio.Read(path, func(p []byte) <-chan struct{} {
			ctrIO.attach.Write(stderr, p)
			if lw == nil {
				return nil
			}
			_, _ = lw.Write(p)
			return ctrIO.log.Backlog()
		}, func() {
			defer ctrIO.copies.Done()
			if lw == nil {
				return
			}
			if err := lw.Close(); err != nil && !crilog.IsClosed(err) {
				logrus.WithError(err).WithField("container", c.meta.ID).Warn("container log")
			}
		})
		if err != nil {
			ctrIO.copies.Done()
		}
		return err
	}
	for _, out := range []struct {
		stream crilog.Stream
		path   string
	}{{crilog.Stdout, fifos.Stdout}, {crilog.Stderr, fifos.Stderr}} {
		if out.path == "" {
			continue
		}
		if err := readOut(out.stream, out.path); err != nil {
			ctrIO.close(0)
			return nil, fmt.Errorf("open container stdio: %w", err)
		}
	}
	return ctrIO, nil
}

// StartContainer starts a created container: its task with stdio into the CRI log, and a monitor
// that records its exit.
func (r *ContainerdRuntime) StartContainer(ctx context.Context, id string) (retErr error) {
	c, err := r.ctrs().store.get(id)
	if err != nil {
		return err
	}
	c.op.Lock()
	defer c.op.Unlock()
	if err := checkStartable(c); err != nil {
		return err
	}
	sb, err := r.sandboxes.get(c.meta.SandboxID)
	if err != nil {
		return fmt.Errorf("sandbox of the container: %w", err)
	}
	// Held until the task is made: a stop waits for it, and no start follows (shim_grouping.go).
	sb.startMu.RLock()
	defer sb.startMu.RUnlock()
	if err := checkSandboxStartable(sb); err != nil {
		return err
	}
	ctx = r.withNS(ctx)

	taskMade := false
	defer func() {
		if retErr != nil {
			retErr = r.failStart(ctx, c, taskMade, retErr)
		}
	}()

	tOpen := time.Now()
	ctrIO, err := r.openContainerIO(ctx, c)
	if err != nil {
		return err
	}
	dOpen := time.Since(tOpen)
	c.setIO(ctrIO)
	restoreOpts, err := restoreTaskOpts(c)
	if err != nil {
		return err
	}
	restore := len(restoreOpts) > 0
	t0 := time.Now()
	var pid uint32
	var task containerd.Task
	if sb.meta.PauseLess {
		pid, task, err = r.newPauseLessTask(ctx, sb, c, ctrIO, restoreOpts) // sandbox_pauseless.go
	} else {
		pid, task, err = r.newContainerTask(ctx, c, ctrIO, restoreOpts, nil)
	}
	if err != nil {
		return err
	}
	taskMade = true
	c.rootfs, c.cntr = nil, nil // not needed any more
	dTask := time.Since(t0)
	defer r.nriBlockSync().Unblock()
	if err := r.nriStartContainerBlocked(ctx, c, pid); err != nil {
		return err
	}
	tStart := time.Now()
	if pid, err = r.runContainerTask(ctx, c, task, restore); err != nil {
		return fmt.Errorf("start task: %w", restoreError(c, err))
	}
	if restore {
		restored(c, time.Since(t0))
	}
	dStart := time.Since(tStart)
	c.markRunning(pid)
	tRec := time.Now()
	r.saveStartedRecord(c)
	dRec := time.Since(tRec)
	r.emitContainerEvent(legacy.ContainerEventStarted, c)
	r.monitorContainer(c, pid)
	r.nriPostStartContainerBlocked(ctx, c)
	logrus.WithFields(logrus.Fields{"container": c.meta.ID, "pid": pid, "io": dOpen, "task": dTask, "start": dStart, "record": dRec,
		"total": time.Since(tOpen)}).Debug("container started")
	return nil
}

// checkStartable: only a created container that is not being removed starts.
func checkStartable(c *podContainer) error {
	snap := c.snapshot()
	if snap.removing {
		return fmt.Errorf("container %s is being removed: %w", c.meta.ID, errdefs.ErrFailedPrecondition)
	}
	if snap.state != legacy.ContainerStateCreated {
		return fmt.Errorf("container %s is %s, not created: %w", c.meta.ID, snap.state, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// checkSandboxStartable: a container starts only in a ready sandbox that no stop has begun on.
func checkSandboxStartable(sb *podSandbox) error {
	if sb.stopping {
		return fmt.Errorf("%w %s: %w", errSandboxStopping, sb.meta.ID, errdefs.ErrFailedPrecondition)
	}
	if sb.status().State != legacy.SandboxStateReady {
		return fmt.Errorf("sandbox %s is not ready: %w", sb.meta.ID, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// newContainerTask creates the container's task (not started yet) with its IO: with one Create
// call and the rootfs mounts kept from create for a container this daemon created, else through
// the client's container, which a restore needs. It returns the task's pid, and the client's
// task handle when there is one (it is what starts the task then).
func (r *ContainerdRuntime) newContainerTask(ctx context.Context, c *podContainer, ctrIO *containerIO, restoreOpts []containerd.NewTaskOpts, shim *podShimTarget) (uint32, containerd.Task, error) {
	if c.rootfs != nil && len(restoreOpts) == 0 {
		var taskOpts *runcoptions.Options
		if shim != nil {
			taskOpts = shim.options
		}
		pid, err := r.createTask(ctx, c.meta.ID, c.rootfs, ctrIO.dio, taskOpts)
		if err != nil {
			return 0, nil, fmt.Errorf("create task: %w", restoreError(c, err))
		}
		return pid, nil, nil
	}
	cntr := c.cntr
	if cntr == nil {
		var err error
		if cntr, err = r.loadContainer(ctx, c.meta.ID); err != nil {
			return 0, nil, err
		}
	}
	if shim != nil {
		restoreOpts = append(restoreOpts, containerd.WithTaskAPIEndpoint(shim.endpoint, shimTaskAPIVersion))
	}
	// For a restore, the runc shim only notes the checkpoint at the create: runc restore,
	// and CRIU, run at the start, which is bounded (runContainerTask).
	task, err := cntr.NewTask(ctx, func(string) (cio.IO, error) { return ctrIO.dio, nil }, restoreOpts...)
	if err != nil {
		return 0, nil, fmt.Errorf("create task: %w", restoreError(c, err))
	}
	return task.Pid(), task, nil
}

// runContainerTask starts the task newContainerTask made (through its handle, when it gave one)
// and returns its pid.
func (r *ContainerdRuntime) runContainerTask(ctx context.Context, c *podContainer, task containerd.Task, restore bool) (uint32, error) {
	if task == nil {
		return r.startTask(ctx, c.meta.ID)
	}
	var err error
	if restore {
		// The shim runs runc restore, and it CRIU, now: bounded, its CRIU killed at the
		// bound (restore_bound.go).
		err = boundRestore(ctx, c.meta.ID, task.Start)
	} else {
		err = task.Start(ctx)
	}
	return task.Pid(), err
}

// failStart makes a container that failed to start exited, with the reason (its task deleted
// if one was made), and returns the start's error.
func (r *ContainerdRuntime) failStart(ctx context.Context, c *podContainer, taskMade bool, err error) error {
	cctx, cancel := withoutCancel(ctx, cleanupTimeout)
	defer cancel()
	if taskMade {
		if derr := r.killDeleteTask(cctx, c.meta.ID); derr != nil {
			logrus.WithError(derr).WithField("container", c.meta.ID).Warn("undo: delete task")
		}
	}
	c.markStartFailed(err)
	// The event before the waiters wake: a pod stop waiting for this exit publishes the
	// sandbox's stopped event after it.
	r.emitContainerEvent(legacy.ContainerEventStopped, c)
	close(c.exited)
	return fmt.Errorf("%w: %w", legacy.ErrRunContainer, err)
}

// monitorContainer records the container's exit when its task (of process pid) exits: the exit
// comes from the runtime's exit monitor (one event subscription for all tasks, exit_monitor.go).
func (r *ContainerdRuntime) monitorContainer(c *podContainer, pid uint32) {
	r.exitMonitor().Watch(c.meta.ID, pid, func(code uint32, at time.Time, found bool) {
		r.handleContainerExit(c, found, code, at)
	})
}

// handleContainerExit records the exit: code, time, reason (OOMKilled, Completed, Error) and the
// termination message; it deletes the task (its shim goes away) and drains the output into the log.
// The task is deleted while the output drains, and the exit is recorded (c.exited closed, which
// StopContainer waits for) as soon as the output is in the log, without waiting for the deletion
// (the shim's runc delete takes tens of milliseconds); c.taskGone is closed once it is over.
// With taskThere false the task is gone already.
func (r *ContainerdRuntime) handleContainerExit(c *podContainer, taskThere bool, code uint32, at time.Time) {
	t0 := time.Now()
	oom := cgroupOOMKilled(c.meta.CgroupsPath)
	deleted := make(chan struct{})
	c.beginExitHandling(deleted)
	if taskThere {
		go func() {
			defer close(deleted)
			ctx, cancel := context.WithTimeout(r.withNS(r.bg), cleanupTimeout)
			defer cancel()
			if err := r.deleteExitedTask(ctx, c.meta.ID); err != nil {
				logrus.WithError(err).WithField("container", c.meta.ID).Warn("delete exited task")
			}
		}()
		// The monitor goroutine (counted in r.wg) returns only once the task is deleted.
		defer func() { <-deleted }()
	} else {
		close(deleted)
	}
	if ctrIO := c.takeIO(); ctrIO != nil {
		ctrIO.close(ioDrainTimeout)
	}
	tDrain := time.Since(t0)
	if at.IsZero() {
		at = time.Now()
	}
	// Read before the lock: a read that hangs (a file on a hung volume) must not hold up
	// ListContainers and the rest that take it.
	message := terminationMessage(c.config)
	reason, recorded := c.markExited(code, at, oom, message, func(saveErr error) {
		if saveErr != nil {
			logrus.WithError(saveErr).WithField("container", c.meta.ID).Warn("write container status")
		}
		// The event before the waiters wake: a pod stop waiting for this exit publishes the
		// sandbox's stopped event after it.
		r.emitContainerEvent(legacy.ContainerEventStopped, c)
	})
	if !recorded {
		return
	}
	logrus.WithFields(logrus.Fields{"container": c.meta.ID, "exit_code": code, "reason": reason,
		"drain": tDrain, "recorded": time.Since(t0), "exited_at": at}).Debug("container exited")
}

// terminationMessageTimeout bounds the read of a termination-message file: one on a hung volume
// delays the recording of its container's exit by that much, not forever.
const terminationMessageTimeout = 2 * time.Second

// readTerminationFile reads the termination message at path (a variable for tests).
var readTerminationFile = readTerminationMessage

// terminationMessage reads the container's termination-message file (the host side of the mount
// on its terminationMessagePath): its last maxTerminationMessage bytes, as the kubelet reads it.
// A file that is missing, not a regular file, or not read within terminationMessageTimeout gives
// no message.
func terminationMessage(config *runtime.ContainerConfig) string {
	path := config.GetAnnotations()[containerspec.AnnotationTerminationMessagePath]
	if path == "" {
		return ""
	}
	hostPath := ""
	for _, m := range config.GetMounts() {
		if filepath.Clean(m.GetContainerPath()) == filepath.Clean(path) {
			hostPath = m.GetHostPath()
			break
		}
	}
	if hostPath == "" {
		return ""
	}
	type result struct {
		msg string
		err error
	}
	done := make(chan result, 1) // the reader does not wait for a receiver that gave up
	go func() {
		msg, err := readTerminationFile(hostPath)
		done <- result{msg, err}
	}()
	t := time.NewTimer(terminationMessageTimeout)
	defer t.Stop()
	select {
	case r := <-done:
		if r.err != nil && !errors.Is(r.err, os.ErrNotExist) {
			logrus.WithError(r.err).Warn("termination message")
		}
		return r.msg
	case <-t.C:
		logrus.WithField("path", hostPath).Warnf("termination message: not read within %v", terminationMessageTimeout)
		return ""
	}
}

// readTerminationMessage reads the last maxTerminationMessage bytes of the regular file at path.
// The open does not block (O_NONBLOCK: a FIFO without writer) and does not follow a symlink at
// path; anything but a regular file is refused.
func readTerminationMessage(path string) (string, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		return "", &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file (%v)", path, st.Mode().Type())
	}
	off := max(st.Size()-maxTerminationMessage, 0)
	b := make([]byte, min(st.Size(), maxTerminationMessage))
	n, err := f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return string(b[:n]), nil
}

// logOpenError gives an error opening a container's log its kind: a path leading out of the log
// dir is an invalid argument, something else than a regular file there a failed precondition.
func logOpenError(err error) error {
	switch {
	case errors.Is(err, crilog.ErrEscapes):
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	case errors.Is(err, crilog.ErrNotRegular):
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	}
	return err
}

// cgroupOOMKilled tells whether the kernel's OOM killer killed a process of the cgroup.
func cgroupOOMKilled(cgroupsPath string) bool {
	dir, ok := cgroupdriver.Dir(cgroupsPath)
	if !ok {
		return false
	}
	var file, key string
	if cgroups.Mode() == cgroups.Unified {
		file, key = filepath.Join(cgroupRoot, dir, "memory.events"), "oom_kill"
	} else {
		file, key = filepath.Join(cgroupRoot, "memory", dir, "memory.oom_control"), "oom_kill"
	}
	f, err := os.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if ok && k == key {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n > 0
		}
	}
	return false
}

// logDirOf is the sandbox log directory of a container's log file at path, created as
// filepath.Join(logDir, logPath) with a local logPath.
func logDirOf(path, logPath string) string {
	rel := filepath.Clean(logPath)
	if dir, ok := strings.CutSuffix(path, string(filepath.Separator)+rel); ok && filepath.IsLocal(rel) {
		if dir == "" {
			return string(filepath.Separator)
		}
		return dir
	}
	return filepath.Dir(path)
}

// saveStartedRecord writes the status file of a container that started, off StartContainer's path
// (the write is fsynced: milliseconds). A daemon that dies before it finds the task running and
// takes the recovery time as the start. The record is taken when the write runs, under c.mu (read),
// so should the exit be recorded first, its record is what gets written, never an older one; a
// container being removed is not written (the removal deletes its dir).
func (r *ContainerdRuntime) saveStartedRecord(c *podContainer) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := c.saveRecordUnlessRemoving(); err != nil {
			logrus.WithError(err).WithField("container", c.meta.ID).Warn("write container status")
		}
	}()
}
