package imageservice

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	remoteerrors "github.com/containerd/containerd/v2/core/remotes/errors"
	"github.com/containerd/errdefs"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestNormalizeRef(t *testing.T) {
	good := map[string]string{
		"busybox":                          "docker.io/library/busybox:latest",
		"busybox:1.36":                     "docker.io/library/busybox:1.36",
		"library/busybox":                  "docker.io/library/busybox:latest",
		"registry.k8s.io/pause:3.9":        "registry.k8s.io/pause:3.9",
		"127.0.0.1:5000/a/b":               "127.0.0.1:5000/a/b:latest",
		"localhost/x:y":                    "localhost/x:y",
		"gcr.io/k8s-staging-cri-tools/t:1": "gcr.io/k8s-staging-cri-tools/t:1",
		"r.io/x@sha256:" + hex64('a'):      "r.io/x@sha256:" + hex64('a'),
		// A tag and a digest: the digest wins.
		"r.io/x:1@sha256:" + hex64('b'): "r.io/x@sha256:" + hex64('b'),
	}
	for in, want := range good {
		named, err := NormalizeRef(in)
		if err != nil {
			t.Errorf("NormalizeRef(%q): %v", in, err)
			continue
		}
		if named.String() != want {
			t.Errorf("NormalizeRef(%q) = %q, want %q", in, named.String(), want)
		}
	}
	for _, in := range []string{"", "  ", "r.io/UPPER", "a b", "r.io/x@sha256:short", hex64('c'), "sha256:" + hex64('d'), ":tag", "x:"} {
		_, err := NormalizeRef(in)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("NormalizeRef(%q) = %v, want InvalidArgument", in, err)
		}
	}
}

func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

func TestRepoDigestAndTag(t *testing.T) {
	target := digest.Digest("sha256:" + hex64('e'))
	named, _ := NormalizeRef("busybox:1")
	rd, rt := repoDigestAndTag(named, target)
	if rd != "docker.io/library/busybox@"+target.String() || rt != "docker.io/library/busybox:1" {
		t.Errorf("got %q %q", rd, rt)
	}
	named, _ = NormalizeRef("r.io/x@sha256:" + hex64('f'))
	rd, rt = repoDigestAndTag(named, target)
	if rd != "r.io/x@sha256:"+hex64('f') || rt != "" {
		t.Errorf("digest ref: got %q %q", rd, rt)
	}
}

func TestSplitNames(t *testing.T) {
	id := "sha256:" + hex64('1')
	tags, digests := splitNames([]string{
		"r.io/b:2", id, "r.io/a@sha256:" + hex64('2'), "r.io/a:1", "not a name",
	})
	if fmt.Sprint(tags) != "[r.io/a:1 r.io/b:2]" {
		t.Errorf("tags %v", tags)
	}
	if fmt.Sprint(digests) != "[r.io/a@sha256:"+hex64('2')+"]" {
		t.Errorf("digests %v", digests)
	}
}

func TestImageUser(t *testing.T) {
	for _, c := range []struct {
		in   string
		uid  int64
		name string
		nil  bool
	}{
		{"", 0, "", true},
		{"1002", 1002, "", false},
		{"0", 0, "", false},
		{"www-data", 0, "www-data", true},
		{"1003:1004", 1003, "", false},
		{"www-data:1004", 0, "www-data", true},
	} {
		uid, name := ImageUser(c.in)
		if (uid == nil) != c.nil || (uid != nil && *uid != c.uid) || name != c.name {
			t.Errorf("ImageUser(%q) = %v %q", c.in, uid, name)
		}
	}
}

