package sandbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"
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
