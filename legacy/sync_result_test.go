package legacy

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// A failed action's cause keeps its class through PodSyncResult.Error, beside the action's sentinel.
func TestPodSyncResultErrorKeepsTheCauseClass(t *testing.T) {
	var result PodSyncResult
	start := NewSyncResult(StartContainer, "pod_ns")
	start.FailErr(ErrRunContainer, fmt.Errorf("sandbox spec: seccomp: unknown profile: %w", errdefs.ErrInvalidArgument))
	result.AddSyncResult(start, NewSyncResult(SetupNetwork, "pod_ns"))
	err := result.Error()
	if !errdefs.IsInvalidArgument(err) {
		t.Errorf("%v: not of class InvalidArgument", err)
	}
	if !errors.Is(err, ErrRunContainer) {
		t.Errorf("%v: does not wrap ErrRunContainer", err)
	}
	if !strings.Contains(err.Error(), "seccomp: unknown profile") || !strings.Contains(err.Error(), "RunContainerError") {
		t.Errorf("message %q lacks the sentinel or the cause", err)
	}
	if start.Message != start.Err.Error() {
		t.Errorf("message %q is not the cause's", start.Message)
	}
}

// A failure recorded by Fail has only the sentinel: no class of a former cause.
func TestSyncResultFailDropsAFormerCause(t *testing.T) {
	r := NewSyncResult(StartContainer, "pod_ns")
	r.FailErr(ErrRunContainer, errdefs.ErrNotFound)
	r.Fail(ErrCrashLoopBackOff, "back-off")
	err := PodSyncResult{SyncResults: []*SyncResult{r}}.Error()
	if errdefs.IsNotFound(err) || !errors.Is(err, ErrCrashLoopBackOff) {
		t.Errorf("%v: the former cause is kept or the sentinel lost", err)
	}
}
