package server

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// BenchmarkGRPCList measures the kubelet's relist calls over the wire: the daemon's gRPC server
// (NewGRPCServer, its options and codec) on a unix socket, a client as the kubelet's, and 100
// pods with 5 containers each in a fake runtime. It is the encoding, framing and decoding that
// dominate a 500-container ListContainers (bench/results.md), not the runtime.
func BenchmarkGRPCList(b *testing.B) {
	sock := filepath.Join(b.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		b.Fatal(err)
	}
	s := NewGRPCServer(Options{Backend: legacytest.NewFakeRuntime(), Version: "bench"})
	go s.Serve(l)
	defer s.Stop()
	conn, err := grpc.NewClient("passthrough:///"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", a)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	rt := runtime.NewRuntimeServiceClient(conn)
	ctx := context.Background()
	for p := range 100 {
		cfg := podConfig(fmt.Sprint("pod", p))
		r, err := rt.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: cfg})
		if err != nil {
			b.Fatal(err)
		}
		for c := range 5 {
			if _, err := rt.CreateContainer(ctx, &runtime.CreateContainerRequest{PodSandboxId: r.PodSandboxId,
				Config: containerConfig(fmt.Sprint("c", c)), SandboxConfig: cfg}); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name string
		call func() error
	}{
		{"ListContainers", func() error {
			r, err := rt.ListContainers(ctx, &runtime.ListContainersRequest{})
			if err == nil && len(r.Containers) != 500 {
				err = fmt.Errorf("%d containers", len(r.Containers))
			}
			return err
		}},
		{"ListPodSandbox", func() error {
			r, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
			if err == nil && len(r.Items) != 100 {
				err = fmt.Errorf("%d pods", len(r.Items))
			}
			return err
		}},
		{"Version", func() error {
			_, err := rt.Version(ctx, &runtime.VersionRequest{})
			return err
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if err := c.call(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
