package imageservice

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/containerd/v2/core/transfer"
	transferimage "github.com/containerd/containerd/v2/core/transfer/image"
	"github.com/containerd/containerd/v2/core/transfer/registry"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/platforms"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// viaTransfer tells whether a pull with auth goes through containerd's Transfer service.
// Pulls that carry credentials go the client way: containerd's registry client follows a
// redirect to the same host name on another port (or to a subdomain) with the Authorization
// header Go's HTTP client copies, and only the client path's transport (credScope.authorize)
// strips it; the Transfer service's credential callback has no bearer token (RegistryToken)
// either.
func (s *Service) viaTransfer(auth *runtime.AuthConfig) bool {
	return s.cfg.PullViaTransfer && !hasCredentials(auth)
}

func hasCredentials(auth *runtime.AuthConfig) bool {
	return auth != nil && (auth.Username != "" || auth.Password != "" || auth.Auth != "" || auth.IdentityToken != "" || auth.RegistryToken != "")
}

// fetchViaTransfer pulls ref, anonymously, through containerd's Transfer service: containerd
// talks to the registry (reading the hosts dir itself, under its own download limit and image
// verifiers), stores the record ref with labels and unpacks into snapshotter when its transfer
// config lists it. The tracker is fed from the service's progress events. It returns the image's
// target.
func (s *Service) fetchViaTransfer(ctx context.Context, ref, snapshotter string, labels map[string]string, hostDir string, tr *tracker) (ocispec.Descriptor, error) {
	opts := []registry.Opt{
		registry.WithHeaders(http.Header{"User-Agent": []string{userAgent}}),
	}
	if hostDir != "" {
		opts = append(opts, registry.WithHostDir(hostDir))
	}
	src, err := registry.NewOCIRegistry(ctx, ref, opts...)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	p := s.platformSpec()
	dst := transferimage.NewStore(ref,
		transferimage.WithPlatforms(p),
		transferimage.WithUnpack(p, snapshotter),
		transferimage.WithImageLabels(labels),
	)
	prog := newTransferProgress(tr)
	if err := s.client.Transfer(ctx, src, dst, transfer.WithProgress(prog.update)); err != nil {
		return ocispec.Descriptor{}, transferError(err)
	}
	prog.finish()
	rec, err := s.client.ImageService().Get(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("image record after transfer: %w", err)
	}
	// containerd unpacks only into the snapshotters of its transfer config's unpack_config
	// (it skips the others with a warning): unpack here what it left.
	img := containerd.NewImageWithPlatform(s.client, images.Image{Name: ref, Target: rec.Target, Labels: labels}, s.platform)
	unpacked, err := img.IsUnpacked(ctx, snapshotter)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("check unpack into %s: %w", snapshotter, err)
	}
	if !unpacked {
		if err := img.Unpack(ctx, snapshotter); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("unpack into %s: %w", snapshotter, err)
		}
	}
	return rec.Target, nil
}

// platformSpec is the platform pulls are for, as the Transfer service's image store takes it.
func (s *Service) platformSpec() ocispec.Platform {
	if s.cfg.Platform != "" {
		if p, err := platforms.Parse(s.cfg.Platform); err == nil {
			return p
		}
	}
	return platforms.DefaultSpec()
}

// transferProgress turns the Transfer service's progress events into the tracker's state: the
// bytes of each blob, and the blobs being downloaded as its active requests (the no-progress
// timeout's "waiting for the registry").
type transferProgress struct {
	tr *tracker

	mu     sync.Mutex
	active map[string]bool
}

func newTransferProgress(tr *tracker) *transferProgress {
	return &transferProgress{tr: tr, active: map[string]bool{}}
}

func (p *transferProgress) update(ev transfer.Progress) {
	if ev.Desc == nil || ev.Name == "" {
		return
	}
	b := p.tr.blobOf(*ev.Desc)
	if old := b.done.Swap(ev.Progress); ev.Progress > old {
		p.tr.bytesRead.Add(ev.Progress - old)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	busy := (ev.Event == "downloading" || ev.Event == "waiting") && (ev.Total == 0 || ev.Progress < ev.Total)
	switch {
	case busy && !p.active[ev.Name]:
		p.active[ev.Name] = true
		p.tr.active.Add(1)
	case !busy && p.active[ev.Name]:
		delete(p.active, ev.Name)
		p.tr.active.Add(-1)
	}
}

// finish drops the requests still counted: the transfer is over.
func (p *transferProgress) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tr.active.Add(-int64(len(p.active)))
	p.active = map[string]bool{}
}

