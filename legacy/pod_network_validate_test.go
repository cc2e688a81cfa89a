package legacy

import (
	"testing"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestValidateDNSNameservers: a link-local IPv6 nameserver with its interface, as a host's
// resolv.conf may hold it (and the standalone manager merges it into a pod's DNS), is accepted;
// a zone on anything else, or one that could end the resolv.conf line, is not.
func TestValidateDNSNameservers(t *testing.T) {
	for _, ok := range []string{"10.0.0.10", "fd00::10", "fe80::1%eth0", "fe80::1%2", "fe80::a:b%br-lan.100"} {
		if err := ValidateDNS(&runtime.DNSConfig{Servers: []string{ok}}); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"dns.example", "10.0.0.1%eth0", "fd00::10%eth0", "fe80::1%", "fe80::1%eth0\nnameserver 1.1.1.1",
		"fe80::1%eth 0", "fe80::1%averyveryverylongifname", "fe80::1%%eth0"} {
		if err := ValidateDNS(&runtime.DNSConfig{Servers: []string{bad}}); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
