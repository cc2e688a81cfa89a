// Package testregistry builds the container images critest v1.37.0 pulls (linux/amd64, from the
// busybox binaries and tiny Go programs on this machine) and serves them from an in-memory OCI
// registry on 127.0.0.1, with one path prefix per upstream registry host so that the runtime can
// mirror registry.k8s.io, gcr.io, ... to it through a containerd hosts dir (see WriteHostsDir).
//
// Repository "registry.k8s.io/e2e-test-images/busybox" is stored under that very name in the local
// registry, so it is reachable as http://127.0.0.1:PORT/v2/registry.k8s.io/e2e-test-images/busybox/...
// and a hosts.toml mirror "http://127.0.0.1:PORT/v2/registry.k8s.io" with override_path = true
// serves it.
package testregistry

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// BasicAuth is a username and password the registry requires.
type BasicAuth struct {
	Username string
	Password string
}

// Options configure Start.
type Options struct {
	// Addr is the address to listen on, "127.0.0.1:0" when empty.
	Addr string
	// BasicAuth, when set, makes every request require these credentials (401 otherwise).
	BasicAuth *BasicAuth
	// StallAfterBytes, when positive, makes every blob download (GET .../blobs/sha256:...) larger
	// than that many bytes stop after sending them: the response stays open, with no more data,
	// until the client goes away or the registry is closed.
	StallAfterBytes int64
	// Middleware, when set, wraps the registry's handler (after auth and stalling) — a hook for
	// tests that count, delay or fail requests.
	Middleware func(http.Handler) http.Handler
	// Logf, when set, receives one line per request and a few lifecycle messages.
	Logf func(format string, args ...any)
}

// Registry is a running test registry.
type Registry struct {
	addr      string
	srv       *http.Server
	ln        net.Listener
	refs      []string
	stop      chan struct{}
	closeOnce sync.Once
	served    chan struct{}
}

// UpstreamHosts are the registry hosts the images come from; WriteHostsDir mirrors each.
var UpstreamHosts = []string{"registry.k8s.io", "k8s.gcr.io", "gcr.io", "public.ecr.aws", "docker.io"}

// Start builds every image (once per process), starts the registry on opts.Addr and pushes the
// images into it.
func Start(ctx context.Context, opts Options) (*Registry, error) {
	entries, err := catalog()
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}

	store := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r := &Registry{stop: make(chan struct{}), served: make(chan struct{})}

	var ln net.Listener
	if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", addr); err != nil {
		return nil, err
	}
	r.ln = ln
	r.addr = ln.Addr().String()

	// Push everything straight into the handler, bypassing auth and stalling.
	tr := handlerTransport{h: store}
	for _, e := range entries {
		for _, ref := range e.refs {
			local, err := r.LocalRef(ref)
			if err != nil {
				ln.Close()
				return nil, err
			}
			dst, err := name.ParseReference(local, name.Insecure)
			if err != nil {
				ln.Close()
				return nil, err
			}
			if err := remote.Write(dst, e.img, remote.WithTransport(tr), remote.WithContext(ctx), remote.WithAuth(authn.Anonymous)); err != nil {
				ln.Close()
				return nil, fmt.Errorf("pushing %s: %w", ref, err)
			}
			r.refs = append(r.refs, ref)
		}
	}
	sort.Strings(r.refs)

	var h http.Handler = store
	if opts.Middleware != nil {
		h = opts.Middleware(h)
	}
	if opts.StallAfterBytes > 0 {
		h = stallBlobs(h, opts.StallAfterBytes, r.stop)
	}
	if opts.BasicAuth != nil {
		h = requireBasicAuth(h, *opts.BasicAuth)
	}
	h = logRequests(h, logf)

	r.srv = &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second}
	go func() {
		defer close(r.served)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logf("testregistry: serve: %v", err)
		}
	}()
	logf("testregistry: serving %d references on http://%s", len(r.refs), r.addr)
	return r, nil
}

// Addr is the registry's host:port.
func (r *Registry) Addr() string { return r.addr }

