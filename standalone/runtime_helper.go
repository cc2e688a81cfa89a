package standalone

import (
	"context"

	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// runtimeHelper is the manager's legacy.RuntimeHelper: what its pods need beyond their spec at
// the time SyncPod creates. A container's config comes after its subPaths are mounted (the
// runtime is given the manager's mounts, never a path inside a volume: subpath.go); the
// sandbox's DNS follows the pod's dnsPolicy on this node, which has no cluster DNS (dns.go).
type runtimeHelper struct{ m *Manager }

func (h runtimeHelper) GenerateRunContainerOptions(_ context.Context, spec *legacy.PodSpec, c *legacy.ContainerSpec) (*runtime.ContainerConfig, error) {
	if err := h.m.prepareSubPaths(h.m.podOf(spec), spec.UID(), c.Config); err != nil {
		return nil, err
	}
	return c.Config, nil
}

func (h runtimeHelper) GetClusterDNS(_ context.Context, spec *legacy.PodSpec) (*runtime.DNSConfig, error) {
	pod := h.m.podOf(spec)
	if pod == nil {
		// Not one of the manager's pods: its spec says its DNS.
		return spec.Sandbox.GetDnsConfig(), nil
	}
	dns, warnings, err := podDNS(pod.DNSPolicy, pod.DNSConfig, h.m.opts.HostResolvConf)
	if err != nil {
		return nil, err
	}
	for _, w := range warnings {
		h.m.records.Eventf(spec.EventObject(), legacy.EventTypeWarning, reasonDNSConfigForming, "%s", w)
	}
	return dns, nil
}

// podOf returns the manager's pod of that spec: the worker's whose spec it is, else the one of
// its UID; nil when none.
func (m *Manager) podOf(spec *legacy.PodSpec) *Pod {
	m.mu.Lock()
	defer m.mu.Unlock()
	var byUID *Pod
	for _, w := range m.workers {
		p := w.pod()
		if p.Spec == spec {
			return p
		}
		if p.UID == spec.UID() {
			byUID = p
		}
	}
	return byUID
}
