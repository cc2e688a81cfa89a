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
	"net/url"
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
// InvalidArgument (bad reference), NotFound (the registry answered that the repository, tag or
// digest does not exist), Unauthenticated / PermissionDenied (the registry or its token server
// answered 401 / 403), Unavailable (registry unreachable: no such host, DNS failure, connection
// refused, TLS handshake failure; stalled; or answering garbage), Canceled / DeadlineExceeded
// (the request ended), Internal (local failures such as unpacking).
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
	if errors.Is(err, errUnreachable) || errors.Is(err, errGarbage) {
		return codes.Unavailable
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
	// A registry host that does not resolve, even "no such host" (NXDOMAIN), is a registry that
	// cannot be reached, not an image that does not exist: a DNS outage or a node without a
	// route answers the same, and the kubelet retries Unavailable. NotFound is kept for what
	// the registry itself says it lacks.
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
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
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		// TLS to a plain-HTTP server: net/http replaces the handshake's RecordHeaderError by
		// this error, wrapping nothing.
		errors.Is(err, http.ErrSchemeMismatch):
		return codes.Unavailable
	case errors.As(err, &syntaxErr), errors.As(err, &typeErr):
		// The registry answered something that is not a manifest or index.
		return codes.Unavailable
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return codes.Unavailable
	}
	// Any other failure of an HTTP exchange with the registry (the request got no response:
	// a handshake or transport error the cases above do not name) is a registry that could
	// not be talked to. The registry's answers (401, 403, 404) are not url.Errors: they were
	// mapped above. Context ends were too.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
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