// List returns every reference served, by its upstream name (e.g. "registry.k8s.io/pause:3.9").
func (r *Registry) List() []string { return append([]string(nil), r.refs...) }

// LocalRef maps an upstream reference ("registry.k8s.io/pause:3.9", "busybox") to its name in the
// local registry ("127.0.0.1:PORT/registry.k8s.io/pause:3.9", "127.0.0.1:PORT/docker.io/library/busybox:latest").
func (r *Registry) LocalRef(upstream string) (string, error) {
	ref, err := name.ParseReference(upstream)
	if err != nil {
		return "", err
	}
	host := ref.Context().RegistryStr()
	if host == name.DefaultRegistry {
		host = "docker.io"
	}
	sep := ":"
	if _, ok := ref.(name.Digest); ok {
		sep = "@"
	}
	return r.addr + "/" + host + "/" + ref.Context().RepositoryStr() + sep + ref.Identifier(), nil
}

// HostsTOML returns the hosts.toml mirroring upstream host to this registry.
func (r *Registry) HostsTOML(host string) string {
	return fmt.Sprintf(`# Written by cri-shim's test registry: %[1]s is served by the local registry, under the
# path prefix /v2/%[1]s. It is the only server: a reference the local registry lacks fails
# instead of falling back to the real %[1]s (tests never leave this machine).
server = %[2]q
override_path = true
capabilities = ["pull", "resolve"]
`, host, "http://"+r.addr+"/v2/"+host)
}

// WriteHostsDir writes containerd's registry hosts dir: <dir>/<host>/hosts.toml for every
// upstream host, each mirrored to this registry. The registry's own address needs no entry
// (plain HTTP on 127.0.0.1 is what containerd does for it by default).
func (r *Registry) WriteHostsDir(dir string) error {
	for _, host := range UpstreamHosts {
		d := filepath.Join(dir, host)
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
		if err := writeFileAtomic(filepath.Join(d, "hosts.toml"), []byte(r.HostsTOML(host))); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the registry (stalled downloads included).
func (r *Registry) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.stop)
		err = r.srv.Close()
		<-r.served
	})
	return err
}

// writeFileAtomic writes data to a temporary file next to path and renames it into place.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// handlerTransport is an http.RoundTripper calling a handler in-process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body == nil {
		req.Body = http.NoBody
	}
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// requireBasicAuth rejects requests without the credentials (401 with a Basic challenge).
func requireBasicAuth(h http.Handler, a BasicAuth) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, ok := req.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(a.Username)) != 1 ||
			subtle.ConstantTimeCompare([]byte(p), []byte(a.Password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="testregistry"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		h.ServeHTTP(w, req)
	})
}

// stallBlobs stops blob downloads after n bytes until the client leaves or stop is closed.
func stallBlobs(h http.Handler, n int64, stop <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet || !strings.Contains(req.URL.Path, "/blobs/sha256:") {
			h.ServeHTTP(w, req)
			return
		}
		h.ServeHTTP(&stallWriter{ResponseWriter: w, left: n, ctx: req.Context(), stop: stop}, req)
	})
}

var errStalled = errors.New("testregistry: download stalled")

type stallWriter struct {
	http.ResponseWriter
	left    int64
	ctx     context.Context
	stop    <-chan struct{}
	stalled bool
}

func (s *stallWriter) Write(p []byte) (int, error) {
	if s.stalled {
		return 0, errStalled
	}
	if int64(len(p)) <= s.left {
		n, err := s.ResponseWriter.Write(p)
		s.left -= int64(n)
		return n, err
	}
	n, err := s.ResponseWriter.Write(p[:s.left])
	s.left -= int64(n)
	if err != nil {
		return n, err
	}
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	s.stalled = true
	select {
	case <-s.ctx.Done():
	case <-s.stop:
	}
	return n, errStalled
}

// statusWriter records the status code for logging.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func logRequests(h http.Handler, logf func(string, ...any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		start := time.Now()
		h.ServeHTTP(sw, req)
		logf("testregistry: %s %s -> %d (%s)", req.Method, req.URL.Path, sw.code, time.Since(start).Round(time.Millisecond))
	})
}
