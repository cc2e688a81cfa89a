package standalone

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cri-shim/cri-shim/legacy"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The kubelet's limits on the DNS config it gives a pod (the API server's MaxDNSNameservers and
// its expanded search limits).
const (
	maxDNSNameservers     = 3
	maxDNSSearchPaths     = 32
	maxDNSSearchListChars = 2048
	// maxResolvConfLength bounds the host's resolv.conf read (the kubelet's 10 MiB).
	maxResolvConfLength = 10 << 20
)

// reasonDNSConfigForming is the kubelet's event reason for a DNS config cut to its limits.
const reasonDNSConfigForming = "DNSConfigForming"

// podDNS is the DNS config of a pod's sandbox by its dnsPolicy, as the kubelet's GetPodDNS makes
// it on a node without cluster DNS: None is the pod's dnsConfig alone; Default, ClusterFirst and
// ClusterFirstWithHostNet (the kubelet's fallback to Default when it knows no cluster DNS) are
// the host's resolv.conf (resolvConf) with the dnsConfig merged in. Without a dnsConfig those are
// nil: the sandbox copies the host's resolv.conf itself. The result is cut to the kubelet's
// limits; warnings say what was cut.
func podDNS(policy corev1.DNSPolicy, dc *corev1.PodDNSConfig, resolvConf string) (_ *runtime.DNSConfig, warnings []string, _ error) {
	var base *runtime.DNSConfig
	switch policy {
	case corev1.DNSNone:
		base = &runtime.DNSConfig{}
	case "", corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault:
		if dc == nil {
			return nil, nil, nil
		}
		var err error
		if base, err = hostDNS(resolvConf); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, fmt.Errorf("dnsPolicy %q: want ClusterFirst, ClusterFirstWithHostNet, Default or None", policy)
	}
	if dc != nil {
		base = appendDNSConfig(base, dc)
	}
	dns, warnings := fitDNSLimits(base)
	return dns, warnings, nil
}

// hostDNS reads the host's resolv.conf; a missing one is empty, as the sandbox copies it.
func hostDNS(path string) (*runtime.DNSConfig, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &runtime.DNSConfig{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxResolvConfLength+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxResolvConfLength {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxResolvConfLength)
	}
	return parseResolvConf(string(data)), nil
}

// parseResolvConf reads resolv.conf as the kubelet does: nameserver lines accumulate, the last
// search line and the last options line win, a search domain's trailing dot is dropped.
func parseResolvConf(content string) *runtime.DNSConfig {
	out := &runtime.DNSConfig{}
	for _, line := range strings.Split(content, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "nameserver":
			if len(fields) >= 2 {
				out.Servers = append(out.Servers, fields[1])
			}
		case "search":
			out.Searches = nil
			for _, s := range fields[1:] {
				out.Searches = append(out.Searches, strings.TrimSuffix(s, "."))
			}
		case "options":
			out.Options = fields[1:]
		}
	}
	return out
}

// appendDNSConfig merges the pod's dnsConfig into base the kubelet's way: nameservers and
// searches appended without duplicates, options merged by name with the pod's winning. Unlike
// the kubelet's map, the options keep an order (base's first, then the pod's new ones): the
// sandbox's spec hash covers them.
func appendDNSConfig(base *runtime.DNSConfig, dc *corev1.PodDNSConfig) *runtime.DNSConfig {
	return &runtime.DNSConfig{
		Servers:  omitDuplicates(append(append([]string{}, base.Servers...), dc.Nameservers...)),
		Searches: omitDuplicates(append(append([]string{}, base.Searches...), dc.Searches...)),
		Options:  mergeDNSOptions(base.Options, dc.Options),
	}
}

