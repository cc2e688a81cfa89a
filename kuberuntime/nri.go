package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	nri "github.com/containerd/nri/pkg/adaptation"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/sirupsen/logrus"
)

// NRIOptions configure the runtime's NRI adaptation.
type NRIOptions struct {
	// RuntimeName and RuntimeVersion are what plugins are told the runtime is.
	RuntimeName, RuntimeVersion string
	// SocketPath is where external plugins connect; empty: no external plugins.
	SocketPath string
	// PluginPath holds pre-installed plugins to launch (<index>-<name> executables); empty: none.
	PluginPath string
	// PluginConfigPath holds the configuration of pre-installed plugins; empty: none.
	PluginConfigPath string
	// RegistrationTimeout bounds a plugin's registration; 0: NRI's default (5s).
	RegistrationTimeout time.Duration
	// RequestTimeout bounds a plugin's handling of one request; 0: NRI's default (2s).
	RequestTimeout time.Duration
}

// nriLife is where an object is in its NRI lifecycle: which events it still gets.
type nriLife int

const (
	nriCreated nriLife = iota + 1
	nriRunning
	nriStopped
)

// nriObj is the NRI view of one pod or container.
type nriObj struct {
	mu    sync.Mutex
	state nriLife
	// tmpl is a container's static NRI description (from its OCI spec), built once.
	tmpl atomic.Pointer[nri.Container]
	// podLinux is a pod's static Linux part (from the pause container's spec), built once.
	podLinux atomic.Pointer[nri.LinuxPodSandbox]
}

// nriState is the runtime's NRI adaptation and the lifecycle of every pod and container in it.
type nriState struct {
	r     *ContainerdRuntime
	adapt *nri.Adaptation

	mu   sync.Mutex
	pods map[string]*nriObj
	ctrs map[string]*nriObj
	// pluginsSeen is set once a plugin synchronized: until then no event reaches anybody, so the
	// containers' NRI templates (a few KB each) are not kept (nri_hooks.go, container).
	pluginsSeen atomic.Bool
}

// nri returns the runtime's NRI adaptation; nil when NRI is off.
func (r *ContainerdRuntime) nri() *nriState { return r.nriAdaptation.Load() }

// NRIEnabled tells whether StartNRI succeeded (and StopNRI was not called).
func (r *ContainerdRuntime) NRIEnabled() bool { return r.nri() != nil }

// StartNRI starts the NRI adaptation: pre-installed plugins are launched and synchronized, then
// external plugins may connect on opts.SocketPath. It refuses a socket another process serves.
func (r *ContainerdRuntime) StartNRI(opts NRIOptions) error {
	if r.nri() != nil {
		return errors.New("NRI is started already")
	}
	var o []nri.Option
	if opts.SocketPath == "" {
		o = append(o, nri.WithDisabledExternalConnections())
	} else {
		if err := checkNRISocket(opts.SocketPath); err != nil {
			return err
		}
		o = append(o, nri.WithSocketPath(opts.SocketPath))
	}
	// An empty plugin path is a dir that does not exist: no pre-installed plugins. Without a config
	// dir, a dir of ours that never exists (NRI would read relative to the working dir).
	configPath := opts.PluginConfigPath
	if configPath == "" {
		configPath = filepath.Join(r.opts.StateDir, "nri", "no-plugin-config")
	}
	o = append(o, nri.WithPluginPath(opts.PluginPath), nri.WithPluginConfigPath(configPath))
	if opts.RegistrationTimeout > 0 {
		nri.SetPluginRegistrationTimeout(opts.RegistrationTimeout)
	}
	if opts.RequestTimeout > 0 {
		nri.SetPluginRequestTimeout(opts.RequestTimeout)
	}
	name, version := opts.RuntimeName, opts.RuntimeVersion
	if name == "" {
		name = "cri-shim"
	}
	n := &nriState{r: r, pods: map[string]*nriObj{}, ctrs: map[string]*nriObj{}}
	a, err := nri.New(name, version, n.synchronize, n.updateFromPlugin, o...)
	if err != nil {
		return fmt.Errorf("NRI: %w", err)
	}
	n.adapt = a
	n.seed()
	r.nriAdaptation.Store(n)
	if err := a.Start(); err != nil {
		r.nriAdaptation.Store(nil)
		return fmt.Errorf("NRI: %w", err)
	}
	logrus.WithFields(logrus.Fields{"socket": opts.SocketPath, "plugin_dir": opts.PluginPath}).Info("NRI started")
	return nil
}

// StopNRI disconnects the plugins and closes the NRI socket.
func (r *ContainerdRuntime) StopNRI() {
	n := r.nri()
	if n == nil {
		return
	}
	r.nriAdaptation.Store(nil)
	n.adapt.Stop()
}

