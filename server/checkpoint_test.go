package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
)

// fakeCheckpointer is a FakeRuntime with checkpoint/restore that records its calls.
type fakeCheckpointer struct {
	*legacytest.FakeRuntime
	err     error
	timeout time.Duration
	restore legacy.RestorePodRequest
}

func (f *fakeCheckpointer) CheckpointContainer(_ context.Context, id, location string, timeout time.Duration) error {
	f.timeout = timeout
	return f.err
}

func (f *fakeCheckpointer) CheckpointPod(context.Context, string, string, []string, map[string]string) error {
	return f.err
}

func (f *fakeCheckpointer) RestorePod(_ context.Context, req legacy.RestorePodRequest) (string, map[string]string, error) {
	f.restore = req
	if f.err != nil {
		return "", nil, f.err
	}
	ids := map[string]string{}
	for _, c := range req.ContainerConfigs {
		ids[c.GetMetadata().GetName()] = "id-" + c.GetMetadata().GetName()
	}
	return "pod-1", ids, nil
}

func TestCheckpointRPCs(t *testing.T) {
	ctx := context.Background()
	check := func(what string, err error, want codes.Code) {
		t.Helper()
		if status.Code(err) != want {
			t.Errorf("%s: got %v, want %v", what, err, want)
		}
	}
	// A backend without checkpoint/restore.
	plain, _ := sandboxClient(t)
	_, err := plain.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{ContainerId: "c", Location: "/tmp/c.tar"})
	check("checkpoint without support", err, codes.Unimplemented)

	fake := &fakeCheckpointer{FakeRuntime: legacytest.NewFakeRuntime()}
	c := dial(t, Options{Backend: fake, Version: "test"})
	_, err = c.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{Location: "/tmp/c.tar"})
	check("checkpoint without id", err, codes.InvalidArgument)
	_, err = c.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{ContainerId: "c"})
	check("checkpoint without location", err, codes.InvalidArgument)
	_, err = c.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{ContainerId: "c", Location: "/tmp/c.tar", Timeout: -1})
	check("checkpoint with a negative timeout", err, codes.InvalidArgument)
	_, err = c.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{ContainerId: "c", Location: "/tmp/c.tar", Timeout: 7})
	check("checkpoint", err, codes.OK)
	if fake.timeout != 7*time.Second {
		t.Errorf("timeout passed as %v", fake.timeout)
	}
	fake.err = fmt.Errorf("no CRIU: %w", errdefs.ErrFailedPrecondition)
	_, err = c.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{ContainerId: "c", Location: "/tmp/c.tar"})
	check("checkpoint without CRIU", err, codes.FailedPrecondition)
	if msg := status.Convert(err).Message(); msg != fake.err.Error() {
		t.Errorf("checkpoint without CRIU: message %q, want the reason %q", msg, fake.err)
	}
	// A failed dump: the helper's own words are the status's message.
	fake.err = fmt.Errorf("checkpoint container c: runc did not terminate successfully: exit status 1 (CRIU: (00.1) Error (criu/cr-dump.c:1): boom)")
	_, err = c.CheckpointContainer(ctx, &runtime.CheckpointContainerRequest{ContainerId: "c", Location: "/tmp/c.tar"})
	if st := status.Convert(err); st.Code() != codes.Unknown || st.Message() != fake.err.Error() {
		t.Errorf("failed dump: %v, want Unknown with %q", err, fake.err)
	}
	fake.err = fmt.Errorf("no CRIU: %w", errdefs.ErrFailedPrecondition)

	_, err = c.CheckpointPod(ctx, &runtime.CheckpointPodRequest{OutputPath: "/tmp/x", ContainerIds: []string{"c"}})
	check("pod checkpoint without pod id", err, codes.InvalidArgument)
	_, err = c.CheckpointPod(ctx, &runtime.CheckpointPodRequest{PodSandboxId: "p", ContainerIds: []string{"c"}})
	check("pod checkpoint without output path", err, codes.InvalidArgument)
	_, err = c.CheckpointPod(ctx, &runtime.CheckpointPodRequest{PodSandboxId: "p", OutputPath: "/tmp/x"})
	check("pod checkpoint without containers", err, codes.InvalidArgument)
	_, err = c.CheckpointPod(ctx, &runtime.CheckpointPodRequest{PodSandboxId: "p", OutputPath: "/tmp/x", ContainerIds: []string{"c"}})
	check("pod checkpoint without CRIU", err, codes.FailedPrecondition)

	cfgs := []*runtime.ContainerConfig{containerConfig("a"), containerConfig("b")}
	_, err = c.RestorePod(ctx, &runtime.RestorePodRequest{Config: podConfig("p"), ContainerConfigs: cfgs})
	check("restore without path", err, codes.InvalidArgument)
	_, err = c.RestorePod(ctx, &runtime.RestorePodRequest{CheckpointPath: "/tmp/x", ContainerConfigs: cfgs})
	check("restore without config", err, codes.InvalidArgument)
	_, err = c.RestorePod(ctx, &runtime.RestorePodRequest{CheckpointPath: "/tmp/x", Config: podConfig("p")})
	check("restore without containers", err, codes.InvalidArgument)
	_, err = c.RestorePod(ctx, &runtime.RestorePodRequest{CheckpointPath: "/tmp/x", Config: podConfig("p"), ContainerConfigs: cfgs})
	check("restore without CRIU", err, codes.FailedPrecondition)
	fake.err = nil
	resp, err := c.RestorePod(ctx, &runtime.RestorePodRequest{CheckpointPath: "/tmp/x", Config: podConfig("p"), RuntimeHandler: "runc", ContainerConfigs: cfgs})
	if err != nil {
		t.Fatal(err)
	}
	if resp.PodSandboxId != "pod-1" || len(resp.RestoredContainers) != 2 || resp.RestoredContainers[1].Name != "b" || resp.RestoredContainers[1].ContainerId != "id-b" {
		t.Fatalf("restore response %v", resp)
	}
	if fake.restore.RuntimeHandler != "runc" || fake.restore.CheckpointPath != "/tmp/x" {
		t.Fatalf("restore request %+v", fake.restore)
	}
}