func TestParseAuth(t *testing.T) {
	enc := base64.StdEncoding.EncodeToString([]byte("bob:s3cret"))
	cases := []struct {
		auth             *runtime.AuthConfig
		host, refHost    string
		wantU, wantS     string
		wantErr          bool
		wantRegistryTokn string
	}{
		{auth: nil, host: "r.io"},
		{auth: &runtime.AuthConfig{Username: "u", Password: "p"}, host: "r.io", wantU: "u", wantS: "p"},
		{auth: &runtime.AuthConfig{Auth: enc}, host: "r.io", wantU: "bob", wantS: "s3cret"},
		{auth: &runtime.AuthConfig{Auth: "!!"}, host: "r.io", wantErr: true},
		{auth: &runtime.AuthConfig{Auth: base64.StdEncoding.EncodeToString([]byte("nocolon"))}, host: "r.io", wantErr: true},
		{auth: &runtime.AuthConfig{IdentityToken: "tok"}, host: "r.io", wantS: "tok"},
		// Server address: scheme or not, the host must match the registry or the mirror's upstream.
		{auth: &runtime.AuthConfig{Username: "u", Password: "p", ServerAddress: "https://r.io"}, host: "r.io", wantU: "u", wantS: "p"},
		{auth: &runtime.AuthConfig{Username: "u", Password: "p", ServerAddress: "r.io"}, host: "r.io", wantU: "u", wantS: "p"},
		{auth: &runtime.AuthConfig{Username: "u", Password: "p", ServerAddress: "other.io"}, host: "r.io"},
		{auth: &runtime.AuthConfig{Username: "u", Password: "p", ServerAddress: "r.io"}, host: "127.0.0.1:5000", refHost: "r.io", wantU: "u", wantS: "p"},
		{auth: &runtime.AuthConfig{Username: "u", Password: "p", ServerAddress: "https://index.docker.io/v1/"}, host: "registry-1.docker.io", wantU: "u", wantS: "p"},
		{auth: &runtime.AuthConfig{RegistryToken: "bearer"}, host: "r.io", wantRegistryTokn: "bearer"},
	}
	for i, c := range cases {
		u, s, err := ParseAuth(c.auth, c.host, c.refHost)
		if (err != nil) != c.wantErr || u != c.wantU || s != c.wantS {
			t.Errorf("case %d: ParseAuth = %q %q %v", i, u, s, err)
		}
		if got := registryToken(c.auth, c.host, c.refHost); got != c.wantRegistryTokn {
			t.Errorf("case %d: registryToken = %q", i, got)
		}
	}
}

