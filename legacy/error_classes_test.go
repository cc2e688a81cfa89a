package legacy_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
)

// The model's classes and containerd's errdefs recognize each other, through wrapping, both ways:
// the server maps either to the same gRPC code.
func TestErrorClassesAgreeWithErrdefs(t *testing.T) {
	for _, c := range []struct {
		model, errdefs error
		isModel        func(error) bool
		isErrdefs      func(error) bool
	}{
		{legacy.ErrInvalidArgument, errdefs.ErrInvalidArgument, legacy.IsInvalidArgument, errdefs.IsInvalidArgument},
		{legacy.ErrNotFound, errdefs.ErrNotFound, legacy.IsNotFound, errdefs.IsNotFound},
		{legacy.ErrAlreadyExists, errdefs.ErrAlreadyExists, legacy.IsAlreadyExists, errdefs.IsAlreadyExists},
		{legacy.ErrFailedPrecondition, errdefs.ErrFailedPrecondition, legacy.IsFailedPrecondition, errdefs.IsFailedPrecondition},
		{legacy.ErrNotImplemented, errdefs.ErrNotImplemented, legacy.IsNotImplemented, errdefs.IsNotImplemented},
	} {
		ours := fmt.Errorf("sandbox %q: %w", "x", c.model)
		theirs := fmt.Errorf("containerd: %w", c.errdefs)
		joined := errors.Join(errors.New("other"), fmt.Errorf("deep: %w", ours))
		if !c.isErrdefs(ours) || !errors.Is(ours, c.errdefs) || !c.isErrdefs(joined) {
			t.Errorf("errdefs does not see %v in %q", c.errdefs, ours)
		}
		if !c.isModel(theirs) || !c.isModel(ours) || !c.isModel(joined) {
			t.Errorf("the model does not see %v in %q", c.model, theirs)
		}
		if c.isModel(errors.New("plain")) || c.isModel(nil) {
			t.Errorf("a plain error is of class %v", c.model)
		}
	}
	// Classes stay apart.
	if legacy.IsNotFound(legacy.ErrInvalidArgument) || errdefs.IsNotFound(legacy.ErrInvalidArgument) || errors.Is(legacy.ErrNotFound, errdefs.ErrAlreadyExists) {
		t.Error("classes mix")
	}
}