func omitDuplicates(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// mergeDNSOptions merges options ("name" or "name:value") by name; the pod's replace the base's.
func mergeDNSOptions(base []string, pod []corev1.PodDNSConfigOption) []string {
	var names []string
	values := map[string]string{}
	set := func(name, value string) {
		if _, ok := values[name]; !ok {
			names = append(names, name)
		}
		values[name] = value
	}
	for _, o := range base {
		name, value, _ := strings.Cut(o, ":")
		set(name, value)
	}
	for _, o := range pod {
		value := ""
		if o.Value != nil {
			value = *o.Value
		}
		set(o.Name, value)
	}
	var out []string
	for _, name := range names {
		o := name
		if v := values[name]; v != "" {
			o += ":" + v
		}
		out = append(out, o)
	}
	return out
}

// fitDNSLimits cuts the config to the kubelet's limits as it does (formDNSConfigFitsLimits): the
// first 3 nameservers; the first 32 searches, without those longer than a DNS subdomain, then
// the last ones dropped until the search line fits 2048 characters.
func fitDNSLimits(dns *runtime.DNSConfig) (*runtime.DNSConfig, []string) {
	var warnings []string
	if len(dns.Servers) > maxDNSNameservers {
		dns.Servers = dns.Servers[:maxDNSNameservers]
		warnings = append(warnings, "Nameserver limits were exceeded, some nameservers have been omitted, the applied nameserver line is: "+strings.Join(dns.Servers, " "))
	}
	searches, cut := dns.Searches, false
	if len(searches) > maxDNSSearchPaths {
		searches, cut = searches[:maxDNSSearchPaths], true
	}
	var kept []string
	for _, s := range searches {
		if len(s) > validation.DNS1123SubdomainMaxLength {
			cut = true
			continue
		}
		kept = append(kept, s)
	}
	for len(kept) > 0 && len(strings.Join(kept, " ")) > maxDNSSearchListChars {
		kept, cut = kept[:len(kept)-1], true
	}
	dns.Searches = kept
	if cut {
		warnings = append(warnings, "Search Line limits were exceeded, some search paths have been omitted, the applied search line is: "+strings.Join(kept, " "))
	}
	return dns, warnings
}

// validatePodDNS refuses what the API server refuses of a pod's DNS fields: an unknown
// dnsPolicy, None without a dnsConfig with a nameserver, more than 3 nameservers; and what the
// runtime would refuse of the dnsConfig (legacy.ValidateDNS).
func validatePodDNS(spec *corev1.PodSpec) error {
	switch spec.DNSPolicy {
	case "", corev1.DNSClusterFirst, corev1.DNSClusterFirstWithHostNet, corev1.DNSDefault, corev1.DNSNone:
	default:
		return fmt.Errorf("spec.dnsPolicy %q: want ClusterFirst, ClusterFirstWithHostNet, Default or None", spec.DNSPolicy)
	}
	dc := spec.DNSConfig
	if spec.DNSPolicy == corev1.DNSNone && (dc == nil || len(dc.Nameservers) == 0) {
		return errors.New("spec.dnsConfig: dnsPolicy None needs a dnsConfig with at least one nameserver")
	}
	if dc == nil {
		return nil
	}
	if len(dc.Nameservers) > maxDNSNameservers {
		return fmt.Errorf("spec.dnsConfig: %d nameservers, at most %d allowed", len(dc.Nameservers), maxDNSNameservers)
	}
	for _, o := range dc.Options {
		if o.Name == "" {
			return errors.New("spec.dnsConfig: an option without a name")
		}
	}
	// The dnsConfig as it is, before any merge or cut: what the runtime would refuse of it is
	// the manifest's error.
	if err := legacy.ValidateDNS(specDNSConfig(dc)); err != nil {
		return fmt.Errorf("spec.dnsConfig: %w", err)
	}
	return nil
}

// specDNSConfig is the manifest's dnsConfig as a CRI DNSConfig, as it is (nil: none).
func specDNSConfig(dc *corev1.PodDNSConfig) *runtime.DNSConfig {
	if dc == nil {
		return nil
	}
	out := &runtime.DNSConfig{Servers: dc.Nameservers, Searches: dc.Searches}
	for _, o := range dc.Options {
		opt := o.Name
		if o.Value != nil {
			opt += ":" + *o.Value
		}
		out.Options = append(out.Options, opt)
	}
	return out
}
