package sandbox

import (
	"context"
	"fmt"
	"math"
	"strings"

	gocni "github.com/containerd/go-cni"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultInterface is the pod's interface whose addresses are the pod's IPs.
const DefaultInterface = "eth0"

// Bandwidth annotations of a pod (as the kubelet's bandwidth shaping reads them).
const (
	IngressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	EgressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

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

// Bandwidth reads the pod's bandwidth annotations (Kubernetes quantities in bits per second, such
// as "10M"); nil when there are none.
func Bandwidth(annotations map[string]string) (*gocni.BandWidth, error) {
	in, inOK := annotations[IngressBandwidthAnnotation]
	eg, egOK := annotations[EgressBandwidthAnnotation]
	if !inOK && !egOK {
		return nil, nil
	}
	bw := &gocni.BandWidth{}
	if inOK {
		v, err := parseRate(in)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", IngressBandwidthAnnotation, err)
		}
		bw.IngressRate, bw.IngressBurst = v, math.MaxUint32
	}
	if egOK {
		v, err := parseRate(eg)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", EgressBandwidthAnnotation, err)
		}
		bw.EgressRate, bw.EgressBurst = v, math.MaxUint32
	}
	return bw, nil
}

// Limits the kubelet puts on bandwidth annotations: 1 kbit/s to 1 Pbit/s.
const (
	minRate = 1000
	maxRate = 1_000_000_000_000_000
)

var rateSuffixes = []struct {
	s string
	m uint64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40}, {"Pi", 1 << 50},
	{"k", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15},
}

// parseRate parses a non-negative integer quantity with an optional SI or binary suffix.
func parseRate(s string) (uint64, error) {
	num, mult := strings.TrimSpace(s), uint64(1)
	for _, suf := range rateSuffixes {
		if strings.HasSuffix(num, suf.s) {
			num, mult = strings.TrimSuffix(num, suf.s), suf.m
			break
		}
	}
	var v uint64
	if num == "" {
		return 0, fmt.Errorf("invalid quantity %q", s)
	}
	for _, r := range num {
		if r < '0' || r > '9' {
			return 0, fmt.Errorf("invalid quantity %q", s)
		}
		d := uint64(r - '0')
		if v > (math.MaxUint64-d)/10 {
			return 0, fmt.Errorf("quantity %q too large", s)
		}
		v = v*10 + d
	}
	if v != 0 && mult > math.MaxUint64/v {
		return 0, fmt.Errorf("quantity %q too large", s)
	}
	v *= mult
	if v < minRate {
		return 0, fmt.Errorf("bandwidth %q is unreasonably small (< 1kbit)", s)
	}
	if v > maxRate {
		return 0, fmt.Errorf("bandwidth %q is unreasonably large (> 1Pbit)", s)
	}
	return v, nil
}
