// Package sandbox owns what a pod sandbox is made of besides its containers: the pause container's
// spec, the network namespace, CNI, and the pod's resolv.conf, hosts and hostname files.
package sandbox

import (
	"fmt"
	"sync"

	gocni "github.com/containerd/go-cni"
)

// Network is the node's CNI set-up: plugin binaries and the network config loaded from a conf dir.
type Network struct {
	binDirs []string
	confDir string

	mu  sync.Mutex
	cni gocni.CNI
}

// NewNetwork prepares CNI with the given plugin dirs and conf dir. A missing or empty conf dir is
// not an error: the network is reported not ready until a config appears there.
func NewNetwork(binDirs []string, confDir string) *Network {
	return &Network{binDirs: binDirs, confDir: confDir}
}

// Status reloads the CNI config from the conf dir and reports why the network is not ready, or nil.
func (n *Network) Status() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cni == nil {
		c, err := gocni.New(gocni.WithPluginDir(n.binDirs), gocni.WithPluginConfDir(n.confDir), gocni.WithMinNetworkCount(2))
		if err != nil {
			return fmt.Errorf("cni: %w", err)
		}
		n.cni = c
	}
	// The loopback network is cri-shim's own; the node's network comes from the first config in
	// the conf dir.
	if err := n.cni.Load(gocni.WithLoNetwork, gocni.WithDefaultConf); err != nil {
		return fmt.Errorf("cni config uninitialized: no network config loadable from %s: %w", n.confDir, err)
	}
	return n.cni.Status()
}

// CNI returns the loaded CNI handle, loading the config first.
func (n *Network) CNI() (gocni.CNI, error) {
	if err := n.Status(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cni, nil
}
