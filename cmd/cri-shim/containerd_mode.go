package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/cmd/cri-shim/managed"
	"github.com/cri-shim/cri-shim/internal/sdnotify"
	"github.com/sirupsen/logrus"
)

// containerdView is what the mode checks see of containerd: whether one answers at an address, the
// containers of a namespace there, and the live tasks a managed containerd's state dir still holds.
type containerdView struct {
	probe      func(ctx context.Context, address string) error
	containers func(ctx context.Context, address, namespace string) ([]string, error)
	liveTasks  func(state, namespace string) ([]string, error)
}

var hostContainerd = containerdView{probe: managed.Probe, containers: managed.Containers, liveTasks: managed.LiveTasks}

// checkMode refuses cfg's containerd_mode while the other mode's containerd still holds pods of
// cri-shim's namespace: the daemon would not see them, they would run on, and the kubelet would
// start them a second time.
func checkMode(ctx context.Context, cfg config.Config, v containerdView) error {
	ns := cfg.ContainerdNamespace
	switch cfg.ContainerdMode {
	case config.ModeExternal:
		// A managed containerd that outlived its cri-shim, or the shims of one that did not.
		if ids, err := v.containers(ctx, cfg.ManagedContainerdAddress(), ns); err == nil && len(ids) > 0 {
			return fmt.Errorf("containerd_mode is external, but the managed containerd of an earlier run still serves at %s "+
				"with %d containers of namespace %q (%s): their pods would run on unseen. %s",
				cfg.ManagedContainerdAddress(), len(ids), ns, sample(ids), managedToExternal)
		}
		state := managedConfig(cfg).State
		live, err := v.liveTasks(state, ns)
		if err != nil {
			return fmt.Errorf("containerd_mode external: look for the managed containerd's tasks in %s: %w", state, err)
		}
		if len(live) > 0 {
			return fmt.Errorf("containerd_mode is external, but %d containers of namespace %q started by the managed containerd "+
				"of an earlier run still run (%s, bundles under %s): their pods would run on unseen. %s",
				len(live), ns, sample(live), state, managedToExternal)
		}
	case config.ModeManaged:
		if ids, err := v.containers(ctx, cfg.ContainerdAddress, ns); err == nil && len(ids) > 0 {
			return fmt.Errorf("containerd_mode is managed, but the containerd at %s (containerd_address) holds %d containers "+
				"of namespace %q (%s), made by cri-shim in external mode: a managed containerd would not see them. "+
				"Set containerd_mode = \"external\" to use them, or remove those pods first (crictl rmp -fa with cri-shim "+
				"in external mode), or give the managed cri-shim another containerd_namespace",
				cfg.ContainerdAddress, len(ids), ns, sample(ids))
		}
	}
	return nil
}

const managedToExternal = `Start cri-shim with containerd_mode = "managed", remove the pods (crictl rmp -fa, or let the kubelet drain the node) ` +
	`and stop it; then start it with containerd_mode = "external"`

// sample names a few of ids.
func sample(ids []string) string {
	const n = 3
	short := make([]string, 0, n)
	for _, id := range ids[:min(n, len(ids))] {
		short = append(short, id[:min(12, len(id))])
	}
	s := strings.Join(short, ", ")
	if len(ids) > n {
		s += ", ..."
	}
	return s
}

// retry is the backoff of the wait for an external containerd.
type retry struct{ first, max time.Duration }

var externalRetry = retry{first: 250 * time.Millisecond, max: 10 * time.Second}

// waitExternal waits until the containerd at address answers, retrying with backoff and logging
// every failed attempt with its error. It never starts a containerd: one that is late (at boot,
// during an upgrade) is waited for, and the service manager's start timeout bounds the wait.
func waitExternal(ctx context.Context, address string, probe func(context.Context, string) error, r retry, n *sdnotify.Notifier) error {
	delay := r.first
	for attempt := 1; ; attempt++ {
		err := probe(ctx, address)
		if err == nil {
			return nil
		}
		logrus.WithError(err).WithFields(logrus.Fields{"address": address, "attempt": attempt, "retry_in": delay}).
			Warn("containerd_mode external: no containerd answers yet; waiting")
		n.Notify(fmt.Sprintf("STATUS=waiting for containerd at %s (attempt %d): %v", address, attempt, err))
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd_mode external: no containerd answered at %s: %w", address, err)
		case <-time.After(delay):
		}
		delay = min(2*delay, r.max)
	}
}
