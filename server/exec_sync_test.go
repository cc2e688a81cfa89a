package server

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/legacy/legacytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// bigExecBackend answers ExecSync with as much output as the runtime may return: stdout and
// stderr bytes of each stream (each at most legacy.MaxExecSyncOutput).
type bigExecBackend struct {
	legacytest.FakeRuntime
	stdout, stderr int
}

func (b *bigExecBackend) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*legacy.ExecSyncResult, error) {
	return &legacy.ExecSyncResult{Stdout: bytes.Repeat([]byte("o"), b.stdout), Stderr: bytes.Repeat([]byte("e"), b.stderr), ExitCode: -1}, nil
}

// TestExecSyncResponseFitsSendLimit: a command whose output is over the gRPC message limit on both
// streams gets its output truncated to fit the response under the limit (as the CRI asks: the
// response is capped at 16 MiB), not ResourceExhausted. The client is the kubelet's: it receives
// messages of up to 16 MiB.
func TestExecSyncResponseFitsSendLimit(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		stdout, stderr         int
		wantStdout, wantStderr int // -1: the budget's rest
	}{
		{stdout: 16 * mib, stderr: 16 * mib, wantStdout: -1, wantStderr: -1},
		{stdout: 16 * mib, stderr: 100, wantStdout: -1, wantStderr: 100},
		{stdout: 10, stderr: 16 * mib, wantStdout: 10, wantStderr: -1},
		{stdout: 7 * mib, stderr: 16 * mib, wantStdout: 7 * mib, wantStderr: -1},
		{stdout: 7 * mib, stderr: 8 * mib, wantStdout: 7 * mib, wantStderr: 8 * mib},
	} {
		b := &bigExecBackend{stdout: tc.stdout, stderr: tc.stderr}
		lis := bufconn.Listen(1 << 20)
		s := NewGRPCServer(Options{Backend: b})
		go s.Serve(lis)
		conn, err := grpc.NewClient("passthrough:///bufnet",
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsgSize)))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := runtime.NewRuntimeServiceClient(conn).ExecSync(context.Background(), &runtime.ExecSyncRequest{ContainerId: "c", Cmd: []string{"big"}})
		conn.Close()
		s.Stop()
		if err != nil {
			t.Fatalf("%d+%d bytes: %v", tc.stdout, tc.stderr, err)
		}
		if n := proto.Size(resp); n > MaxMsgSize {
			t.Fatalf("response of %d bytes", n)
		}
		// What is dropped is the end of a stream; the stream over half of the budget gives way.
		rest := MaxMsgSize - execSyncOverhead
		want := func(w, other int) int {
			if w == -1 {
				if other == -1 {
					return rest / 2
				}
				return rest - other
			}
			return w
		}
		ws, we := want(tc.wantStdout, tc.wantStderr), want(tc.wantStderr, tc.wantStdout)
		if len(resp.Stdout) != ws || len(resp.Stderr) != we || resp.ExitCode != -1 ||
			bytes.Count(resp.Stdout, []byte("o")) != ws || bytes.Count(resp.Stderr, []byte("e")) != we {
			t.Fatalf("%d+%d bytes: got %d+%d, want %d+%d (exit %d)", tc.stdout, tc.stderr, len(resp.Stdout), len(resp.Stderr), ws, we, resp.ExitCode)
		}
	}
}
