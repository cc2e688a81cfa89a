package server

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ProtectFunc tells whether the CRI calls that stop, remove or change a pod's sandboxes and
// containers must be refused: it gets the pod's UID and the labels of the sandbox or container,
// and returns why it is protected (who owns it and how to delete it instead), or "" when it is not.
type ProtectFunc func(podUID string, labels map[string]string) string

// labelPodUID is the kubelet's container label of its pod's UID.
const labelPodUID = "io.kubernetes.pod.uid"

// The refusals are logged by the interceptor ("cri call" with code FailedPrecondition).

// guardSandbox returns FailedPrecondition when Options.Protected protects the sandbox; an unknown
// sandbox is left to the call itself.
func (s *RuntimeServer) guardSandbox(ctx context.Context, op, id string) error {
	if s.opts.Protected == nil {
		return nil
	}
	st, err := s.opts.Backend.PodSandboxStatus(ctx, id, false)
	if err != nil {
		return nil
	}
	why := s.opts.Protected(string(st.UID), st.Labels)
	if why == "" {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition, "refusing to %s pod sandbox %s (pod %s/%s): %s", op, st.ID, st.Namespace, st.Name, why)
}

// guardContainer returns FailedPrecondition when Options.Protected protects the container (by its
// own labels: its pod's UID and owner); an unknown container is left to the call itself.
func (s *RuntimeServer) guardContainer(ctx context.Context, op, id string) error {
	if s.opts.Protected == nil {
		return nil
	}
	d, err := s.opts.Backend.ContainerStatus(ctx, id, false)
	if err != nil {
		return nil
	}
	labels := d.Config.GetLabels()
	why := s.opts.Protected(labels[labelPodUID], labels)
	if why == "" {
		return nil
	}
	return status.Errorf(codes.FailedPrecondition, "refusing to %s container %s (%s): %s", op, d.ID.ID, d.Name, why)
}

// OwnerLabel is the label the standalone pods manager puts on the sandboxes and containers it
// runs (standalone.LabelOwner). The manager protects what carries it from CRI clients and removes
// what carries it and names no manifest: a CRI client that could set it would have its pod
// protected from the kubelet, or killed in a loop (a kubelet copies a Pod's labels to its
// sandbox). So it is reserved: only the manager, which calls the runtime directly, sets it.
const OwnerLabel = "io.cri-shim.owner"

// refuseReservedLabels returns InvalidArgument when a CRI client's sandbox or container labels
// carry OwnerLabel (with any value).
func refuseReservedLabels(what string, labels map[string]string) error {
	if _, ok := labels[OwnerLabel]; ok {
		return status.Errorf(codes.InvalidArgument, "%s: label %s is reserved for cri-shim's standalone pods (only the daemon sets it)", what, OwnerLabel)
	}
	return nil
}
