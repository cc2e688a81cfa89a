package server

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// failingSandboxBackend fails RunPodSandbox's StartContainer step with cause, as the containerd
// runtime does when the pause container cannot be made.
type failingSandboxBackend struct {
	*legacytest.FakeRuntime
	cause error
}

func (b *failingSandboxBackend) RunPodSandbox(_ context.Context, config *runtime.PodSandboxConfig, _ string) (string, legacy.PodSyncResult) {
	var result legacy.PodSyncResult
	full := legacy.BuildPodFullName(config.GetMetadata().GetName(), config.GetMetadata().GetNamespace())
	start := legacy.NewSyncResult(legacy.StartContainer, full)
	start.FailErr(legacy.ErrRunContainer, b.cause)
	result.AddSyncResult(start, legacy.NewSyncResult(legacy.SetupNetwork, full))
	return "", result
}

// The gRPC code of a failed RunPodSandbox is the class of the failed step's cause.
func TestRunPodSandboxStepFailureKeepsItsClass(t *testing.T) {
	for _, tc := range []struct {
		cause error
		code  codes.Code
	}{
		{fmt.Errorf("sandbox spec: seccomp: unknown profile bogus: %w", errdefs.ErrInvalidArgument), codes.InvalidArgument},
		{fmt.Errorf("create pause container: %w", errdefs.ErrNotFound), codes.NotFound},
		{fmt.Errorf("create pause task: %w", errdefs.ErrUnavailable), codes.Unavailable},
		{fmt.Errorf("start pause task: exit status 1"), codes.Unknown},
	} {
		c := dial(t, Options{Backend: &failingSandboxBackend{FakeRuntime: legacytest.NewFakeRuntime(), cause: tc.cause}, Version: "test"})
		_, err := c.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{Config: podConfig("p")})
		if status.Code(err) != tc.code {
			t.Errorf("cause %v: got %v, want %v", tc.cause, err, tc.code)
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "RunContainerError") || !strings.Contains(msg, tc.cause.Error()) {
			t.Errorf("message %q lacks the step's sentinel or its cause", msg)
		}
	}
}
