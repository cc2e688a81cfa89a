package kuberuntime

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func requestCount(t *testing.T, method string, code codes.Code) uint64 {
	t.Helper()
	var m dto.Metric
	if err := containerdRequestDuration.WithLabelValues(method, code.String()).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

// TestContainerdDialOptionsTimeCalls: the dial options count every unary call and every stream,
// by method and status code, a stream once it has ended.
func TestContainerdDialOptionsTimeCalls(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "s.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	hs.SetServingStatus("up", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(lis)
	defer srv.Stop()
	conn, err := grpc.NewClient("unix://"+sock, append(ContainerdDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	const check, watch = "/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"
	okBefore, nfBefore, watchBefore := requestCount(t, check, codes.OK), requestCount(t, check, codes.NotFound), requestCount(t, watch, codes.Canceled)
	ctx := context.Background()
	for range 3 {
		if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "up"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "nothing"}); status.Code(err) != codes.NotFound {
		t.Fatalf("Check of an unknown service: %v", err)
	}
	if n := requestCount(t, check, codes.OK) - okBefore; n != 3 {
		t.Fatalf("%d OK Checks counted, want 3", n)
	}
	if n := requestCount(t, check, codes.NotFound) - nfBefore; n != 1 {
		t.Fatalf("%d NotFound Checks counted, want 1", n)
	}

	wctx, cancel := context.WithCancel(ctx)
	stream, err := hc.Watch(wctx, &healthpb.HealthCheckRequest{Service: "up"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if n := requestCount(t, watch, codes.Canceled) - watchBefore; n != 0 {
		t.Fatalf("a stream still open counted %d times", n)
	}
	cancel()
	for {
		if _, err := stream.Recv(); err != nil {
			break
		}
	}
	if _, err := stream.Recv(); err == nil {
		t.Fatal("Recv after the end")
	}
	if n := requestCount(t, watch, codes.Canceled) - watchBefore; n != 1 {
		t.Fatalf("the cancelled stream counted %d times, want once", n)
	}
}