// checkNRISocket refuses a socket some process answers on (a containerd's own NRI, say).
func checkNRISocket(path string) error {
	if _, err := os.Lstat(path); err != nil {
		return nil
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil // stale: the adaptation replaces it
	}
	conn.Close()
	return fmt.Errorf("NRI socket %s: another runtime is serving on it (set nri_socket to a path of cri-shim's own)", path)
}

// seed records the lifecycle of the pods and containers that exist when NRI starts, so that plugins
// get their stop and remove events.
func (n *nriState) seed() {
	for _, sb := range n.r.sandboxes.list() {
		st := sb.status()
		netUp := sb.snapshot().netUp
		life := nriStopped
		if st.State == legacy.SandboxStateReady || netUp {
			life = nriRunning
		}
		n.pods[sb.meta.ID] = &nriObj{state: life}
	}
	for _, c := range n.r.ctrs().store.list() {
		state := c.snapshot().state
		life := nriRunning
		switch state {
		case legacy.ContainerStateCreated:
			life = nriCreated
		case legacy.ContainerStateExited:
			life = nriStopped
		}
		n.ctrs[c.meta.ID] = &nriObj{state: life}
	}
}

// obj returns the NRI object of id in m, made when create is set; nil when absent.
func (n *nriState) obj(m map[string]*nriObj, id string, create bool) *nriObj {
	n.mu.Lock()
	defer n.mu.Unlock()
	o := m[id]
	if o == nil && create {
		o = &nriObj{}
		m[id] = o
	}
	return o
}

func (n *nriState) forget(m map[string]*nriObj, id string, o *nriObj) {
	n.mu.Lock()
	if m[id] == o {
		delete(m, id)
	}
	n.mu.Unlock()
}

// synchronize hands a plugin that joins every pod and every container that is not exited. It runs
// while the plugin-sync block is held by nobody else, so no pod or container is half made.
func (n *nriState) synchronize(ctx context.Context, cb nri.SyncCB) error {
	n.pluginsSeen.Store(true)
	var pods []*nri.PodSandbox
	for _, sb := range n.r.sandboxes.list() {
		pods = append(pods, n.pod(ctx, sb))
	}
	var ctrs []*nri.Container
	for _, c := range n.r.ctrs().store.list() {
		if state := c.snapshot().state; state == legacy.ContainerStateExited {
			continue
		}
		ctrs = append(ctrs, n.container(ctx, c))
	}
	logrus.WithFields(logrus.Fields{"pods": len(pods), "containers": len(ctrs)}).Debug("NRI: synchronizing a plugin")
	updates, err := cb(ctx, pods, ctrs)
	if err != nil {
		return err
	}
	n.applyAsync(updates, nil)
	return nil
}

// updateFromPlugin takes a plugin's unsolicited container updates. It runs under the adaptation's
// lock, which the runtime's hooks wait for while holding containers' locks: the updates are applied
// in the background and failures are logged.
func (n *nriState) updateFromPlugin(_ context.Context, updates []*nri.ContainerUpdate) ([]*nri.ContainerUpdate, error) {
	n.applyAsync(updates, nil)
	return nil, nil
}

type nriInternalKey struct{}

// isNRIInternal tells whether ctx is an update NRI itself asked for (no NRI hooks run for it).
func isNRIInternal(ctx context.Context) bool { return ctx.Value(nriInternalKey{}) != nil }

// applyAsync applies container updates and evictions plugins asked for, in the background.
func (n *nriState) applyAsync(updates []*nri.ContainerUpdate, evictions []*nri.ContainerEviction) {
	if len(updates) == 0 && len(evictions) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithValue(n.r.bg, nriInternalKey{}, true), cleanupTimeout)
		defer cancel()
		for _, u := range updates {
			if u == nil || u.GetLinux().GetResources() == nil {
				continue
			}
			res := nriToCRIResources(u.GetLinux().GetResources())
			if err := n.r.UpdateContainerResources(ctx, u.GetContainerId(), res); err != nil {
				entry := logrus.WithError(err).WithField("container", u.GetContainerId())
				if u.GetIgnoreFailure() {
					entry.Debug("NRI: container update failed (ignored)")
				} else {
					entry.Warn("NRI: container update failed")
				}
			}
		}
		for _, e := range evictions {
			logrus.WithFields(logrus.Fields{"container": e.GetContainerId(), "reason": e.GetReason()}).Info("NRI: evicting container")
			if err := n.r.StopContainer(context.WithoutCancel(ctx), e.GetContainerId(), 0); err != nil {
				logrus.WithError(err).WithField("container", e.GetContainerId()).Warn("NRI: eviction failed")
			}
		}
	}()
}

// nriBlockSync keeps plugins from synchronizing until Unblock (nil-safe). Callers hold it over an
// NRI event and the store change it announces.
func (r *ContainerdRuntime) nriBlockSync() *nri.PluginSyncBlock {
	if n := r.nri(); n != nil {
		return n.adapt.BlockPluginSync()
	}
	return nil
}
