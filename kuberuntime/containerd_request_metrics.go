package kuberuntime

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// containerdRequestDuration times every call the daemon makes to containerd, so that an operator
// can tell a slow containerd (or a slow disk under its metadata database) from a slow cri-shim,
// and count the containerd round trips behind each CRI call.
var containerdRequestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Namespace: "cri_shim",
	Name:      "containerd_request_duration_seconds",
	Help:      "Duration of the daemon's gRPC calls to containerd by method and status code (streams: until they end).",
	Buckets:   []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
}, []string{"method", "code"})

// ContainerdDialOptions are the gRPC dial options that time the containerd client's calls into
// cri_shim_containerd_request_duration_seconds (pass them with client.WithExtraDialOpts).
func ContainerdDialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(timeContainerdUnary),
		grpc.WithChainStreamInterceptor(timeContainerdStream),
	}
}

func timeContainerdUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	start := time.Now()
	err := invoker(ctx, method, req, reply, cc, opts...)
	containerdRequestDuration.WithLabelValues(method, status.Code(err).String()).Observe(time.Since(start).Seconds())
	return err
}

// timeContainerdStream observes a stream when it fails to open, or when RecvMsg first returns an
// error (io.EOF counts as OK): the stream's whole life, as for the server's streaming calls.
func timeContainerdStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	start := time.Now()
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil {
		containerdRequestDuration.WithLabelValues(method, status.Code(err).String()).Observe(time.Since(start).Seconds())
		return nil, err
	}
	return &timedClientStream{ClientStream: cs, method: method, start: start}, nil
}

type timedClientStream struct {
	grpc.ClientStream
	method string
	start  time.Time
	done   bool
}

func (s *timedClientStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil && !s.done {
		s.done = true
		code := codes.OK // io.EOF: the server ended the stream
		if !errors.Is(err, io.EOF) {
			code = status.Code(err)
		}
		containerdRequestDuration.WithLabelValues(s.method, code.String()).Observe(time.Since(s.start).Seconds())
	}
	return err
}
