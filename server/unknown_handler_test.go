package server

import (
	"context"
	"strings"
	"testing"

	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestRunPodSandboxUnknownHandler: a handler that is not configured is InvalidArgument naming the
// configured ones.
func TestRunPodSandboxUnknownHandler(t *testing.T) {
	fake := legacytest.NewFakeRuntime()
	fake.Handlers = []string{"runc", "crun"}
	c := dial(t, Options{Backend: fake, Version: "test", RuntimeHandlers: []string{"runc", "crun"}})
	_, err := c.RunPodSandbox(context.Background(), &runtime.RunPodSandboxRequest{
		Config:         &runtime.PodSandboxConfig{Metadata: &runtime.PodSandboxMetadata{Name: "p", Namespace: "ns", Uid: "u"}},
		RuntimeHandler: "gvisor",
	})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"gvisor" (configured: runc, crun)`) {
		t.Fatalf("got %v, want InvalidArgument naming runc and crun", err)
	}
}
