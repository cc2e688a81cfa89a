package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/streaming"
	"github.com/sirupsen/logrus"
)

var errNoNetNS = errors.New("sandbox has no network namespace")

// PortForward copies between stream and port on the loopback of the pod sandbox's network
// namespace (IPv4, else IPv6; the host's for a pod on the host network) until either side is
// done. An unknown sandbox is NotFound, one that is not ready FailedPrecondition; a port nobody
// listens on is an error (the streaming server reports it on the stream's error stream).
func (r *ContainerdRuntime) PortForward(ctx context.Context, podSandboxID string, port int32, stream io.ReadWriteCloser) error {
	netns, err := r.sandboxNetNS(podSandboxID)
	if err != nil {
		return err
	}
	conn, err := streaming.DialPort(ctx, netns, port)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", podSandboxID, err)
	}
	logrus.WithFields(logrus.Fields{"sandbox": podSandboxID, "port": port}).Debug("port-forward connected")
	return streaming.Forward(ctx, stream, conn)
}

// sandboxNetNS is the path of the ready sandbox's network namespace, "" for the host network.
func (r *ContainerdRuntime) sandboxNetNS(id string) (string, error) {
	sb, err := r.sandboxes.get(id)
	if err != nil {
		return "", err
	}
	st := sb.status()
	if st.State != legacy.SandboxStateReady {
		return "", fmt.Errorf("sandbox %s is not ready: %w", sb.meta.ID, errdefs.ErrFailedPrecondition)
	}
	if st.HostNetwork {
		return "", nil
	}
	if st.NetNSPath == "" {
		return "", fmt.Errorf("sandbox %s: %w", sb.meta.ID, errNoNetNS)
	}
	return st.NetNSPath, nil
}
