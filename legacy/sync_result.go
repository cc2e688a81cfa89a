package legacy

import (
	"errors"
	"fmt"
)

// SyncAction is what one step of SyncPod, KillPod or a CRI sandbox operation did.
type SyncAction string

const (
	StartContainer  SyncAction = "StartContainer"
	KillContainer   SyncAction = "KillContainer"
	SetupNetwork    SyncAction = "SetupNetwork"
	TeardownNetwork SyncAction = "TeardownNetwork"
	// CreatePodSandbox, KillPodSandbox and RemovePodSandbox are the sandbox's own steps.
	CreatePodSandbox SyncAction = "CreatePodSandbox"
	KillPodSandbox   SyncAction = "KillPodSandbox"
	RemovePodSandbox SyncAction = "RemovePodSandbox"
)

// SyncResult is the result of one action.
type SyncResult struct {
	// Action done.
	Action SyncAction
	// Target of the action: a container name, or the pod full name for network actions.
	Target any
	// Error is the brief reason of a failure (one of the sentinel errors), nil on success.
	Error error
	// Message is the human-readable detail of the failure.
	Message string
	// Err is the cause of the failure when FailErr recorded it: kept whole so that its class
	// (errdefs) reaches the caller through PodSyncResult.Error.
	Err error
}

// NewSyncResult returns the result of action on target, successful until Fail is called.
func NewSyncResult(action SyncAction, target any) *SyncResult {
	return &SyncResult{Action: action, Target: target}
}

// Fail marks r failed with a brief error and a message; the failure has no class but the brief
// error's.
func (r *SyncResult) Fail(err error, msg string) {
	r.Error, r.Message, r.Err = err, msg, nil
}

// FailErr marks r failed with a brief error (one of the sentinels) and its cause, whose text is the
// message. PodSyncResult.Error then wraps both: errors.Is finds the sentinel and the cause's class.
func (r *SyncResult) FailErr(brief, cause error) {
	r.Error, r.Message, r.Err = brief, cause.Error(), cause
}

// PodSyncResult is the result of a whole pod operation.
type PodSyncResult struct {
	// SyncResults of every action.
	SyncResults []*SyncResult
	// SyncError is an error of the operation itself, not of one of its actions.
	SyncError error
}

// AddSyncResult appends results.
func (p *PodSyncResult) AddSyncResult(result ...*SyncResult) {
	p.SyncResults = append(p.SyncResults, result...)
}

// AddPodSyncResult merges another PodSyncResult into p.
func (p *PodSyncResult) AddPodSyncResult(result PodSyncResult) {
	p.AddSyncResult(result.SyncResults...)
	p.SyncError = errors.Join(p.SyncError, result.SyncError)
}

// Fail records an error of the operation itself.
func (p *PodSyncResult) Fail(err error) {
	p.SyncError = err
}

// Error aggregates the failures: nil when every action succeeded. The result wraps each action's
// brief error and cause (errors.Is finds the sentinel and the cause's errdefs class) and the
// operation's own error.
func (p PodSyncResult) Error() error {
	var errs []error
	if p.SyncError != nil {
		errs = append(errs, fmt.Errorf("failed to SyncPod: %w", p.SyncError))
	}
	for _, r := range p.SyncResults {
		if r.Error != nil {
			errs = append(errs, &syncError{r: r})
		}
	}
	return errors.Join(errs...)
}

// syncError is one failed action, printed as "failed to <Action> for <Target> with <Error>: <Message>".
type syncError struct{ r *SyncResult }

func (e *syncError) Error() string {
	return fmt.Sprintf("failed to %q for %q with %v: %q", e.r.Action, fmt.Sprint(e.r.Target), e.r.Error, e.r.Message)
}

func (e *syncError) Unwrap() []error {
	if e.r.Err == nil {
		return []error{e.r.Error}
	}
	return []error{e.r.Error, e.r.Err}
}
