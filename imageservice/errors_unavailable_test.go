package imageservice

import (
	"fmt"
	"testing"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// A containerd call failing because containerd does not answer (the client turns the gRPC
// Unavailable into errdefs.ErrUnavailable) is Unavailable to the kubelet, not Internal.
func TestInternalStatusContainerdDown(t *testing.T) {
	down := errgrpc.ToNative(status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial unix /x.sock: connect: connection refused"`))
	for _, err := range []error{down, fmt.Errorf("walk snapshotter overlayfs: %w", down)} {
		if got := status.Code(internalStatus("image fs info", err)); got != codes.Unavailable {
			t.Errorf("%v: code %s, want Unavailable", err, got)
		}
	}
	if got := status.Code(internalStatus("x", fmt.Errorf("disk on fire"))); got != codes.Internal {
		t.Errorf("other failure: %s, want Internal", got)
	}
}
