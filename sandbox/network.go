// Package sandbox owns what a pod sandbox is made of besides its containers: the pause container's
// spec, the network namespace, CNI, and the pod's resolv.conf, hosts and hostname files.
package sandbox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	gocni "github.com/containerd/go-cni"
)

// Network is the node's CNI set-up: plugin binaries and the network config loaded from a conf dir.
//
// The config is loaded again only when the conf dir changed (its entries' names, sizes and
// modification times), into a new CNI handle that replaces the old one: go-cni holds its handle's
// read lock for the whole of each ADD and DEL and its write lock to load, so loading on every call
// into the one shared handle made concurrent pod starts wait for each other's CNI ADDs.
type Network struct {
	binDirs []string
	confDir string

	mu  sync.Mutex
	cni gocni.CNI
	// noHostPorts is cni's network without its portmap plugins, for pods without host ports (nil
	// when the network has no portmap plugin): portmap does nothing for them on ADD and on DEL,
	// and skipping it saves a plugin run each.
	noHostPorts gocni.CNI
	sig         string // the conf dir's signature when cni was loaded
	loadErr     error  // the error of that load, or nil
}

// NewNetwork prepares CNI with the given plugin dirs and conf dir. A missing or empty conf dir is
// not an error: the network is reported not ready until a config appears there.
func NewNetwork(binDirs []string, confDir string) *Network {
	return &Network{binDirs: binDirs, confDir: confDir}
}

// Status loads the CNI config from the conf dir when it changed and reports why the network is
// not ready, or nil.
func (n *Network) Status() error {
	_, err := n.load()
	return err
}

// CNI returns the loaded CNI handle, loading the config first when the conf dir changed.
func (n *Network) CNI() (gocni.CNI, error) {
	return n.load()
}

func (n *Network) load() (gocni.CNI, error) {
	sig := confDirSignature(n.confDir)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cni == nil || sig != n.sig {
		c, err := gocni.New(gocni.WithPluginDir(n.binDirs), gocni.WithPluginConfDir(n.confDir), gocni.WithMinNetworkCount(1))
		if err != nil {
			return nil, fmt.Errorf("cni: %w", err)
		}
		// The node's network comes from the first config in the conf dir. No loopback plugin: the
		// pod's lo is brought up when its namespace is made (NewNetNS), which saves a plugin run
		// per pod on ADD and on DEL.
		n.loadErr = nil
		n.noHostPorts = nil
		if err := c.Load(gocni.WithDefaultConf); err != nil {
			n.loadErr = fmt.Errorf("cni config uninitialized: no network config loadable from %s: %w", n.confDir, err)
		} else if nets := c.GetConfig().Networks; len(nets) == 1 {
			if stripped, ok := withoutPortmap([]byte(nets[0].Config.Source)); ok {
				c2, err := gocni.New(gocni.WithPluginDir(n.binDirs), gocni.WithMinNetworkCount(1))
				if err == nil {
					err = c2.Load(gocni.WithConfListBytes(stripped))
				}
				if err == nil {
					n.noHostPorts = c2
				}
			}
		}
		n.cni, n.sig = c, sig
	}
	if n.loadErr != nil {
		return nil, n.loadErr
	}
	if err := n.cni.Status(); err != nil {
		return nil, err
	}
	return n.cni, nil
}

// cniFor returns the CNI handle for a pod: the network without portmap when the pod has no host
// port and there is such a variant, the whole network otherwise.
func (n *Network) cniFor(hostPorts bool) (gocni.CNI, error) {
	c, err := n.load()
	if err != nil {
		return nil, err
	}
	if hostPorts {
		return c, nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.noHostPorts != nil && n.cni == c {
		return n.noHostPorts, nil
	}
	return c, nil
}

// withoutPortmap returns the conflist src without its plugins of type portmap, and whether it had
// any (and others).
func withoutPortmap(src []byte) ([]byte, bool) {
	var list map[string]any
	if err := json.Unmarshal(src, &list); err != nil {
		return nil, false
	}
	plugins, ok := list["plugins"].([]any)
	if !ok {
		return nil, false
	}
	var kept []any
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok && m["type"] == "portmap" {
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) == len(plugins) || len(kept) == 0 {
		return nil, false
	}
	list["plugins"] = kept
	b, err := json.Marshal(list)
	if err != nil {
		return nil, false
	}
	return b, true
}

// confDirSignature describes the conf dir's config files (name, size, modification time), so
// that a change of any of them is noticed.
func confDirSignature(dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "error: " + err.Error()
	}
	var b strings.Builder
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".conf", ".conflist", ".json":
		default:
			continue
		}
		info, err := os.Stat(filepath.Join(dir, e.Name())) // follows a symlink
		if err != nil {
			fmt.Fprintf(&b, "%s:?;", e.Name())
			continue
		}
		fmt.Fprintf(&b, "%s:%d:%d;", e.Name(), info.Size(), info.ModTime().UnixNano())
	}
	return b.String()
}
