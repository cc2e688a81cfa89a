//go:build integration

package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/imageservice"
	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/kuberuntime"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/test/critest/testregistry"
)

// nxdomainDNS answers every DNS query on a 127.0.0.1 UDP port with NXDOMAIN (the name does not
// exist), as a resolver does for a name under .invalid. The test points Go's resolver at it, so
// the lookup stays on this machine and its answer does not depend on the host's DNS setup.
// It returns its address and the number of queries it answered.
func nxdomainDNS(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	var answered atomic.Int64
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 {
				continue
			}
			// The query itself, turned into a response: QR set, RD kept, RA set, RCODE 3
			// (NXDOMAIN). The question (and the EDNS0 record, extended RCODE 0) stays as asked.
			resp := append([]byte(nil), buf[:n]...)
			resp[2] = 0x80 | resp[2]&0x01
			resp[3] = 0x80 | 3
			if _, err := pc.WriteTo(resp, from); err == nil {
				answered.Add(1)
			}
		}
	}()
	return pc.LocalAddr().String(), &answered
}

// useResolver makes Go's default resolver (the one the registry clients' dialers use) ask only
// the DNS server at addr, for the test's duration.
func useResolver(t *testing.T, addr string) {
	t.Helper()
	old := net.DefaultResolver
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", addr)
	}}
	t.Cleanup(func() { net.DefaultResolver = old })
}

// writeHosts writes <dir>/<host>/hosts.toml making server the only server of host.
func writeHosts(t *testing.T, dir, host, server string) {
	t.Helper()
	d := filepath.Join(dir, host)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("server = %q\ncapabilities = [\"pull\", \"resolve\"]\n", server)
	if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
}

