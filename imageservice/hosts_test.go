package imageservice

import "testing"

// TestSetRegistryConfigPath: a new registry hosts dir replaces the configured one for the pulls that
// follow (pull reads registryConfigPath) and in Config.
func TestSetRegistryConfigPath(t *testing.T) {
	s := &Service{cfg: Config{RegistryConfigPath: "/etc/containerd/certs.d"}}
	s.hostsDir.Store(&s.cfg.RegistryConfigPath)
	if got := s.registryConfigPath(); got != "/etc/containerd/certs.d" {
		t.Fatalf("initial hosts dir %q", got)
	}
	s.SetRegistryConfigPath("/etc/cri-shim/certs.d")
	if got := s.registryConfigPath(); got != "/etc/cri-shim/certs.d" {
		t.Fatalf("hosts dir after the change %q", got)
	}
	if got := s.Config().RegistryConfigPath; got != "/etc/cri-shim/certs.d" {
		t.Fatalf("Config().RegistryConfigPath %q", got)
	}
	s.SetRegistryConfigPath("")
	if got := s.registryConfigPath(); got != "" {
		t.Fatalf("hosts dir after clearing %q", got)
	}
}
