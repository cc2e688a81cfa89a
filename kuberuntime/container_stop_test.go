package kuberuntime

import (
	"context"
	"errors"
	"testing"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/cri-shim/cri-shim/legacy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// closedTasks is containerd's task service for a task whose shim connection closed: every signal
// fails as containerd reports it, and a wait lasts until its context ends.
type closedTasks struct{ tasks.TasksClient }

func (closedTasks) Kill(context.Context, *tasks.KillRequest, ...grpc.CallOption) (*emptypb.Empty, error) {
	return nil, status.Error(codes.Unknown, "ttrpc: closed")
}

func (closedTasks) Wait(ctx context.Context, _ *tasks.WaitRequest, _ ...grpc.CallOption) (*tasks.WaitResponse, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// A container whose task just exited: the exit monitor deletes the task before the state says
// Exited, and a kill in between fails (seen as "KillContainerError: SIGKILL: ttrpc: closed" from
// RemoveContainer in a critest run). The stop is then over once the exit is recorded, not failed.
// A kill that fails with no exit being handled still fails.
func TestStopContainerKillFailsWhileExitHandled(t *testing.T) {
	client, err := containerd.New("", containerd.WithServices(containerd.WithTaskClient(closedTasks{})))
	if err != nil {
		t.Fatal(err)
	}
	r := &ContainerdRuntime{client: client, namespace: "test", bg: context.Background()}
	newCtr := func() *podContainer {
		return &podContainer{meta: containerMetadata{ID: "c1"}, state: legacy.ContainerStateRunning, exited: make(chan struct{})}
	}
	ctx := context.Background()

	c := newCtr()
	if err := r.stopContainer(ctx, c, 0); !errors.Is(err, legacy.ErrKillContainer) {
		t.Fatalf("kill failing, no exit: %v, want %v", err, legacy.ErrKillContainer)
	}
	if err := r.stopContainer(ctx, c, time.Second); !errors.Is(err, legacy.ErrKillContainer) {
		t.Fatalf("stop signal failing, no exit: %v, want %v", err, legacy.ErrKillContainer)
	}

	for _, timeout := range []time.Duration{0, time.Second} {
		c = newCtr()
		c.taskGone = make(chan struct{}) // the monitor took the exit: deleting the task
		go func() {
			time.Sleep(20 * time.Millisecond)
			close(c.exited)
		}()
		if err := r.stopContainer(ctx, c, timeout); err != nil {
			t.Fatalf("timeout %v, kill failing while the exit is handled: %v", timeout, err)
		}
		select {
		case <-c.exited:
		default:
			t.Fatalf("timeout %v: stop returned before the exit was recorded", timeout)
		}
	}
}
