package kuberuntime

import (
	"context"
	"errors"
	"net"
	"time"

	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/ttrpc"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
)

// The shim of a pod without a pause process, reached by its address.
//
// The first task of such a pod starts the pod's shim ("containerd-shim-runc-v2 start", grouped by
// the io.kubernetes.cri.sandbox-id annotation). Every later task would make containerd run the
// shim binary once more just to learn the address of that shim (~8 ms of CPU and of
// StartContainer, for each init container, sidecar and restart). Instead, once the pod's shim
// runs, the pod gets a record in containerd's sandbox store and each later task is created with
// the shim's task API address (runc options TaskApiAddress / TaskApiVersion): containerd connects
// to it straight away, as it does for the containers of a pause pod.
//
// The containers' records name the sandbox (containers.Container.SandboxID): with the sandbox
// record there, that is what makes containerd use the address; without it (before the shim
// runs), containerd starts the shim as for any task. containerd then never asks the shim to shut
// down when it deletes one of those tasks: the pod's shim lives from its first task to the pod's
// stop, as a pause pod's shim does, and the stop shuts it down (shutdownPodShim). So a crash or
// the removal of the first container takes nothing from the pod's other containers.
//
// podSandbox.shimUp says the sandbox record is there; it is guarded by podSandbox.taskMu, and
// rebuilt at restart from the records containerd kept and the shim's socket.

// shimTaskAPIVersion is the version of the task API the runc shim serves, the first that lets
// containerd use a shim by its address.
const shimTaskAPIVersion = 3

// shimShutdownWait bounds the call that asks a pod's shim to exit.
const shimShutdownWait = 5 * time.Second

// podShimEndpoint is the task API endpoint of the shim of pod id, as containerd's task options
// take it.
func (r *ContainerdRuntime) podShimEndpoint(id string) string {
	sock := r.shimSocket(id)
	if sock == "" {
		return ""
	}
	return "ttrpc+unix://" + sock
}

// taskEndpointOptions are the runc task options that direct a task to the shim at endpoint. The
// task options replace the container's runtime options in the shim's create: they carry the
// handler's runc options too. Handlers with options of another type get none (and their tasks go
// the way of the first).
func taskEndpointOptions(h legacy.RuntimeHandler, endpoint string) (*runcoptions.Options, bool) {
	opts := &runcoptions.Options{}
	switch o := h.Options.(type) {
	case nil:
	case *runcoptions.Options:
		if o != nil {
			opts = proto.Clone(o).(*runcoptions.Options)
		}
	default:
		return nil, false
	}
	opts.TaskApiAddress, opts.TaskApiVersion = endpoint, shimTaskAPIVersion
	return opts, true
}

// handlerOf is the runtime handler of the sandbox (the default for an unknown name, as at create).
func (r *ContainerdRuntime) handlerOf(sb *podSandbox) legacy.RuntimeHandler {
	if h, ok := r.handlers[sb.meta.RuntimeHandler]; ok {
		return h
	}
	return r.handlers[""]
}

// podShimTarget directs a task to a running shim: its endpoint, and the task options that carry it.
type podShimTarget struct {
	endpoint string
	options  *runcoptions.Options
}

// podShimForTask is where the next task of the pod is created: in the pod's shim when it is up and
// still listening, nil when the task is to start it. Called with sb.taskMu held.
func (r *ContainerdRuntime) podShimForTask(ctx context.Context, sb *podSandbox) *podShimTarget {
	if !sb.shimUp {
		return nil
	}
	if !shimListening(r.shimSocket(sb.meta.ID)) {
		// Killed, or shut down with the task of a container whose record does not name the pod
		// (made by an earlier version): the next task starts a shim again.
		logrus.WithField("sandbox", sb.meta.ID).Info("the pod's shim is gone: the next task starts one")
		r.forgetPodShim(ctx, sb)
		return nil
	}
	endpoint := r.podShimEndpoint(sb.meta.ID)
	opts, ok := taskEndpointOptions(r.handlerOf(sb), endpoint)
	if !ok {
		return nil
	}
	return &podShimTarget{endpoint: endpoint, options: opts}
}

// notePodShimUp records, after a task of the pod was made without an endpoint, that the pod's
// shim runs: the sandbox record that lets the next tasks reach it by address. Called with
// sb.taskMu held. Failing costs only speed: the next task starts through the shim binary.
func (r *ContainerdRuntime) notePodShimUp(ctx context.Context, sb *podSandbox) {
	if sb.shimUp || r.podShimEndpoint(sb.meta.ID) == "" || !shimListening(r.shimSocket(sb.meta.ID)) {
		return
	}
	if _, ok := taskEndpointOptions(r.handlerOf(sb), ""); !ok {
		return
	}
	if err := r.createSandboxRecord(ctx, sb.meta.ID, sb.meta.RuntimeType); err != nil {
		logrus.WithError(err).WithField("sandbox", sb.meta.ID).Warn("record the pod's shim in containerd's sandbox store")
		return
	}
	sb.shimUp = true
}

// forgetPodShim deletes the sandbox record of the pod's shim. Called with sb.taskMu held.
func (r *ContainerdRuntime) forgetPodShim(ctx context.Context, sb *podSandbox) {
	if err := r.deleteSandboxRecord(ctx, sb.meta.ID); err != nil {
		logrus.WithError(err).WithField("sandbox", sb.meta.ID).Warn("delete the sandbox record of the pod's shim")
		return
	}
	sb.shimUp = false
}

// shutdownPodShim asks the pod's shim to exit, once the pod's tasks are deleted, and forgets it.
// A shim that still serves a task stays (the runc shim exits only without one): the removal of
// the sandbox kills what is left (killOrphanShim).
func (r *ContainerdRuntime) shutdownPodShim(ctx context.Context, sb *podSandbox) {
	sb.taskMu.Lock()
	defer sb.taskMu.Unlock()
	sock := r.shimSocket(sb.meta.ID)
	if shimListening(sock) {
		if err := askShimToExit(ctx, sock, sb.meta.ID); err != nil {
			logrus.WithError(err).WithField("sandbox", sb.meta.ID).Warn("shut the pod's shim down")
		}
	}
	if sb.shimUp {
		r.forgetPodShim(ctx, sb)
	}
}

// askShimToExit calls the Shutdown of the shim listening on sock, bounded.
func askShimToExit(ctx context.Context, sock, id string) error {
	ctx, cancel := context.WithTimeout(ctx, shimShutdownWait)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", sock)
	if err != nil {
		return err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	_, err = taskv3.NewTTRPCTaskClient(client).Shutdown(ctx, &taskv3.ShutdownRequest{ID: id})
	if errors.Is(err, ttrpc.ErrClosed) {
		return nil // exited before it answered
	}
	return err
}

// recoverPodShims marks, after a restart, the pods without a pause process whose shim has a
// sandbox record and still listens; a record whose shim is gone is deleted.
func (r *ContainerdRuntime) recoverPodShims(ctx context.Context, records map[string]bool) {
	for id := range records {
		sb := r.sandboxes.exact(id)
		if sb == nil || !sb.meta.PauseLess {
			continue
		}
		sb.taskMu.Lock()
		if shimListening(r.shimSocket(id)) {
			sb.shimUp = true
		} else {
			// Up until its record is gone: were the delete to fail, the next task would find the
			// record without an address (containerd then looks for a shim it does not have), so it
			// retries the delete first (podShimForTask).
			sb.shimUp = true
			r.forgetPodShim(ctx, sb)
		}
		sb.taskMu.Unlock()
	}
}
