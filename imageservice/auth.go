package imageservice

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ParseAuth returns the username and secret the request's AuthConfig gives for a registry host.
// refHost is the registry of the reference being pulled: with a mirror configured, host is the
// mirror and the credentials meant for the upstream registry go to it (the operator chose the
// mirror). A ServerAddress that names neither host means the credentials are not for this host
// ("", "", nil). Username/Password come first, then IdentityToken (sent as the secret with an
// empty user, which makes the docker authorizer use it as an OAuth refresh token), then Auth
// (base64 "user:password"). RegistryToken is not a username/secret pair: registryToken handles it.
func ParseAuth(auth *runtime.AuthConfig, host, refHost string) (string, string, error) {
	if auth == nil {
		return "", "", nil
	}
	if !authMatchesHost(auth, host, refHost) {
		return "", "", nil
	}
	if auth.Username != "" {
		return auth.Username, auth.Password, nil
	}
	if auth.IdentityToken != "" {
		return "", auth.IdentityToken, nil
	}
	if auth.Auth != "" {
		decoded, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth.Auth))
		if err != nil {
			return "", "", fmt.Errorf("auth is not base64: %w", err)
		}
		user, passwd, ok := strings.Cut(string(decoded), ":")
		if !ok {
			return "", "", fmt.Errorf("decoded auth is not user:password")
		}
		return user, strings.Trim(passwd, "\x00"), nil
	}
	return "", "", nil
}

// registryToken returns the bearer token of auth for host, "" if none.
func registryToken(auth *runtime.AuthConfig, host, refHost string) string {
	if auth == nil || auth.RegistryToken == "" || !authMatchesHost(auth, host, refHost) {
		return ""
	}
	return auth.RegistryToken
}

func authMatchesHost(auth *runtime.AuthConfig, host, refHost string) bool {
	if auth.ServerAddress == "" {
		return true
	}
	want := serverAddressHost(auth.ServerAddress)
	return want == canonicalRegistryHost(host) || (refHost != "" && want == canonicalRegistryHost(refHost))
}

// serverAddressHost extracts the registry host of a docker-config style server address:
// "https://index.docker.io/v1/", "registry.k8s.io", "127.0.0.1:5000/some/path".
func serverAddressHost(addr string) string {
	s := addr
	if !strings.Contains(s, "://") {
		s = "dummy://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return canonicalRegistryHost(strings.TrimSuffix(addr, "/"))
	}
	return canonicalRegistryHost(u.Host)
}

// canonicalRegistryHost folds the names of Docker Hub into docker.io.
func canonicalRegistryHost(h string) string {
	switch h {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		return "docker.io"
	}
	return h
}

// credScope keeps one pull's credentials to the registry hosts they were given for: the hosts
// the resolver pulls the reference from (its mirrors and the upstream registry, from the hosts
// dir), further narrowed by the AuthConfig's ServerAddress. A host a registry redirects to (blob
// storage, a CDN) or any other host that asks gets none of them: not the password or identity
// token when it answers 401, not the registry token, not a header Go's client copies on a
// redirect (it does so to the same host name on another port, and to subdomains). A token
// server named by a registry's challenge still gets the password: that is how the registry
// asked for it to be presented.
type credScope struct {
	auth    *runtime.AuthConfig
	refHost string

	mu        sync.Mutex
	hosts     map[string]bool // registry hosts of the pull as configured (host[:port]), lower case
	endpoints map[string]bool // the same as host:port with the scheme's default port (hostPort)
}

func newCredScope(auth *runtime.AuthConfig, refHost string) *credScope {
	return &credScope{auth: auth, refHost: refHost, hosts: map[string]bool{}, endpoints: map[string]bool{}}
}

// registryHosts wraps the resolver's hosts function to learn the registry hosts of the pull.
func (c *credScope) registryHosts(next docker.RegistryHosts) docker.RegistryHosts {
	return func(host string) ([]docker.RegistryHost, error) {
		hosts, err := next(host)
		c.mu.Lock()
		for _, h := range hosts {
			c.hosts[strings.ToLower(h.Host)] = true
			c.endpoints[hostPort(&url.URL{Scheme: h.Scheme, Host: h.Host})] = true
			if h.Client == nil {
				continue
			}
			if _, tracked := h.Client.Transport.(*trackingTransport); !tracked {
				// ConfigureHosts wrapped our transport in containerd's HTTP fallback (an
				// http:// server with TLS settings is tried over https first): the host is
				// also reached over plain HTTP.
				c.endpoints[hostPort(&url.URL{Scheme: "http", Host: h.Host})] = true
			}
		}
		c.mu.Unlock()
		return hosts, err
	}
}

// allowed tells whether the pull's credentials may go to host (as the docker authorizer names
// the host that challenged: the Host of the request's URL).
func (c *credScope) allowed(host string) bool {
	if c.auth == nil {
		return false
	}
	c.mu.Lock()
	ok := c.hosts[strings.ToLower(host)]
	c.mu.Unlock()
	return ok && authMatchesHost(c.auth, host, c.refHost)
}

// allowedURL is allowed for a request's URL, whose scheme and port must be those of a registry
// host too: http://r.io is not the server https://r.io.
func (c *credScope) allowedURL(u *url.URL) bool {
	c.mu.Lock()
	ok := c.endpoints[hostPort(u)]
	c.mu.Unlock()
	return ok && c.allowed(u.Host)
}

// credentials is the docker authorizer's credentials function (config.HostOptions.Credentials):
// host is the host that answered 401.
func (c *credScope) credentials(host string) (string, string, error) {
	if !c.allowed(host) {
		return "", "", nil
	}
	return ParseAuth(c.auth, host, c.refHost)
}

// token returns the registry token to send to u, "" if none.
func (c *credScope) token(u *url.URL) string {
	if !c.allowedURL(u) {
		return ""
	}
	return registryToken(c.auth, u.Host, c.refHost)
}

// authorize sets or removes req's Authorization just before it is sent: it adds the registry
// token for a registry host, and removes a header Go's client copied from the first request
// of a redirect chain to another host:port that the credentials are not for. A header the
// docker authorizer set for the redirect's host itself (a token that host's own challenge
// obtained) differs from the copied one and stays. It returns req or a modified clone.
func (c *credScope) authorize(req *http.Request) *http.Request {
	a := req.Header.Get("Authorization")
	if a == "" {
		if token := c.token(req.URL); token != "" {
			req = req.Clone(req.Context())
			req.Header.Set("Authorization", "Bearer "+token)
		}
		return req
	}
	if req.Response == nil || c.allowedURL(req.URL) {
		return req
	}
	first := req
	for first.Response != nil && first.Response.Request != nil {
		first = first.Response.Request
	}
	if hostPort(first.URL) != hostPort(req.URL) && first.Header.Get("Authorization") == a {
		req = req.Clone(req.Context())
		req.Header.Del("Authorization")
	}
	return req
}

// hostPort is u's host name in lower case with its port, the scheme's default when u has none:
// two URLs with different host ports are different servers.
func hostPort(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch strings.ToLower(u.Scheme) {
		case "http":
			port = "80"
		default:
			port = "443"
		}
	}
	return net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}