// blobOf returns the state of desc's blob, known by its descriptor.
func (t *tracker) blobOf(desc ocispec.Descriptor) *blobState {
	b := t.blob(desc.Digest)
	t.mu.Lock()
	if b.desc.MediaType == "" {
		b.desc = desc
	}
	t.mu.Unlock()
	return b
}

// transferError gives a Transfer failure, which arrives from containerd as a gRPC status with the
// registry's error as text only, the typed cause the client path meets (an unexpected HTTP
// status, a refused connection, an unknown host...), so that both paths answer the same codes.
func transferError(err error) error {
	if err == nil {
		return nil
	}
	if strings.Contains(err.Error(), "unknown service containerd.services.transfer.") {
		return errNoTransferService
	}
	native := errgrpc.ToNative(err)
	if errors.Is(native, context.Canceled) || errors.Is(native, context.DeadlineExceeded) {
		return native
	}
	msg := native.Error()
	if cause := causeFromText(msg); cause != nil {
		return &transferFailure{msg: msg, cause: cause}
	}
	// containerd's errdefs kinds end the text when the status code lost them.
	for _, kind := range []error{errdefs.ErrNotFound, errdefs.ErrFailedPrecondition, errdefs.ErrInvalidArgument, errdefs.ErrNotImplemented, errdefs.ErrUnavailable} {
		if !errors.Is(native, kind) && strings.HasSuffix(msg, ": "+kind.Error()) {
			return &transferFailure{msg: msg, cause: kind}
		}
	}
	return native
}

// transferFailure is a Transfer failure with the cause read back from its text.
type transferFailure struct {
	msg   string
	cause error
}

func (e *transferFailure) Error() string { return e.msg }
func (e *transferFailure) Unwrap() error { return e.cause }

var unexpectedStatusRE = regexp.MustCompile(`unexpected status from (\w+) request to (\S+): (\d{3})`)

// causeFromText recognises the errors of containerd's registry client by their text.
func causeFromText(msg string) error {
	if m := unexpectedStatusRE.FindStringSubmatch(msg); m != nil {
		code, _ := strconv.Atoi(m[3])
		return remoteerrors.ErrUnexpectedStatus{Status: fmt.Sprintf("%d %s", code, http.StatusText(code)), StatusCode: code, RequestURL: strings.TrimSuffix(m[2], ":"), RequestMethod: m[1]}
	}
	switch {
	case strings.Contains(msg, docker.ErrInvalidAuthorization.Error()):
		return docker.ErrInvalidAuthorization
	case strings.Contains(msg, "no such host"), strings.Contains(msg, "server misbehaving"):
		return &net.DNSError{Err: "no such host", IsNotFound: true}
	case strings.Contains(msg, "connection refused"):
		return syscall.ECONNREFUSED
	case strings.Contains(msg, "connection reset"):
		return syscall.ECONNRESET
	case strings.Contains(msg, "server gave HTTP response to HTTPS client"):
		return http.ErrSchemeMismatch
	case strings.Contains(msg, "unexpected EOF"):
		return io.ErrUnexpectedEOF
	case strings.Contains(msg, "tls: "), strings.Contains(msg, "x509: "),
		strings.Contains(msg, "i/o timeout"), strings.Contains(msg, "no route to host"),
		strings.Contains(msg, "network is unreachable"):
		return errUnreachable
	case strings.Contains(msg, "invalid character"), strings.Contains(msg, "cannot unmarshal"):
		return errGarbage
	}
	return nil
}

// errNoTransferService: the containerd serves no Transfer service (its plugin is off); pulls then
// take the client path.
var errNoTransferService = errors.New("containerd serves no Transfer service")

var (
	errUnreachable = errors.New("registry unreachable")
	errGarbage     = errors.New("registry answered something that is not a manifest")
)
