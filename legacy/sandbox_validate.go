package legacy

import (
	"fmt"
	"net"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// maxNameLength bounds the name, namespace and uid of a sandbox (a DNS subdomain's length).
const maxNameLength = 253

// ValidateSandboxConfig checks what RunPodSandbox needs of a config before anything is made:
// metadata, DNS config, port mappings, hostname. Errors wrap ErrInvalidArgument.
func ValidateSandboxConfig(config *runtime.PodSandboxConfig) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrInvalidArgument)
	}
	if config == nil {
		return bad("sandbox config is required")
	}
	md := config.GetMetadata()
	if md == nil {
		return bad("sandbox config: metadata is required")
	}
	for _, f := range []struct{ key, val string }{{"name", md.GetName()}, {"namespace", md.GetNamespace()}, {"uid", md.GetUid()}} {
		if f.val == "" {
			return bad("sandbox metadata: %s is required", f.key)
		}
		if len(f.val) > maxNameLength {
			return bad("sandbox metadata: %s longer than %d characters", f.key, maxNameLength)
		}
		if strings.Contains(f.val, "/") || hasControl(f.val) {
			return bad("sandbox metadata: %s %q contains '/' or a control character", f.key, f.val)
		}
		// They go into CNI_ARGS ("K8S_POD_NAME=...;K8S_POD_UID=..."), where ';' would add an
		// argument of the client's choosing (IP= for host-local) and '=' breaks the parse.
		// Kubernetes names and UIDs never contain them.
		if strings.ContainsAny(f.val, ";=") {
			return bad("sandbox metadata: %s %q contains ';' or '='", f.key, f.val)
		}
	}
	if err := ValidateDNS(config.GetDnsConfig()); err != nil {
		return bad("%v", err)
	}
	if h := config.GetHostname(); len(h) > 253 || strings.ContainsAny(h, "/\x00\n ") {
		return bad("invalid hostname %q", h)
	}
	for _, pm := range config.GetPortMappings() {
		if pm.GetContainerPort() < 0 || pm.GetContainerPort() > 65535 || pm.GetHostPort() < 0 || pm.GetHostPort() > 65535 {
			return bad("port mapping %d:%d out of range", pm.GetHostPort(), pm.GetContainerPort())
		}
		if ip := pm.GetHostIp(); ip != "" && net.ParseIP(ip) == nil {
			return bad("port mapping: host_ip %q is not an IP address", ip)
		}
	}
	if _, err := ParseBandwidth(config.GetAnnotations()); err != nil {
		return bad("%v", err)
	}
	if _, err := UsernsMapping(config.GetLinux().GetSecurityContext().GetNamespaceOptions()); err != nil {
		return err
	}
	return validateSandboxFields(config) // request_validate.go
}
