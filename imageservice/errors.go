package imageservice

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NoProgressError cancels a pull that transferred nothing for Timeout.
type NoProgressError struct {
	Timeout time.Duration
}

func (e *NoProgressError) Error() string {
	return fmt.Sprintf("no progress for %s, pull cancelled (image_pull_progress_timeout)", e.Timeout)
}

// pullStatus turns a pull failure into a gRPC status error whose code says what went wrong:
// InvalidArgument (bad reference), NotFound (no such repository, tag or registry host),
// Unauthenticated / PermissionDenied (credentials), Unavailable (registry unreachable, stalled,
// or answering garbage), Canceled / DeadlineExceeded (the request ended), Internal (local
// failures such as unpacking).
func pullStatus(what string, err error) error {
	if err == nil {
		return nil
	}
	code := pullCode(err)
	msg := fmt.Sprintf("%s: %v", what, err)
	switch code {
	case codes.Unauthenticated:
		msg += " (check the pull credentials)"
	case codes.NotFound:
		if !strings.Contains(msg, "not found") {
			msg += ": not found"
		}
	}
	return status.Error(code, msg)
}

func pullCode(err error) codes.Code {
	var noProgress *NoProgressError
	if errors.As(err, &noProgress) {
		return codes.Unavailable
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return codes.DeadlineExceeded
	}
	if errors.Is(err, context.Canceled) {
		return codes.Canceled
	}
	var unexpected remoteerrors.ErrUnexpectedStatus
	if errors.As(err, &unexpected) {
		switch unexpected.StatusCode {
		case http.StatusUnauthorized:
			return codes.Unauthenticated
		case http.StatusForbidden:
			return codes.PermissionDenied
		case http.StatusNotFound:
			return codes.NotFound
		case http.StatusBadRequest:
			return codes.InvalidArgument
		}
		return codes.Unavailable
	}
	if errors.Is(err, docker.ErrInvalidAuthorization) {
		return codes.Unauthenticated
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return codes.NotFound
		}
		return codes.Unavailable
	}
	var (
		opErr     *net.OpError
		certErr   *tls.CertificateVerificationError
		unknownCA x509.UnknownAuthorityError
		hostErr   x509.HostnameError
		recordErr tls.RecordHeaderError
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &opErr), errors.As(err, &certErr), errors.As(err, &unknownCA),
		errors.As(err, &hostErr), errors.As(err, &recordErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return codes.Unavailable
	case errors.As(err, &syntaxErr), errors.As(err, &typeErr):
		// The registry answered something that is not a manifest or index.
		return codes.Unavailable
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return codes.Unavailable
	}
	if errdefs.IsNotFound(err) {
		return codes.NotFound
	}
	if errdefs.IsUnavailable(err) {
		return codes.Unavailable
	}
	if errdefs.IsNotImplemented(err) {
		return codes.FailedPrecondition // e.g. schema 1 manifests
	}
	if errdefs.IsFailedPrecondition(err) {
		// A blob whose content does not match its digest: the registry sent garbage or
		// truncated data.
		return codes.Unavailable
	}
	if errdefs.IsInvalidArgument(err) {
		return codes.Unavailable // a manifest or config that does not parse
	}
	if c := errgrpc.ToGRPC(err); status.Code(c) != codes.Unknown {
		return status.Code(c)
	}
	return codes.Unknown
}

// ctxStatus maps the end of a request's context to its gRPC code.
func ctxStatus(ctx context.Context, what string) error {
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Errorf(codes.DeadlineExceeded, "%s: %v", what, err)
	}
	return status.Errorf(codes.Canceled, "%s: %v", what, err)
}

// internalStatus reports a failure of containerd or of the service itself.
func internalStatus(what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && status.Code(err) != codes.Unknown {
		return status.Errorf(status.Code(err), "%s: %v", what, status.Convert(err).Message())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return status.Errorf(codes.DeadlineExceeded, "%s: %v", what, err)
	}
	if errors.Is(err, context.Canceled) {
		return status.Errorf(codes.Canceled, "%s: %v", what, err)
	}
	if errdefs.IsNotFound(err) {
		return status.Errorf(codes.NotFound, "%s: %v", what, err)
	}
	// containerd not answering (being restarted): Unavailable, which the kubelet retries, not
	// Internal (found by the containerd-crash test in cmd/cri-shim/restart_integration_test.go).
	if errdefs.IsUnavailable(err) {
		return status.Errorf(codes.Unavailable, "%s: %v", what, err)
	}
	return status.Errorf(codes.Internal, "%s: %v", what, err)
}
