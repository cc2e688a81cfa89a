package imageservice

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"

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
