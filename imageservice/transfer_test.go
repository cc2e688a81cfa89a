package imageservice

import (
	"errors"
	"testing"

	"github.com/containerd/containerd/v2/core/transfer"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The texts are those containerd 2.2's Transfer service answered in the integration tests.
func TestTransferErrorCodes(t *testing.T) {
	cases := []struct {
		code codes.Code
		msg  string
		want codes.Code
	}{
		{codes.Unknown, "failed to resolve image: test.local/unknown-repo:1: not found", codes.NotFound},
		{codes.Unknown, `failed commit on ref "layer-sha256:73c8": unexpected commit digest sha256:f7cf, expected sha256:73c8: failed precondition`, codes.Unavailable},
		{codes.Unknown, `failed to resolve image: failed to do request: Head "https://127.0.0.1:43455/v2/x/y/manifests/1": dial tcp 127.0.0.1:43455: connect: connection refused`, codes.Unavailable},
		{codes.Unknown, `failed to resolve image: failed to do request: Head "https://nx.invalid/v2/x/manifests/1": dial tcp: lookup nx.invalid on 127.0.0.53:53: no such host`, codes.Unavailable},
		{codes.Unknown, "failed to resolve image: pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials", codes.Unauthenticated},
		{codes.Unknown, `failed to resolve image: unexpected status from HEAD request to http://127.0.0.1:5000/v2/p/manifests/1: 401 Unauthorized`, codes.Unauthenticated},
		{codes.Unknown, `failed to resolve image: unexpected status from GET request to http://127.0.0.1:5000/v2/p/manifests/1: 403 Forbidden`, codes.PermissionDenied},
		{codes.Unknown, `unexpected status from GET request to https://r/v2/p/blobs/sha256:1: 503 Service Unavailable`, codes.Unavailable},
		{codes.Unknown, "children: invalid desc sha256:41d8: invalid character 'h' in literal true (expecting 'r')", codes.Unavailable},
		{codes.Unknown, "short read: expected 66155 bytes but got 33077: unexpected EOF", codes.Unavailable},
		{codes.Unknown, `Head "https://127.0.0.1:1/v2/x/manifests/1": http: server gave HTTP response to HTTPS client`, codes.Unavailable},
		{codes.Unknown, `tls: failed to verify certificate: x509: certificate signed by unknown authority`, codes.Unavailable},
		{codes.NotFound, "content digest sha256:1: not found", codes.NotFound},
		{codes.Canceled, "context canceled", codes.Canceled},
		{codes.Unknown, "something else entirely", codes.Unknown},
	}
	for _, c := range cases {
		err := transferError(status.Error(c.code, c.msg))
		if got := status.Code(pullStatus("pull", err)); got != c.want {
			t.Errorf("%s %q: %v, want %v", c.code, c.msg, got, c.want)
		}
	}
	if transferError(nil) != nil {
		t.Error("transferError(nil) is not nil")
	}
}

func TestTransferProgressFeedsTracker(t *testing.T) {
	tr := newTracker("r", newCredScope(nil, "r"))
	p := newTransferProgress(tr)
	layer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromString("layer"), Size: 3 << 20}
	p.update(transfer.Progress{Event: "Resolving from x"}) // no blob: ignored
	p.update(transfer.Progress{Event: "waiting", Name: "layer", Total: layer.Size, Desc: &layer})
	if s := tr.snapshot(false); s.ActiveRequests != 1 || s.BytesRead != 0 || s.Total != layer.Size {
		t.Fatalf("waiting: %+v", s)
	}
	p.update(transfer.Progress{Event: "downloading", Name: "layer", Progress: 1 << 20, Total: layer.Size, Desc: &layer})
	p.update(transfer.Progress{Event: "downloading", Name: "layer", Progress: 2 << 20, Total: layer.Size, Desc: &layer})
	if s := tr.snapshot(false); s.ActiveRequests != 1 || s.BytesRead != 2<<20 || s.Done != 2<<20 {
		t.Fatalf("downloading: %+v", s)
	}
	p.update(transfer.Progress{Event: "complete", Name: "layer", Progress: layer.Size, Total: layer.Size, Desc: &layer})
	if s := tr.snapshot(false); s.ActiveRequests != 0 || s.BytesRead != 3<<20 || s.Done != s.Total {
		t.Fatalf("complete: %+v", s)
	}
	cfg := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromString("cfg"), Size: 10}
	p.update(transfer.Progress{Event: "waiting", Name: "cfg", Total: cfg.Size, Desc: &cfg})
	p.finish()
	if s := tr.snapshot(false); s.ActiveRequests != 0 || len(s.Blobs) != 2 {
		t.Fatalf("finished: %+v", s)
	}
}

func TestViaTransferOnlyAnonymous(t *testing.T) {
	s := &Service{cfg: Config{PullViaTransfer: true}}
	for _, auth := range []*runtime.AuthConfig{nil, {}, {ServerAddress: "r.io"}} {
		if !s.viaTransfer(auth) {
			t.Errorf("%v: not via transfer", auth)
		}
	}
	for _, auth := range []*runtime.AuthConfig{{Username: "u", Password: "p"}, {Auth: "dTpw"}, {IdentityToken: "t"}, {RegistryToken: "t"}} {
		if s.viaTransfer(auth) {
			t.Errorf("%v: via transfer, whose registry client copies credentials on redirects", auth)
		}
	}
	s.cfg.PullViaTransfer = false
	if s.viaTransfer(nil) {
		t.Error("via transfer while off")
	}
}

func TestTransferErrorNoService(t *testing.T) {
	err := transferError(status.Error(codes.Unimplemented, "unknown service containerd.services.transfer.v1.Transfer"))
	if !errors.Is(err, errNoTransferService) {
		t.Errorf("%v: not errNoTransferService", err)
	}
	if errors.Is(transferError(status.Error(codes.Unimplemented, "schema 1 image manifests are no longer supported: not implemented")), errNoTransferService) {
		t.Error("any Unimplemented taken for a missing service")
	}
}
