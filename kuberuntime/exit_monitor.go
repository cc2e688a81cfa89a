package kuberuntime

import (
	"time"

	"github.com/cri-shim/cri-shim/kuberuntime/exitmonitor"
	"github.com/sirupsen/logrus"
)

// exitMonitor returns the runtime's exit monitor.
func (r *ContainerdRuntime) exitMonitor() *exitmonitor.Monitor {
	r.exitsInit.Do(func() {
		r.exits = exitmonitor.New(exitmonitor.NewContainerdSource(r.client, r.namespace), r.namespace, r.bg, &r.wg)
	})
	return r.exits
}

// startExitMonitor starts the exit monitor and waits a little for its subscription to be in effect
// (the daemon's start, before the recovery watches the tasks it finds running).
func (r *ContainerdRuntime) startExitMonitor() {
	if !r.exitMonitor().StartLive(5 * time.Second) {
		logrus.Warn("exit monitor: containerd's events not confirmed yet; relying on its task list meanwhile")
	}
}
