package legacy

import (
	"fmt"
	"math"
	"net"
	"strings"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Limits of resolv.conf as the kubelet applies them.
const (
	MaxDNSSearches     = 32
	MaxDNSSearchLength = 2048
	maxDNSServers      = 16
)

// nameserverAddress tells whether s is an IP address a resolv.conf nameserver line takes: plain,
// or an IPv6 link-local one with its interface ("fe80::1%eth0", as hosts' resolv.conf have it; the
// zone is an interface name or index, nothing that could end the line).
func nameserverAddress(s string) bool {
	addr, zone, scoped := strings.Cut(s, "%")
	ip := net.ParseIP(addr)
	if !scoped {
		return ip != nil
	}
	if ip == nil || ip.To4() != nil || !ip.IsLinkLocalUnicast() || zone == "" || len(zone) > 15 {
		return false
	}
	for _, r := range zone {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@", r)) {
			return false
		}
	}
	return true
}

// ValidateDNS checks a DNSConfig: servers are IP addresses, searches and options are single words
// without control characters, and there are not too many of them.
func ValidateDNS(dns *runtime.DNSConfig) error {
	if dns == nil {
		return nil
	}
	if n := len(dns.GetServers()); n > maxDNSServers {
		return fmt.Errorf("dns_config: %d servers, at most %d allowed", n, maxDNSServers)
	}
	for _, s := range dns.GetServers() {
		if !nameserverAddress(s) {
			return fmt.Errorf("dns_config: server %q is not an IP address", s)
		}
	}
	if n := len(dns.GetSearches()); n > MaxDNSSearches {
		return fmt.Errorf("dns_config: %d search domains, at most %d allowed", n, MaxDNSSearches)
	}
	if l := len(strings.Join(dns.GetSearches(), " ")); l > MaxDNSSearchLength {
		return fmt.Errorf("dns_config: search line of %d characters, at most %d allowed", l, MaxDNSSearchLength)
	}
	for _, s := range dns.GetSearches() {
		if !word(s) || len(s) > 253 {
			return fmt.Errorf("dns_config: invalid search domain %q", s)
		}
	}
	for _, o := range dns.GetOptions() {
		if !word(o) {
			return fmt.Errorf("dns_config: invalid option %q", o)
		}
	}
	return nil
}

// word: non-empty, printable, no blanks.
func word(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// Bandwidth annotations of a pod (as the kubelet's bandwidth shaping reads them).
const (
	IngressBandwidthAnnotation = "kubernetes.io/ingress-bandwidth"
	EgressBandwidthAnnotation  = "kubernetes.io/egress-bandwidth"
)

// PodBandwidth is the traffic shaping a pod's bandwidth annotations ask for, in bits per second
// (0: no limit that way).
type PodBandwidth struct {
	Ingress, Egress uint64
}

// ParseBandwidth reads the pod's bandwidth annotations (Kubernetes quantities in bits per second,
// such as "10M"); nil when there are none.
func ParseBandwidth(annotations map[string]string) (*PodBandwidth, error) {
	in, inOK := annotations[IngressBandwidthAnnotation]
	eg, egOK := annotations[EgressBandwidthAnnotation]
	if !inOK && !egOK {
		return nil, nil
	}
	var bw PodBandwidth
	var err error
	if inOK {
		if bw.Ingress, err = parseRate(in); err != nil {
			return nil, fmt.Errorf("annotation %s: %w", IngressBandwidthAnnotation, err)
		}
	}
	if egOK {
		if bw.Egress, err = parseRate(eg); err != nil {
			return nil, fmt.Errorf("annotation %s: %w", EgressBandwidthAnnotation, err)
		}
	}
	return &bw, nil
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
