//go:build integration

package imageservice

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/test/critest/testregistry"
)

// blobRedirect makes the registry answer the pulls' blob downloads with a 307 to a blob server
// (another host:port, as registries do to their storage), and requires credentials on the
// registry itself: the registry token "Bearer tok" or Basic alice:wonderland (401 with a Basic
// challenge otherwise). Each server records the Authorization headers the pulls sent it.
type blobRedirect struct {
	mu         sync.Mutex
	target     string // host:port of the blob server the registry redirects to now
	challenge  bool   // the blob server asks for Basic credentials too
	registry   []string
	blobServer []string
	next       http.Handler
}

const (
	redirectToken = "tok-for-the-registry-only"
	redirectUser  = "alice"
	redirectPass  = "wonderland"
)

func (b *blobRedirect) middleware(next http.Handler) http.Handler {
	b.next = next
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.UserAgent(), "cri-shim") {
			next.ServeHTTP(w, r) // the test pushing images
			return
		}
		a := r.Header.Get("Authorization")
		b.mu.Lock()
		b.registry = append(b.registry, a)
		target := b.target
		b.mu.Unlock()
		u, p, basic := r.BasicAuth()
		if a != "Bearer "+redirectToken && !(basic && u == redirectUser && p == redirectPass) {
			w.Header().Set("WWW-Authenticate", `Basic realm="registry"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			http.Redirect(w, r, "http://"+target+r.URL.Path, http.StatusTemporaryRedirect)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// serveBlobs serves the registry's blobs on addr (the blob server), recording what it is sent.
func (b *blobRedirect) serveBlobs(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		b.mu.Lock()
		b.blobServer = append(b.blobServer, a)
		challenge := b.challenge
		b.mu.Unlock()
		if challenge && a == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="blobs"`)
			http.Error(w, "credentials please", http.StatusUnauthorized)
			return
		}
		b.next.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func (b *blobRedirect) reset(target string, challenge bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.target, b.challenge, b.registry, b.blobServer = target, challenge, nil, nil
}

func (b *blobRedirect) seen() (registry, blobServer []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.registry...), append([]string(nil), b.blobServer...)
}

// Credentials go only to the registry host they were given for: a registry redirecting blob
// downloads to another host:port (blob storage, a CDN) must not hand that host the registry
// token or the password, whether Go's client would copy the header (same host name, another
// port), the transport would add it (the registry token), or the other host asks for it (a 401
// challenge of its own).
func TestIntegrationCredentialsNotSentOnRedirect(t *testing.T) {
	b := &blobRedirect{}
	e := newEnv(t, envOpts{reg: testregistry.Options{Middleware: b.middleware}})
	otherPort := b.serveBlobs(t, "127.0.0.1:0") // same host name as the registry, another port
	otherHost := b.serveBlobs(t, "127.0.0.2:0") // another host

	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(redirectUser+":"+redirectPass))
	cases := []struct {
		name      string
		target    string
		auth      *runtime.AuthConfig
		challenge bool
		fails     codes.Code // the pull's code when the blob server refuses to serve without credentials
	}{
		{name: "registry token, same host name other port", target: otherPort, auth: &runtime.AuthConfig{RegistryToken: redirectToken}},
		{name: "registry token, other host", target: otherHost, auth: &runtime.AuthConfig{RegistryToken: redirectToken}},
		{name: "registry token for the upstream name, other port", target: otherPort,
			auth: &runtime.AuthConfig{RegistryToken: redirectToken, ServerAddress: "test.local"}},
		{name: "password, same host name other port", target: otherPort, auth: &runtime.AuthConfig{Username: redirectUser, Password: redirectPass}},
		{name: "password, other host", target: otherHost, auth: &runtime.AuthConfig{Username: redirectUser, Password: redirectPass}},
		{name: "password, blob server asking for credentials", target: otherHost, challenge: true,
			auth: &runtime.AuthConfig{Username: redirectUser, Password: redirectPass}, fails: codes.Unauthenticated},
		{name: "registry token, blob server asking for credentials", target: otherPort, challenge: true,
			auth: &runtime.AuthConfig{RegistryToken: redirectToken}, fails: codes.Unauthenticated},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := fmt.Sprintf("redirect%d:1", i)
			push(t, e.reg.Addr(), repo, randomImage(t, 2048, 1), nil)
			b.reset(c.target, c.challenge)
			_, err := e.pull("test.local/"+repo, c.auth)
			registry, blobServer := b.seen()
			if c.fails == codes.OK && err != nil {
				t.Fatalf("pull: %v (registry saw %q, blob server saw %q)", err, registry, blobServer)
			}
			if c.fails != codes.OK && status.Code(err) != c.fails {
				t.Errorf("pull: %v, want %s", err, c.fails)
			}
			if len(blobServer) == 0 {
				t.Fatalf("the blob server got no request (registry saw %q): the test tests nothing", registry)
			}
			for _, a := range blobServer {
				if a != "" {
					t.Errorf("the blob server at %s was sent Authorization %q", c.target, a)
				}
			}
			// The credentials did reach the registry: the redirect is what the test is about.
			want := "Bearer " + redirectToken
			if c.auth.GetPassword() != "" {
				want = basic
			}
			if !contains(registry, want) {
				t.Errorf("the registry never got the credentials %q: %q", want, registry)
			}
		})
	}
}
