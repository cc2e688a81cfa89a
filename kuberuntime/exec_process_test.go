package kuberuntime

import (
	"context"
	"errors"
	"testing"
	"time"
)

// An exec killed at its timeout answers DeadlineExceeded, which the kubelet takes for a probe's
// timeout, and ExecSync tells it from other errors to return the output read until then.
func TestExecTimeoutError(t *testing.T) {
	var err error = &execTimeoutError{container: "abc", timeout: 2 * time.Second}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v does not wrap DeadlineExceeded", err)
	}
	if want := "exec in container abc: timeout 2s exceeded: context deadline exceeded"; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
	var te *execTimeoutError
	if errors.As(context.DeadlineExceeded, &te) {
		t.Fatal("a caller's deadline taken for the exec's timeout")
	}
}