// registryError answers every request with code and a registry API error body; a 401 carries
// challenge as its WWW-Authenticate.
func registryError(code int, challenge string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if challenge != "" {
			w.Header().Set("WWW-Authenticate", challenge)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		name := map[int]string{401: "UNAUTHORIZED", 403: "DENIED"}[code]
		_, _ = fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"test server says %d"}]}`, name, code)
	})
}

func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// A failed pull's gRPC code says why it failed, the same through the CRI server (over gRPC) and
// through the model's image puller (cri-shim pull, standalone pods): an unreachable registry
// (no such host, connection refused, TLS handshake failure) is Unavailable, which the kubelet
// retries; a repository, tag or digest the registry does not have is NotFound; a registry
// refusing the credentials is Unauthenticated (401) or PermissionDenied (403). All on this
// machine: DNS answers come from a stub on 127.0.0.1, registries listen on 127.0.0.1.
func TestIntegrationPullErrorCodes(t *testing.T) {
	if !testing.Verbose() {
		logrus.SetOutput(io.Discard)
		t.Cleanup(func() { logrus.SetOutput(os.Stderr) })
	}
	dnsAddr, dnsAnswered := nxdomainDNS(t)
	useResolver(t, dnsAddr)

	client, err := containerd.New(testutil.StartContainerd(t), containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	reg, err := testregistry.Start(context.Background(), testregistry.Options{})
	if err != nil {
		t.Fatalf("test registry: %v", err)
	}
	t.Cleanup(func() { reg.Close() })

	hosts := t.TempDir()
	if err := reg.WriteHostsDir(hosts); err != nil {
		t.Fatal(err)
	}
	// TLS to a plain-HTTP server (the test registry): the handshake fails.
	writeHosts(t, hosts, "plain-http.test", "https://"+reg.Addr())
	// TLS to a server whose certificate no CA of this machine signed.
	badCert := httptest.NewUnstartedServer(registryError(http.StatusNotFound, ""))
	badCert.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake errors it logs are the point
	badCert.StartTLS()
	t.Cleanup(badCert.Close)
	writeHosts(t, hosts, "bad-cert.test", badCert.URL)
	// A registry wanting Basic credentials, and one refusing everyone.
	writeHosts(t, hosts, "basic.test", serve(t, registryError(http.StatusUnauthorized, `Basic realm="test"`)).URL)
	writeHosts(t, hosts, "denied.test", serve(t, registryError(http.StatusForbidden, "")).URL)
	// Bearer registries whose token server refuses the credentials (401) or the access (403).
	for name, code := range map[string]int{"token-401.test": http.StatusUnauthorized, "token-403.test": http.StatusForbidden} {
		tokens := serve(t, registryError(code, ""))
		writeHosts(t, hosts, name, serve(t, registryError(http.StatusUnauthorized,
			fmt.Sprintf(`Bearer realm=%q,service="test",scope="repository:x:pull"`, tokens.URL+"/token"))).URL)
	}

	svc, err := imageservice.New(client, imageservice.Config{Namespace: "it", RegistryConfigPath: hosts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })

	// The CRI server over gRPC, as the kubelet and crictl reach it.
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	runtime.RegisterImageServiceServer(srv, NewImageServer(svc))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cri := runtime.NewImageServiceClient(conn)
	puller := legacy.NewImagePuller(nil, kuberuntime.NewImageServiceBackend(svc), nil)

	wrong := &runtime.AuthConfig{Username: "alice", Password: "wrong"}
	zeros := "sha256:" + strings.Repeat("0", 64)
	cases := []struct {
		name string
		ref  string
		auth *runtime.AuthConfig
		want codes.Code
	}{
		{"no such host (DNS NXDOMAIN)", "registry.cri-shim.invalid/x:1", nil, codes.Unavailable},
		{"connection refused", closedPort(t) + "/x:1", nil, codes.Unavailable},
		{"TLS handshake with a plain-HTTP server", "plain-http.test/x:1", nil, codes.Unavailable},
		{"TLS certificate of an unknown CA", "bad-cert.test/x:1", nil, codes.Unavailable},
		{"no such repository", "registry.k8s.io/no-such-repository:1", nil, codes.NotFound},
		{"no such tag", "registry.k8s.io/pause:no-such-tag", nil, codes.NotFound},
		{"no such digest", "registry.k8s.io/pause@" + zeros, nil, codes.NotFound},
		{"401 without credentials", "basic.test/x:1", nil, codes.Unauthenticated},
		{"401 with wrong credentials", "basic.test/x:1", wrong, codes.Unauthenticated},
		{"403", "denied.test/x:1", nil, codes.PermissionDenied},
		{"token server 401", "token-401.test/x:1", wrong, codes.Unauthenticated},
		{"token server 403", "token-403.test/x:1", wrong, codes.PermissionDenied},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			dnsBefore := dnsAnswered.Load()
			start := time.Now()
			_, err := cri.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: c.ref}, Auth: c.auth})
			if got := status.Code(err); got != c.want {
				t.Errorf("CRI PullImage %s: %s (%v), want %s", c.ref, got, err, c.want)
			} else {
				t.Logf("CRI PullImage %s: %v (%s)", c.ref, err, time.Since(start).Round(time.Millisecond))
			}

			if strings.HasSuffix(strings.Split(c.ref, "/")[0], ".invalid") && dnsAnswered.Load() == dnsBefore {
				t.Errorf("the DNS stub was not asked for %s: the lookup went elsewhere", c.ref)
			}

			var auths []*runtime.AuthConfig
			if c.auth != nil {
				auths = append(auths, c.auth)
			}
			_, err = puller.PullImage(ctx, legacy.PullRequest{Image: legacy.ImageSpec{Image: c.ref}, PullPolicy: legacy.PullAlways, Auths: auths,
				BackoffKey: c.name})
			if got := status.Code(err); got != c.want {
				t.Errorf("image puller %s: %s (%v), want %s", c.ref, got, err, c.want)
			}
			// The model's reason: the kubelet's RegistryUnavailable for an unreachable registry,
			// ErrImagePull for everything else.
			var pe *legacy.PullError
			if !errors.As(err, &pe) {
				t.Fatalf("image puller %s: %T %v, want a *legacy.PullError", c.ref, err, err)
			}
			wantReason := legacy.ErrImagePull
			if c.want == codes.Unavailable {
				wantReason = legacy.RegistryUnavailable
			}
			if pe.Reason != wantReason {
				t.Errorf("image puller %s: reason %v, want %v", c.ref, pe.Reason, wantReason)
			}
		})
	}
}
