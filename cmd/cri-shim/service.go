package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/internal/sdnotify"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// service is the daemon's side of its service manager: state notifications, and the reloads asked
// for by SIGHUP (systemctl reload).
type service struct {
	notify *sdnotify.Notifier
	// reload receives a value for every SIGHUP.
	reload <-chan os.Signal
	// load reads the config files and the command line again.
	load func() (config.Config, []string, error)
}

// criProbe asks the daemon's own CRI socket for its version, as a kubelet would first.
type criProbe struct {
	conn   *grpc.ClientConn
	client runtime.RuntimeServiceClient
}

func newCRIProbe(socket string) (*criProbe, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &criProbe{conn: conn, client: runtime.NewRuntimeServiceClient(conn)}, nil
}

func (p *criProbe) answers(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := p.client.Version(ctx, &runtime.VersionRequest{})
	return err
}

func (p *criProbe) close() { p.conn.Close() }

// announceReady tells the service manager the daemon is ready once its CRI socket answers: what is
// ordered after cri-shim (a kubelet) starts then, and not before. It then keeps the watchdog fed
// while the socket answers, when the service manager runs one.
func announceReady(ctx context.Context, socket string, n *sdnotify.Notifier) error {
	if n == nil {
		return nil
	}
	p, err := newCRIProbe(socket)
	if err != nil {
		return err
	}
	defer p.close()
	for p.answers(ctx, time.Second) != nil {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := n.Notify(sdnotify.Ready + "\nSTATUS=serving CRI on " + socket); err != nil {
		return fmt.Errorf("notify the service manager: %w", err)
	}
	interval := n.WatchdogInterval()
	if interval <= 0 {
		return nil
	}
	// Fed at twice the rate asked, and only while the socket answers: a daemon that stops serving is
	// restarted by the service manager (KillMode=process leaves the pods running).
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := p.answers(ctx, interval/4); err != nil {
			logrus.WithError(err).Warn("the CRI socket does not answer: watchdog not fed")
			continue
		}
		n.Notify(sdnotify.Watchdog)
	}
}

// liveKeys are the keys a reload applies to the running daemon. The CNI config needs none of it: the
// network reloads its conf dir whenever it changes; so does a registry hosts dir, read at each pull.
var liveKeys = map[string]bool{"log_level": true, "log_format": true, "registry_config_path": true, "config_dir": true}

// registryHosts is where the image service reads its registry hosts dir.
type registryHosts interface{ SetRegistryConfigPath(string) }

// reloader applies the config files to the running daemon again.
type reloader struct {
	load   func() (config.Config, []string, error)
	images registryHosts

	mu  sync.Mutex    // guards cfg: a verbose Status reads it while a reload writes it
	cfg config.Config // in effect
}

// effective is the config in effect, as the last reload left it.
func (r *reloader) effective() config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg
}

// reload reads the config again and applies the keys that can change live; the other changed keys
// are named in a warning and left as they are until a restart. A config that does not load or
// validate changes nothing.
func (r *reloader) reload() (applied, pending []string, err error) {
	next, files, err := r.load()
	if err != nil {
		logrus.WithError(err).Error("reload: config not applied")
		return nil, nil, err
	}
	// As the daemon resolved it at its start: an unset cgroup_driver is the host's, not a change.
	if _, err := next.ResolveCgroupDriver(); err != nil {
		logrus.WithError(err).Error("reload: config not applied")
		return nil, nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur, nxt := r.cfg.Fields(), next.Fields()
	for i, f := range cur {
		if reflect.DeepEqual(f.Value.Interface(), nxt[i].Value.Interface()) {
			continue
		}
		if !liveKeys[f.Key] {
			pending = append(pending, f.Key)
			continue
		}
		applied = append(applied, f.Key)
		f.Value.Set(nxt[i].Value)
	}
	// Said before the log level changes, so that it is seen at the level it was asked at.
	logrus.WithFields(logrus.Fields{"files": strings.Join(files, ","), "applied": strings.Join(applied, ",")}).Info("config reloaded")
	if len(pending) > 0 {
		logrus.WithField("keys", strings.Join(pending, ",")).Warn("reload: these changed keys take effect only when cri-shim restarts; not applied")
	}
	if err := applyLogSettings(r.cfg); err != nil {
		return applied, pending, err
	}
	if r.images != nil {
		r.images.SetRegistryConfigPath(r.cfg.RegistryConfigPath)
	}
	return applied, pending, nil
}

// reloadOnSignal reloads the config at every SIGHUP until ctx ends.
func reloadOnSignal(ctx context.Context, svc service, r *reloader) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-svc.reload:
			logrus.Info("SIGHUP: reloading the config")
			r.reload()
		}
	}
}
