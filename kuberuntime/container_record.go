package kuberuntime

import (
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The methods here are the only ones that take podContainer.mu: each is one transition (or one
// consistent read) of the container's mutable state, done under one hold of the lock.

// containerSnapshot is a copy of a container's mutable state, taken under one read lock.
type containerSnapshot struct {
	state legacy.ContainerState
	rec   containerRecord
	pid   uint32
	// resources are the current resources (nil: those of the config); replaced, never modified.
	resources *runtime.LinuxContainerResources
	io        *containerIO
	removing  bool
}

// snapshot copies the container's mutable state.
func (c *podContainer) snapshot() containerSnapshot {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return containerSnapshot{state: c.state, rec: c.rec, pid: c.pid, resources: c.resources, io: c.io, removing: c.removing}
}

// setIO attaches the stdio opened for the container's task.
func (c *podContainer) setIO(ctrIO *containerIO) {
	c.mu.Lock()
	c.io = ctrIO
	c.mu.Unlock()
}

// takeIO detaches the container's stdio and returns it (nil: none), for the caller to close.
func (c *podContainer) takeIO() *containerIO {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctrIO := c.io
	c.io = nil
	return ctrIO
}

// closeIO closes the container's stdio at once (no drain) and detaches it.
func (c *podContainer) closeIO() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.io != nil {
		c.io.close(0)
		c.io = nil
	}
}

// markRunning records that the container's task (process pid) started now.
func (c *podContainer) markRunning(pid uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state, c.pid = legacy.ContainerStateRunning, pid
	c.rec.StartedAt = time.Now()
}

// markStartFailed records a start that failed with err: its stdio closed, the container exited
// (code 128, reason StartError) and its status file written. Closing exited is the caller's
// (after its event).
func (c *podContainer) markStartFailed(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.io != nil {
		c.io.close(0)
		c.io = nil
	}
	c.state = legacy.ContainerStateExited
	c.rec.FinishedAt = time.Now()
	c.rec.ExitCode = 128
	c.rec.Reason, c.rec.Message = legacy.ReasonStartError, err.Error()
	_ = c.saveRecordLocked()
}

// beginExitHandling notes that the exit of the task is being handled: taskGone (the first one
// given) is closed once the exited task is deleted.
func (c *podContainer) beginExitHandling(taskGone chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.taskGone == nil {
		c.taskGone = taskGone
	}
}

// exitHandled tells whether the exit of the task is being (or was) handled.
func (c *podContainer) exitHandled() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.taskGone != nil
}

// taskGoneCh is closed once the exited task is deleted; nil while no exit is handled.
func (c *podContainer) taskGoneCh() chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.taskGone
}

// markOOMKilled notes that the container was OOM-killed: its exit reason is then OOMKilled, also
// when its exit is recorded already. containerd's OOM event may come after the exit: under the
// systemd cgroup driver systemd removes a container's scope, memory.events with it, as soon as its
// last process is gone, so the exit finds no OOM count to read and only the event tells it. It
// returns whether a recorded exit's reason changed, and the error of writing the status file then.
func (c *podContainer) markOOMKilled() (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.oomKilled = true
	if c.state != legacy.ContainerStateExited || c.rec.Reason == legacy.ReasonOOMKilled || c.rec.Reason == legacy.ReasonStartError {
		return false, nil
	}
	c.rec.Reason = legacy.ReasonOOMKilled
	if c.removing {
		return true, nil
	}
	return true, c.saveRecordLocked()
}

// markRemoving notes that the container is being removed: no start follows, and no status file
// is written any more.
func (c *podContainer) markRemoving() {
	c.mu.Lock()
	c.removing = true
	c.mu.Unlock()
}

// markExited records the exit of the container's task (code at at, oom when the cgroup saw an
// OOM kill, message the termination message) and writes the status file; then, still under the
// lock, it calls recorded (nil: none) and closes exited. It returns the reason, and false when the
// exit was recorded already (nothing done).
func (c *podContainer) markExited(code uint32, at time.Time, oom bool, message string, recorded func(saveErr error)) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == legacy.ContainerStateExited {
		return "", false
	}
	c.state, c.pid = legacy.ContainerStateExited, 0
	c.rec.FinishedAt = at
	c.rec.ExitCode = int32(code)
	switch {
	case oom || c.oomKilled:
		c.rec.Reason = legacy.ReasonOOMKilled
	case code == 0:
		c.rec.Reason = legacy.ReasonCompleted
	default:
		c.rec.Reason = legacy.ReasonError
	}
	c.rec.TerminationMessage = message
	err := c.saveRecordLocked()
	if recorded != nil {
		recorded(err)
	}
	close(c.exited)
	return c.rec.Reason, true
}

// setResources records the container's resources after an update and writes the status file.
func (c *podContainer) setResources(res *runtime.LinuxContainerResources) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resources = res
	return c.saveRecordLocked()
}

// saveRecord writes the status file.
func (c *podContainer) saveRecord() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.saveRecordLocked()
}

// saveRecordUnlessRemoving writes the status file unless the container is being removed (its
// removal deletes the dir).
func (c *podContainer) saveRecordUnlessRemoving() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.removing {
		return nil
	}
	return c.saveRecordLocked()
}
