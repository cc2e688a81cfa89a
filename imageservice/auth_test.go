package imageservice

import (
	"net/http"
	"testing"

	"github.com/containerd/containerd/v2/core/remotes/docker"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// scopeFor returns the credential scope of a pull of refHost whose resolver uses hosts.
func scopeFor(t *testing.T, auth *runtime.AuthConfig, refHost string, hosts ...string) *credScope {
	t.Helper()
	c := newCredScope(auth, refHost)
	fn := c.registryHosts(func(string) ([]docker.RegistryHost, error) {
		var rh []docker.RegistryHost
		for _, h := range hosts {
			rh = append(rh, docker.RegistryHost{Host: h, Scheme: "https"})
		}
		return rh, nil
	})
	if _, err := fn(refHost); err != nil {
		t.Fatal(err)
	}
	return c
}

func get(t *testing.T, url, authorization string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return req
}

// redirect returns the request Go's client makes for a redirect of from to url: Authorization
// copied from the first request when Go's rules allow it (same host name, any port).
func redirect(t *testing.T, from *http.Request, url, authorization string) *http.Request {
	t.Helper()
	req := get(t, url, authorization)
	req.Response = &http.Response{StatusCode: http.StatusTemporaryRedirect, Request: from}
	return req
}

func TestCredScope(t *testing.T) {
	pw := &runtime.AuthConfig{Username: "u", Password: "p"}
	c := scopeFor(t, pw, "r.io", "mirror.local:5000", "r.io")
	for host, want := range map[string]bool{"r.io": true, "R.IO": true, "mirror.local:5000": true, "mirror.local": false,
		"r.io:8443": false, "cdn.r.io": false, "blobs.example": false} {
		if u, _, _ := c.credentials(host); (u != "") != want {
			t.Errorf("credentials for %s: %q, want given=%v", host, u, want)
		}
	}
	// The server address narrows the registry hosts further.
	c = scopeFor(t, &runtime.AuthConfig{Username: "u", Password: "p", ServerAddress: "mirror.local:5000"}, "r.io", "mirror.local:5000", "r.io")
	if u, _, _ := c.credentials("r.io"); u != "" {
		t.Errorf("credentials of mirror.local:5000 given to r.io")
	}
	if u, _, _ := c.credentials("mirror.local:5000"); u != "u" {
		t.Errorf("credentials of mirror.local:5000 not given to it")
	}

	tok := &runtime.AuthConfig{RegistryToken: "tok"}
	c = scopeFor(t, tok, "r.io", "r.io")
	if got := c.authorize(get(t, "https://r.io/v2/x/manifests/1", "")).Header.Get("Authorization"); got != "Bearer tok" {
		t.Errorf("registry host: %q, want the registry token", got)
	}
	for _, u := range []string{"https://auth.r.io/token", "https://r.io:8443/v2/", "https://blobs.example/x"} {
		if got := c.authorize(get(t, u, "")).Header.Get("Authorization"); got != "" {
			t.Errorf("%s: %q, want no registry token", u, got)
		}
	}

	first := get(t, "https://r.io/v2/x/blobs/sha256:1", "Bearer registry-token")
	cases := []struct {
		name, url, header, want string
	}{
		{"copied to the same host name on another port", "https://r.io:8443/blob", "Bearer registry-token", ""},
		{"copied to the same host name over plain HTTP", "http://r.io/blob", "Bearer registry-token", ""},
		{"copied to a subdomain", "https://cdn.r.io/blob", "Bearer registry-token", ""},
		{"the same host and port", "https://r.io:443/v2/x/blobs/sha256:1?moved", "Bearer registry-token", "Bearer registry-token"},
		{"set by the authorizer for the redirect's own host", "https://cdn.r.io/blob", "Bearer cdn-token", "Bearer cdn-token"},
		{"none", "https://blobs.example/x", "", ""},
	}
	for _, tc := range cases {
		out := c.authorize(redirect(t, first, tc.url, tc.header))
		if got := out.Header.Get("Authorization"); got != tc.want {
			t.Errorf("%s: Authorization %q, want %q", tc.name, got, tc.want)
		}
	}
	// A redirect from the mirror to the upstream registry, both hosts of the pull: the
	// credentials are for both.
	c = scopeFor(t, pw, "r.io", "r.io:5000", "r.io")
	from := get(t, "https://r.io:5000/v2/x/blobs/sha256:1", "Basic dTpw")
	if got := c.authorize(redirect(t, from, "https://r.io/v2/x/blobs/sha256:1", "Basic dTpw")).Header.Get("Authorization"); got != "Basic dTpw" {
		t.Errorf("redirect between two registry hosts of the pull: %q", got)
	}
	// A host ConfigureHosts put behind containerd's HTTP fallback (its transport is not ours
	// alone) is reached over plain HTTP (port 80) too; the others are not.
	c = newCredScope(tok, "r.io")
	_, _ = c.registryHosts(func(string) ([]docker.RegistryHost, error) {
		return []docker.RegistryHost{
			{Host: "fallback.local", Scheme: "https", Client: &http.Client{Transport: http.DefaultTransport}},
			{Host: "tls.local", Scheme: "https", Client: &http.Client{Transport: &trackingTransport{}}},
		}, nil
	})("r.io")
	for u, want := range map[string]string{
		"http://fallback.local/v2/": "Bearer tok", "https://fallback.local/v2/": "Bearer tok",
		"https://tls.local/v2/": "Bearer tok", "http://tls.local/v2/": "",
	} {
		if got := c.authorize(get(t, u, "")).Header.Get("Authorization"); got != want {
			t.Errorf("%s: %q, want %q", u, got, want)
		}
	}
	// The request given is not modified (the client still holds it).
	c = scopeFor(t, tok, "r.io", "r.io")
	in := redirect(t, first, "https://r.io:8443/blob", "Bearer registry-token")
	_ = c.authorize(in)
	if in.Header.Get("Authorization") == "" {
		t.Error("authorize modified the request it was given")
	}
}
