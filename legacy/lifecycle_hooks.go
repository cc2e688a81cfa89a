package legacy

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// MinimumGracePeriod is the least time a container is given to stop after its preStop hook used
// up the grace period (the kubelet's minimumGracePeriodInSeconds).
const MinimumGracePeriod = 2 * time.Second

// PostStartHookTimeout bounds a postStart hook: the pod's sync waits for it.
var PostStartHookTimeout = DefaultExecHookTimeout

// containerSpec returns the pod's container (init or regular) of that name, nil when none.
func (p *PodSpec) containerSpec(name string) *ContainerSpec {
	for _, cs := range [][]ContainerSpec{p.InitContainers, p.Containers} {
		for i := range cs {
			if cs[i].Config.GetMetadata().GetName() == name {
				return &cs[i]
			}
		}
	}
	return nil
}

// runHook runs handler within timeout: a runner that overstays it is left behind (as the
// kubelet's) and the hook fails as timed out.
func (s *PodSyncer) runHook(ctx context.Context, timeout time.Duration, pod *PodSpec, spec *ContainerSpec, id string, handler *LifecycleHandler) (string, error) {
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	type outcome struct {
		msg string
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		msg, err := s.Hooks.Run(hctx, id, pod, spec, handler)
		done <- outcome{msg, err}
	}()
	select {
	case o := <-done:
		if o.err != nil && o.msg == "" {
			o.msg = o.err.Error()
		}
		return o.msg, o.err
	case <-hctx.Done():
		err := fmt.Errorf("hook did not complete within %v: %w", timeout, hctx.Err())
		return err.Error(), err
	}
}

// runPostStart runs the container's postStart hook right after its start. A failed hook kills
// the container (the restart policy restarts it) and fails r with ErrPostStartHook.
func (s *PodSyncer) runPostStart(ctx context.Context, r *SyncResult, pod *PodSpec, spec ContainerSpec, id string) {
	if s.Hooks == nil || spec.Lifecycle == nil || spec.Lifecycle.PostStart == nil {
		return
	}
	name := spec.Config.GetMetadata().GetName()
	msg, err := s.runHook(ctx, PostStartHookTimeout, pod, &spec, id, spec.Lifecycle.PostStart)
	if err == nil {
		return
	}
	obj := pod.EventObject()
	logrus.WithError(err).WithFields(logrus.Fields{"pod": pod.FullName(), "container": name}).Warn("postStart hook failed")
	s.Recorder.Eventf(obj, EventTypeWarning, FailedPostStartHook, "%s", msg)
	s.Recorder.Eventf(obj, EventTypeNormal, KillingContainer, "Container %s failed its postStart hook, it will be killed", name)
	if kerr := s.killContainer(ctx, pod, id, name); kerr != nil {
		logrus.WithError(kerr).WithFields(logrus.Fields{"pod": pod.FullName(), "container": name}).Warn("kill container after its failed postStart hook")
	}
	r.Fail(ErrPostStartHook, msg)
}

// killContainer stops the container: its preStop hook first (when it has one and the pod a grace
// period), within the grace period, then its stop signal with what is left of it (at least
// MinimumGracePeriod). A failed or overdue hook does not keep the container from stopping.
func (s *PodSyncer) killContainer(ctx context.Context, pod *PodSpec, id, name string) error {
	grace := pod.StopTimeout
	spec := pod.containerSpec(name)
	if s.Hooks != nil && spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil && grace > 0 {
		start := time.Now()
		if msg, err := s.runHook(ctx, grace, pod, spec, id, spec.Lifecycle.PreStop); err != nil {
			logrus.WithError(err).WithFields(logrus.Fields{"pod": pod.FullName(), "container": name}).Warn("preStop hook failed")
			s.Recorder.Eventf(pod.EventObject(), EventTypeWarning, FailedPreStopHook, "%s", msg)
		}
		grace = max(grace-time.Since(start), MinimumGracePeriod)
	}
	return s.Runtime.StopContainer(ctx, id, grace)
}

// hasPreStop tells whether killing the running container c runs a preStop hook.
func (s *PodSyncer) hasPreStop(pod *PodSpec, c *ContainerDetails) bool {
	if s.Hooks == nil || c.State != ContainerStateRunning || pod.StopTimeout <= 0 {
		return false
	}
	spec := pod.containerSpec(c.Name)
	return spec != nil && spec.Lifecycle != nil && spec.Lifecycle.PreStop != nil
}

// killPod stops the pod: the running containers with a preStop hook one by one in parallel
// (hook, then stop), then every sandbox of status with the rest.
func (s *PodSyncer) killPod(ctx context.Context, pod *PodSpec, status *PodStatus, containers []*ContainerDetails) PodSyncResult {
	var result PodSyncResult
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, c := range containers {
		if !s.hasPreStop(pod, c) {
			continue
		}
		wg.Add(1)
		go func(c *ContainerDetails) {
			defer wg.Done()
			r := NewSyncResult(KillContainer, c.Name)
			if err := s.killContainer(ctx, pod, c.ID.ID, c.Name); err != nil {
				r.Fail(ErrKillContainer, err.Error())
			}
			mu.Lock()
			result.AddSyncResult(r)
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	kill := s.Runtime.KillPod(ctx, ConvertPodStatusToRunningPod(s.Runtime.Type(), status))
	result.AddPodSyncResult(kill)
	if err := kill.Error(); err != nil {
		s.Recorder.Eventf(pod.EventObject(), EventTypeWarning, FailedKillPod, "error killing pod: %v", err)
	}
	return result
}

// KillPod stops every sandbox of the pod's status and their containers, running the preStop
// hooks of the containers that have one first (bounded by the pod's grace period).
func (s *PodSyncer) KillPod(ctx context.Context, pod *PodSpec, status *PodStatus) PodSyncResult {
	var containers []*ContainerDetails
	if s.Hooks != nil {
		state := ContainerStateRunning
		for _, sb := range status.SandboxStatuses {
			cs, err := s.Runtime.ListContainers(ctx, &ContainerFilter{SandboxID: sb.ID, State: &state})
			if err != nil {
				// The pod is stopped regardless: its hooks are skipped.
				logrus.WithError(err).WithField("pod", pod.FullName()).Warn("list containers for their preStop hooks")
				continue
			}
			for _, c := range cs {
				if c.SandboxID == sb.ID {
					containers = append(containers, c)
				}
			}
		}
	}
	return s.killPod(ctx, pod, status, containers)
}
