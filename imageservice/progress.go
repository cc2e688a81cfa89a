package imageservice

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/cri-shim/cri-shim/imageservice/pullprogress"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Progress is a snapshot of one pull (the type lives in pullprogress so that the model can name
// it without importing containerd).
type Progress = pullprogress.Progress

// BlobProgress is the transfer state of one blob.
type BlobProgress = pullprogress.BlobProgress

// tracker follows one pull: the HTTP traffic to the registry (counted by a RoundTripper wrapped
// around the resolver's clients, cheap: no content store polling) and the descriptors the pull
// dispatches.
type tracker struct {
	ref   string
	creds *credScope
	start time.Time

	active    atomic.Int64
	bytesRead atomic.Int64

	mu      sync.Mutex
	blobs   map[digest.Digest]*blobState
	order   []digest.Digest
	clients []*http.Client
}

type blobState struct {
	desc ocispec.Descriptor
	done atomic.Int64
}

func newTracker(ref string, creds *credScope) *tracker {
	return &tracker{ref: ref, creds: creds, start: time.Now(), blobs: map[digest.Digest]*blobState{}}
}

// updateClient wraps a registry client's transport (config.HostOptions.UpdateClient). The
// wrapper is the last to see each request, redirects included: it also applies the pull's
// credential scope (credScope.authorize).
func (t *tracker) updateClient(c *http.Client) error {
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = &trackingTransport{next: next, t: t}
	t.mu.Lock()
	t.clients = append(t.clients, c)
	t.mu.Unlock()
	return nil
}

// closeIdle drops the idle connections of the pull's clients.
func (t *tracker) closeIdle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.clients {
		c.CloseIdleConnections()
	}
}

// handler records each descriptor the pull dispatches; blobs already in the content store count
// as done.
func (t *tracker) handler(store content.Store) images.Handler {
	return images.HandlerFunc(func(ctx context.Context, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
		t.mu.Lock()
		b, seen := t.blobs[desc.Digest]
		if !seen {
			b = &blobState{desc: desc}
			t.blobs[desc.Digest] = b
			t.order = append(t.order, desc.Digest)
		} else if b.desc.MediaType == "" {
			b.desc = desc // first met on the wire
		}
		t.mu.Unlock()
		if !seen {
			if _, err := store.Info(ctx, desc.Digest); err == nil {
				b.done.Store(desc.Size)
			}
		}
		return nil, nil
	})
}

func (t *tracker) blob(d digest.Digest) *blobState {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := t.blobs[d]
	if b == nil {
		// The request can come before the handler saw the descriptor (the manifest HEAD/GET of
		// resolving): track it with the size the response announces.
		b = &blobState{desc: ocispec.Descriptor{Digest: d}}
		t.blobs[d] = b
		t.order = append(t.order, d)
	}
	return b
}

func (t *tracker) snapshot(finished bool) Progress {
	p := Progress{
		Ref:            t.ref,
		BytesRead:      t.bytesRead.Load(),
		ActiveRequests: int(t.active.Load()),
		Elapsed:        time.Since(t.start),
		Finished:       finished,
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	p.Blobs = make([]BlobProgress, 0, len(t.order))
	for _, d := range t.order {
		b := t.blobs[d]
		if b.desc.Size == 0 && b.desc.MediaType == "" {
			continue // seen only on the wire (a resolve), not part of the image tree yet
		}
		done := b.done.Load()
		if finished || done > b.desc.Size {
			done = b.desc.Size
		}
		p.Blobs = append(p.Blobs, BlobProgress{Digest: d, MediaType: b.desc.MediaType, Done: done, Total: b.desc.Size})
		p.Done += done
		p.Total += b.desc.Size
	}
	return p
}

type trackingTransport struct {
	next http.RoundTripper
	t    *tracker
}

func (tt *trackingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t := tt.t
	req = t.creds.authorize(req)
	t.active.Add(1)
	resp, err := tt.next.RoundTrip(req)
	if err != nil {
		t.active.Add(-1)
		return nil, err
	}
	var b *blobState
	if d, ok := requestDigest(req); ok && req.Method == http.MethodGet && resp.StatusCode/100 == 2 {
		b = t.blob(d)
		if resp.StatusCode == http.StatusPartialContent {
			if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); ok {
				b.done.Store(start)
			}
		} else {
			b.done.Store(0)
		}
	}
	resp.Body = &countingBody{rc: resp.Body, t: t, b: b}
	return resp, nil
}

// requestDigest finds the digest a registry request is about (/v2/<name>/blobs/<digest> or
// /manifests/<digest>), following redirects back to the original request.
func requestDigest(req *http.Request) (digest.Digest, bool) {
	for r := req; r != nil; {
		p := r.URL.Path
		for _, marker := range []string{"/blobs/", "/manifests/"} {
			if i := strings.LastIndex(p, marker); i >= 0 {
				if d, err := digest.Parse(p[i+len(marker):]); err == nil {
					return d, true
				}
			}
		}
		if r.Response == nil {
			break
		}
		r = r.Response.Request
	}
	return "", false
}

func contentRangeStart(h string) (int64, bool) {
	// "bytes 100-199/200"
	h = strings.TrimPrefix(strings.TrimSpace(h), "bytes ")
	start, _, ok := strings.Cut(h, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(start, 10, 64)
	return n, err == nil
}

type countingBody struct {
	rc   io.ReadCloser
	t    *tracker
	b    *blobState
	once sync.Once
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if n > 0 {
		c.t.bytesRead.Add(int64(n))
		if c.b != nil {
			c.b.done.Add(int64(n))
		}
	}
	return n, err
}

func (c *countingBody) Close() error {
	err := c.rc.Close()
	c.once.Do(func() { c.t.active.Add(-1) })
	return err
}
