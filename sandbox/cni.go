package sandbox

import (
	"context"
	"fmt"
	"math"
	"strings"

	gocni "github.com/containerd/go-cni"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultInterface is the pod's interface whose addresses are the pod's IPs.
const DefaultInterface = "eth0"

// NetworkResult is what CNI ADD gave the pod.
type NetworkResult struct {
	// IP is the primary IP (the first IPv4 of eth0, else its first address).
	IP string
	// AdditionalIPs are eth0's other addresses.
	AdditionalIPs []string
	// Raw is the full CNI result.
	Raw *gocni.Result
}

// Setup runs CNI ADD for pod id in the network namespace at netnsPath, with the kubelet's CNI
// args, the pod's port mappings, and its bandwidth, DNS and cgroup capabilities.
func (n *Network) Setup(ctx context.Context, id, netnsPath string, config *runtime.PodSandboxConfig) (*NetworkResult, error) {
	cni, err := n.cniFor(hasHostPorts(config))
	if err != nil {
		return nil, err
	}
	opts, err := namespaceOpts(id, config)
	if err != nil {
		return nil, err
	}
	res, err := cni.Setup(ctx, id, netnsPath, opts...)
	if err != nil {
		return nil, err
	}
	iface, ok := res.Interfaces[DefaultInterface]
	if !ok || len(iface.IPConfigs) == 0 {
		return &NetworkResult{Raw: res}, fmt.Errorf("cni: no IP address on %s of pod %s", DefaultInterface, id)
	}
	out := &NetworkResult{Raw: res}
	primary := -1
	for i, c := range iface.IPConfigs {
		if c.IP.To4() != nil {
			primary = i
			break
		}
	}
	if primary < 0 {
		primary = 0
	}
	out.IP = iface.IPConfigs[primary].IP.String()
	for i, c := range iface.IPConfigs {
		if i != primary {
			out.AdditionalIPs = append(out.AdditionalIPs, c.IP.String())
		}
	}
	return out, nil
}

// Teardown runs CNI DEL for pod id. A namespace that is gone already is fine: the plugins release
// what they hold on the host (IP leases, port mappings) all the same.
func (n *Network) Teardown(ctx context.Context, id, netnsPath string, config *runtime.PodSandboxConfig) error {
	cni, err := n.cniFor(hasHostPorts(config))
	if err != nil {
		return err
	}
	opts, err := namespaceOpts(id, config)
	if err != nil {
		// Bad bandwidth annotations failed the ADD already; DEL without them.
		opts = baseOpts(id, config)
	}
	if netnsPath != "" && !NetNSPinned(netnsPath) {
		// The namespace is gone, or its pin was never made (a daemon killed while making it): the
		// plugins get no namespace (CNI allows it on DEL) and still release what they hold on the
		// host. Handing them the bare mount point fails the DEL ("unknown FS magic").
		netnsPath = ""
	}
	return cni.Remove(ctx, id, netnsPath, opts...)
}

// hasHostPorts tells whether the pod maps host ports (what portmap acts on).
func hasHostPorts(config *runtime.PodSandboxConfig) bool {
	for _, pm := range config.GetPortMappings() {
		if pm.GetHostPort() > 0 {
			return true
		}
	}
	return false
}

func baseOpts(id string, config *runtime.PodSandboxConfig) []gocni.NamespaceOpts {
	md := config.GetMetadata()
	opts := []gocni.NamespaceOpts{
		gocni.WithLabels(map[string]string{
			"K8S_POD_NAMESPACE":          md.GetNamespace(),
			"K8S_POD_NAME":               md.GetName(),
			"K8S_POD_INFRA_CONTAINER_ID": id,
			"K8S_POD_UID":                md.GetUid(),
			"IgnoreUnknown":              "1",
		}),
	}
	if len(config.GetAnnotations()) > 0 {
		opts = append(opts, gocni.WithCapability("io.kubernetes.cri.pod-annotations", config.GetAnnotations()))
	}
	var pms []gocni.PortMapping
	for _, pm := range config.GetPortMappings() {
		if pm.GetHostPort() <= 0 {
			continue
		}
		pms = append(pms, gocni.PortMapping{
			HostPort:      pm.GetHostPort(),
			ContainerPort: pm.GetContainerPort(),
			Protocol:      strings.ToLower(pm.GetProtocol().String()),
			HostIP:        pm.GetHostIp(),
		})
	}
	if len(pms) > 0 {
		opts = append(opts, gocni.WithCapabilityPortMap(pms))
	}
	if dns := config.GetDnsConfig(); dns != nil {
		opts = append(opts, gocni.WithCapabilityDNS(gocni.DNS{
			Servers: dns.GetServers(), Searches: dns.GetSearches(), Options: dns.GetOptions(),
		}))
	}
	if cg := config.GetLinux().GetCgroupParent(); cg != "" {
		opts = append(opts, gocni.WithCapabilityCgroupPath(cg))
	}
	return opts
}

func namespaceOpts(id string, config *runtime.PodSandboxConfig) ([]gocni.NamespaceOpts, error) {
	opts := baseOpts(id, config)
	bw, err := Bandwidth(config.GetAnnotations())
	if err != nil {
		return nil, err
	}
	if bw != nil {
		opts = append(opts, gocni.WithCapabilityBandWidth(*bw))
	}
	return opts, nil
}

// Bandwidth is the pod's bandwidth annotations (legacy.ParseBandwidth) as the CNI bandwidth
// plugin takes them; nil when there are none.
func Bandwidth(annotations map[string]string) (*gocni.BandWidth, error) {
	b, err := legacy.ParseBandwidth(annotations)
	if b == nil || err != nil {
		return nil, err
	}
	bw := &gocni.BandWidth{}
	if b.Ingress > 0 {
		bw.IngressRate, bw.IngressBurst = b.Ingress, math.MaxUint32
	}
	if b.Egress > 0 {
		bw.EgressRate, bw.EgressBurst = b.Egress, math.MaxUint32
	}
	return bw, nil
}