func TestPullCode(t *testing.T) {
	unexpected := func(code int) error {
		return fmt.Errorf("failed to resolve: %w", remoteerrors.ErrUnexpectedStatus{StatusCode: code, Status: http.StatusText(code)})
	}
	cases := []struct {
		err  error
		want codes.Code
	}{
		{unexpected(401), codes.Unauthenticated},
		{unexpected(403), codes.PermissionDenied},
		{unexpected(404), codes.NotFound},
		{unexpected(500), codes.Unavailable},
		{unexpected(503), codes.Unavailable},
		{fmt.Errorf("pull access denied: %w", docker.ErrInvalidAuthorization), codes.Unauthenticated},
		{fmt.Errorf("r.io/x:1: %w", errdefs.ErrNotFound), codes.NotFound},
		// A host that does not resolve is an unreachable registry, not a missing image.
		{&net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}, codes.Unavailable},
		{&net.DNSError{Err: "server misbehaving", Name: "r.io", IsTemporary: true}, codes.Unavailable},
		{fmt.Errorf("failed to do request: %w", &url.Error{Op: "Head", URL: "https://r.io/v2/", Err: http.ErrSchemeMismatch}), codes.Unavailable},
		{&url.Error{Op: "Get", URL: "https://r.io/v2/", Err: errors.New("tls: handshake failure")}, codes.Unavailable},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, codes.Unavailable},
		{fmt.Errorf("read: %w", io.ErrUnexpectedEOF), codes.Unavailable},
		{&NoProgressError{Timeout: time.Second}, codes.Unavailable},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{fmt.Errorf("x: %w", context.Canceled), codes.Canceled},
		{fmt.Errorf("schema1: %w", errdefs.ErrNotImplemented), codes.FailedPrecondition},
	}
	for _, c := range cases {
		if got := pullCode(c.err); got != c.want {
			t.Errorf("pullCode(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

func testMeta(id byte) *imageMeta {
	return &imageMeta{id: "sha256:" + hex64(id), size: 100}
}

func desc(c byte) ocispec.Descriptor {
	return ocispec.Descriptor{Digest: digest.Digest("sha256:" + hex64(c)), MediaType: ocispec.MediaTypeImageManifest}
}

func TestIndex(t *testing.T) {
	ix := newIndex(map[string]bool{"registry.k8s.io/pause:3.10": true})
	a, b := testMeta('a'), testMeta('b')
	ix.set("r.io/x:1", a, desc('1'), false)
	ix.set("r.io/x@sha256:"+hex64('1'), a, desc('1'), false)
	ix.set(a.id, a, desc('1'), false)
	ix.set("r.io/y:1", a, desc('1'), false)
	ix.set("registry.k8s.io/pause:3.10", b, desc('2'), false)

	img, ok := ix.lookup("r.io/x:1")
	if !ok || img.ID != a.id {
		t.Fatalf("lookup tag: %v %v", img, ok)
	}
	if fmt.Sprint(img.RepoTags) != "[r.io/x:1 r.io/y:1]" || len(img.RepoDigests) != 1 || len(img.Names) != 4 {
		t.Errorf("image %+v", img)
	}
	for _, q := range []string{a.id, hex64('a'), "aaaa", "sha256:aaa", "r.io/x@sha256:" + hex64('1')} {
		if img, ok := ix.lookup(q); !ok || img.ID != a.id {
			t.Errorf("lookup(%q) = %v %v", q, img.ID, ok)
		}
	}
	if _, ok := ix.lookup("aa"); ok {
		t.Error("a 2-digit prefix must not match")
	}
	if img, _ := ix.lookup("registry.k8s.io/pause:3.10"); !img.Pinned {
		t.Error("configured pinned image not pinned")
	}
	if img, _ := ix.lookup("r.io/x:1"); img.Pinned {
		t.Error("image pinned")
	}
	// Re-tagging moves the tag.
	ix.set("r.io/y:1", b, desc('2'), true)
	if img, _ := ix.lookup("r.io/x:1"); fmt.Sprint(img.RepoTags) != "[r.io/x:1]" {
		t.Errorf("after retag: %v", img.RepoTags)
	}
	if img, _ := ix.lookup("r.io/y:1"); img.ID != b.id || !img.Pinned {
		t.Errorf("retagged: %+v", img)
	}
	// Ambiguous prefix: both IDs start with different letters, so add a clash.
	c := &imageMeta{id: "sha256:" + hex64('a')[:63] + "b"}
	ix.set("r.io/z:1", c, desc('3'), false)
	if _, ok := ix.lookup("aaaa"); ok {
		t.Error("ambiguous prefix matched")
	}
	if len(ix.list()) != 3 {
		t.Errorf("list: %d images", len(ix.list()))
	}
	for _, n := range []string{"r.io/x:1", "r.io/x@sha256:" + hex64('1'), a.id} {
		ix.remove(n)
	}
	if _, ok := ix.lookup(a.id); ok {
		t.Error("image still there after all names removed")
	}
	if len(ix.list()) != 2 {
		t.Errorf("list: %d images", len(ix.list()))
	}
}

func TestPullGroupMerges(t *testing.T) {
	g := newPullGroup(0)
	var runs atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context, f *flight) (string, error) {
		runs.Add(1)
		<-release
		f.emit(Progress{Done: 1})
		return "sha256:x", nil
	}
	var wg sync.WaitGroup
	var progressed atomic.Int32
	ids := make([]string, 5)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := g.do(context.Background(), "k", func(Progress) { progressed.Add(1) }, fn)
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		}()
	}
	waitFor(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.flights["k"] != nil && g.flights["k"].waiters == 5
	})
	close(release)
	wg.Wait()
	if runs.Load() != 1 {
		t.Errorf("%d runs, want 1", runs.Load())
	}
	for _, id := range ids {
		if id != "sha256:x" {
			t.Errorf("id %q", id)
		}
	}
	if progressed.Load() != 5 {
		t.Errorf("progress reached %d waiters, want 5", progressed.Load())
	}
	if g.inFlight() != 0 {
		t.Error("flight left behind")
	}
}

