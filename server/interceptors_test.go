package server

import (
	"context"
	"net"
	"testing"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type fakeBackend struct {
	legacytest.FakeRuntime
	panic bool
	conds []legacy.RuntimeCondition
}

func (f *fakeBackend) Status(ctx context.Context) []legacy.RuntimeCondition {
	if f.panic {
		panic("backend exploded")
	}
	return f.conds
}

func dial(t *testing.T, opts Options) runtime.RuntimeServiceClient {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	s := NewGRPCServer(opts)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtime.NewRuntimeServiceClient(conn)
}

func TestPanicBecomesInternalAndServerLives(t *testing.T) {
	be := &fakeBackend{panic: true}
	c := dial(t, Options{Backend: be, Version: "test"})
	ctx := context.Background()
	_, err := c.Status(ctx, &runtime.StatusRequest{})
	if status.Code(err) != codes.Internal {
		t.Fatalf("panicking handler: got %v, want Internal", err)
	}
	// The server is still serving after the panic.
	v, err := c.Version(ctx, &runtime.VersionRequest{})
	if err != nil || v.RuntimeName != RuntimeName || v.RuntimeApiVersion != "v1" || v.RuntimeVersion != "test" {
		t.Fatalf("after panic: %v, %v", v, err)
	}
	be.panic = false
	if _, err := c.Status(ctx, &runtime.StatusRequest{}); err != nil {
		t.Fatalf("status after panic: %v", err)
	}
}

func TestStreamInterceptorRecovers(t *testing.T) {
	info := &grpc.StreamServerInfo{FullMethod: "/test/Stream"}
	err := StreamInterceptor(nil, nil, info, func(srv any, ss grpc.ServerStream) error { panic("boom") })
	if status.Code(err) != codes.Internal {
		t.Fatalf("got %v, want Internal", err)
	}
}

func TestUnimplementedRPCs(t *testing.T) {
	c := dial(t, Options{Backend: &fakeBackend{}})
	_, err := c.CheckpointContainer(context.Background(), &runtime.CheckpointContainerRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("got %v, want Unimplemented", err)
	}
}

func TestStatusConditionsAndVerbose(t *testing.T) {
	be := &fakeBackend{conds: []legacy.RuntimeCondition{
		{Type: legacy.RuntimeReady, Status: true},
		{Type: legacy.NetworkReady, Status: false, Reason: "NetworkPluginNotReady", Message: "no config"},
	}}
	c := dial(t, Options{Backend: be, Config: func() any { return map[string]string{"socket": "/x.sock"} }, RecursiveReadOnlyMounts: true})
	resp, err := c.Status(context.Background(), &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	conds := resp.GetStatus().GetConditions()
	if len(conds) != 2 || !conds[0].Status || conds[1].Status || conds[1].Reason != "NetworkPluginNotReady" {
		t.Fatalf("conditions: %v", conds)
	}
	if resp.Info["config"] != `{"socket":"/x.sock"}` {
		t.Fatalf("verbose info: %v", resp.Info)
	}
	if len(resp.RuntimeHandlers) < 2 || resp.RuntimeHandlers[0].Name != "" || resp.RuntimeHandlers[1].Name != "runc" {
		t.Fatalf("handlers: %v", resp.RuntimeHandlers)
	}
	for _, h := range resp.RuntimeHandlers {
		if !h.GetFeatures().GetRecursiveReadOnlyMounts() {
			t.Errorf("handler %q does not advertise recursive read-only mounts", h.Name)
		}
	}
	rc, err := c.RuntimeConfig(context.Background(), &runtime.RuntimeConfigRequest{})
	if err != nil || rc.GetLinux().GetCgroupDriver() != runtime.CgroupDriver_CGROUPFS {
		t.Fatalf("runtime config: %v %v", rc, err)
	}
}
