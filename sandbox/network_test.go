package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gocni "github.com/containerd/go-cni"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func conflist(name string) []byte {
	return []byte(`{"cniVersion": "1.0.0", "name": "` + name + `", "plugins": [{"type": "bridge", "bridge": "b0",
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/16"}]]}}]}`)
}

func networkName(t *testing.T, n *Network) string {
	t.Helper()
	c, err := n.CNI()
	if err != nil {
		t.Fatal(err)
	}
	nets := c.GetConfig().Networks
	if len(nets) != 1 { // the node's network only: no loopback plugin (NewNetNS brings lo up)
		t.Fatalf("networks: %d", len(nets))
	}
	return nets[0].Config.Name
}

// The config is loaded again when the conf dir changes, and only then (the same handle is kept,
// so that concurrent CNI ADDs never wait for a reload).
func TestNetworkReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	n := NewNetwork([]string{"/nonexistent"}, dir)
	if err := n.Status(); err == nil {
		t.Fatal("empty conf dir: network ready")
	}
	if err := os.WriteFile(filepath.Join(dir, "10-a.conflist"), conflist("neta"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := n.Status(); err != nil {
		t.Fatalf("with a config: %v", err)
	}
	if got := networkName(t, n); got != "neta" {
		t.Fatalf("network %q, want neta", got)
	}
	c1, _ := n.CNI()
	c2, _ := n.CNI()
	if c1 != c2 {
		t.Fatal("unchanged conf dir: the handle was replaced")
	}
	// Rewritten in place (same name, same size): the modification time tells.
	time.Sleep(10 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(dir, "10-a.conflist"), conflist("netb"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := networkName(t, n); got != "netb" {
		t.Fatalf("network %q after rewrite, want netb", got)
	}
	// A config sorting first takes over; a non-config file changes nothing.
	os.WriteFile(filepath.Join(dir, "05-c.conflist"), conflist("netc"), 0o644)
	if got := networkName(t, n); got != "netc" {
		t.Fatalf("network %q, want netc", got)
	}
	c3, _ := n.CNI()
	os.WriteFile(filepath.Join(dir, "README"), []byte("x"), 0o644)
	if c4, _ := n.CNI(); c4 != c3 {
		t.Fatal("a non-config file made a reload")
	}
	// All configs gone: not ready again.
	os.Remove(filepath.Join(dir, "10-a.conflist"))
	os.Remove(filepath.Join(dir, "05-c.conflist"))
	if err := n.Status(); err == nil {
		t.Fatal("configs removed: network still ready")
	}
}

func pluginTypes(t *testing.T, c interface {
	GetConfig() *gocni.ConfigResult
}) []string {
	t.Helper()
	nets := c.GetConfig().Networks
	if len(nets) != 1 {
		t.Fatalf("networks: %d", len(nets))
	}
	var out []string
	for _, p := range nets[0].Config.Plugins {
		out = append(out, p.Network.Type)
	}
	return out
}

// Pods without host ports get the network without its portmap plugin (which would do nothing for
// them, at the cost of a plugin run on ADD and on DEL); pods with host ports get the whole chain.
func TestNetworkSkipsPortmapWithoutHostPorts(t *testing.T) {
	dir := t.TempDir()
	chain := []byte(`{"cniVersion": "1.0.0", "name": "pm", "plugins": [
  {"type": "bridge", "bridge": "b0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.99.0.0/16"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "tuning"}]}`)
	if err := os.WriteFile(filepath.Join(dir, "10-pm.conflist"), chain, 0o644); err != nil {
		t.Fatal(err)
	}
	n := NewNetwork([]string{"/nonexistent"}, dir)
	with, err := n.cniFor(true)
	if err != nil {
		t.Fatal(err)
	}
	without, err := n.cniFor(false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(pluginTypes(t, with), ","); got != "bridge,portmap,tuning" {
		t.Fatalf("with host ports: %s", got)
	}
	if got := strings.Join(pluginTypes(t, without), ","); got != "bridge,tuning" {
		t.Fatalf("without host ports: %s", got)
	}
	if c := without.GetConfig().Networks[0]; c.IFName != "eth0" || c.Config.Name != "pm" {
		t.Fatalf("variant network %s on %s, want pm on eth0", c.Config.Name, c.IFName)
	}
	// No portmap in the chain: one handle for all pods.
	os.WriteFile(filepath.Join(dir, "10-pm.conflist"), conflist("plain"), 0o644)
	os.Chtimes(filepath.Join(dir, "10-pm.conflist"), time.Now().Add(time.Hour), time.Now().Add(time.Hour))
	a, _ := n.cniFor(true)
	b, _ := n.cniFor(false)
	if a != b {
		t.Fatal("a network without portmap got a variant")
	}
	if _, ok := withoutPortmap([]byte(`{"plugins":[{"type":"portmap"}]}`)); ok {
		t.Fatal("a chain of portmap alone was stripped to nothing")
	}
}

func TestHasHostPorts(t *testing.T) {
	cfg := &runtime.PodSandboxConfig{PortMappings: []*runtime.PortMapping{{ContainerPort: 80}}}
	if hasHostPorts(cfg) {
		t.Fatal("container port only: host ports")
	}
	cfg.PortMappings = append(cfg.PortMappings, &runtime.PortMapping{ContainerPort: 80, HostPort: 8080})
	if !hasHostPorts(cfg) {
		t.Fatal("host port 8080: none")
	}
}
