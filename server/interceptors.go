package server

import (
	"context"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var rpcDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
	Namespace: "cri_shim",
	Name:      "grpc_request_duration_seconds",
	Help:      "Duration of CRI gRPC requests by method and status code.",
	Buckets:   []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
}, []string{"method", "code"})

var rpcPanics = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: "cri_shim",
	Name:      "grpc_panics_total",
	Help:      "CRI gRPC handlers that panicked (answered Internal).",
}, []string{"method"})

// Collectors are the Prometheus collectors of this package, for the daemon's registry.
func Collectors() []prometheus.Collector { return []prometheus.Collector{rpcDuration, rpcPanics} }

// UnaryInterceptor logs and times every unary call and turns a panic into an Internal error.
func UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = panicError(info.FullMethod, r)
			resp = nil
		}
		observe(info.FullMethod, start, err)
	}()
	return handler(ctx, req)
}

// StreamInterceptor does the same for streaming calls.
func StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = panicError(info.FullMethod, r)
		}
		observe(info.FullMethod, start, err)
	}()
	return handler(srv, ss)
}

func panicError(method string, r any) error {
	rpcPanics.WithLabelValues(method).Inc()
	logrus.WithFields(logrus.Fields{"method": method, "panic": fmt.Sprint(r)}).Errorf("handler panicked\n%s", debug.Stack())
	return status.Errorf(codes.Internal, "internal error in %s: %v", method, r)
}

func observe(method string, start time.Time, err error) {
	d := time.Since(start)
	code := status.Code(err)
	rpcDuration.WithLabelValues(method, code.String()).Observe(d.Seconds())
	if err == nil && !logrus.IsLevelEnabled(logrus.DebugLevel) {
		return // the common case: no log entry to build
	}
	entry := logrus.WithFields(logrus.Fields{"method": method, "duration": d, "code": code.String()})
	switch {
	case err == nil:
		entry.Debug("cri call")
	case code == codes.Unimplemented || code == codes.NotFound || code == codes.AlreadyExists:
		entry.WithError(err).Debug("cri call")
	case code == codes.Internal || code == codes.Unknown:
		entry.WithError(err).Error("cri call")
	default:
		entry.WithError(err).Info("cri call")
	}
}