func TestPullGroupCancel(t *testing.T) {
	g := newPullGroup(0)
	started := make(chan struct{})
	cancelled := make(chan struct{})
	fn := func(ctx context.Context, f *flight) (string, error) {
		close(started)
		<-ctx.Done()
		close(cancelled)
		return "", ctx.Err()
	}
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	go func() { _, err := g.do(ctx1, "k", nil, fn); errs <- err }()
	<-started
	go func() { _, err := g.do(ctx2, "k", nil, fn); errs <- err }()
	waitFor(t, func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return g.flights["k"] != nil && g.flights["k"].waiters == 2
	})
	cancel1()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("first waiter: %v", err)
	}
	select {
	case <-cancelled:
		t.Fatal("pull cancelled while a request still waits for it")
	case <-time.After(50 * time.Millisecond):
	}
	cancel2()
	<-errs
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("pull not cancelled after its last request left")
	}
}

func TestPullGroupLimit(t *testing.T) {
	g := newPullGroup(2)
	var running, peak atomic.Int32
	release := make(chan struct{})
	fn := func(ctx context.Context, f *flight) (string, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		return "id", nil
	}
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := g.do(context.Background(), fmt.Sprint("k", i), nil, fn); err != nil {
				t.Error(err)
			}
		}()
	}
	waitFor(t, func() bool { return running.Load() == 2 })
	time.Sleep(30 * time.Millisecond)
	if running.Load() != 2 {
		t.Errorf("%d running, want 2", running.Load())
	}
	// A request waiting for a slot can give up.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := g.do(ctx, "late", nil, fn); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("queued request: %v", err)
	}
	close(release)
	wg.Wait()
	if peak.Load() != 2 {
		t.Errorf("peak %d, want 2", peak.Load())
	}
}

func TestPullKeyDependsOnCredentials(t *testing.T) {
	a := pullKey("r.io/x:1", "overlayfs", nil)
	b := pullKey("r.io/x:1", "overlayfs", &runtime.AuthConfig{Username: "u", Password: "p"})
	c := pullKey("r.io/x:1", "native", nil)
	if a == b || a == c || a != pullKey("r.io/x:1", "overlayfs", nil) {
		t.Error("pull keys do not tell credentials and snapshotters apart")
	}
}

func TestRequestDigest(t *testing.T) {
	d := "sha256:" + hex64('9')
	req, _ := http.NewRequest(http.MethodGet, "http://r.io/v2/a/b/blobs/"+d, nil)
	if got, ok := requestDigest(req); !ok || got.String() != d {
		t.Errorf("blob: %v %v", got, ok)
	}
	redirected, _ := http.NewRequest(http.MethodGet, "http://s3.example/object?sig=1", nil)
	redirected.Response = &http.Response{Request: req}
	if got, ok := requestDigest(redirected); !ok || got.String() != d {
		t.Errorf("redirect: %v %v", got, ok)
	}
	tagReq, _ := http.NewRequest(http.MethodGet, "http://r.io/v2/a/manifests/latest", nil)
	if _, ok := requestDigest(tagReq); ok {
		t.Error("tag request has no digest")
	}
	if n, ok := contentRangeStart("bytes 100-199/200"); !ok || n != 100 {
		t.Errorf("content range: %d %v", n, ok)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5s")
		}
		time.Sleep(time.Millisecond)
	}
}
