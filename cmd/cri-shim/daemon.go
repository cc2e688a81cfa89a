package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/cmd/cri-shim/managed"
	"github.com/cri-shim/cri-shim/imageservice"
	"github.com/cri-shim/cri-shim/internal/sdnotify"
	"github.com/cri-shim/cri-shim/kuberuntime"
	"github.com/cri-shim/cri-shim/kuberuntime/criu"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/lsm"
	"github.com/cri-shim/cri-shim/lsm/apparmorprofile"
	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/cri-shim/cri-shim/server"
	"github.com/cri-shim/cri-shim/streaming"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
)

// backend is the daemon's connection to containerd: the client and, when cri-shim started it, the
// managed containerd child it supervises.
type backend struct {
	cfg     config.Config
	client  *containerd.Client
	managed *managed.Containerd
	stopSup chan struct{}
	supDone chan struct{}
}

// connectContainerd connects to the containerd of cfg's containerd_mode once checkMode allows it:
// external, the one at containerd_address, waited for while it does not answer when wait is set (the
// daemon) and tried once otherwise (the commands); managed, a containerd child under cri-shim's own
// dirs, started unless one of an earlier run still serves there. Neither falls back to the other.
func connectContainerd(ctx context.Context, cfg config.Config, wait bool, n *sdnotify.Notifier) (*backend, error) {
	if err := checkMode(ctx, cfg, hostContainerd); err != nil {
		return nil, err
	}
	b := &backend{cfg: cfg}
	address := cfg.ContainerdAddress
	switch cfg.ContainerdMode {
	case config.ModeExternal:
		if wait {
			if err := waitExternal(ctx, address, managed.Probe, externalRetry, n); err != nil {
				return nil, err
			}
		} else if err := managed.Probe(ctx, address); err != nil {
			return nil, fmt.Errorf("containerd_mode external: no containerd answers at %s: %w", address, err)
		}
	case config.ModeManaged:
		address = cfg.ManagedContainerdAddress()
		if managed.Serving(ctx, address) {
			// A managed containerd of an earlier run that outlived it: use it as it is.
			logrus.WithField("address", address).Warn("a managed containerd from an earlier run is still serving; using it")
		} else {
			m, err := managed.Start(ctx, managedConfig(cfg))
			if err != nil {
				return nil, err
			}
			b.managed = m
		}
	default:
		return nil, fmt.Errorf("containerd_mode: %q is not %q or %q", cfg.ContainerdMode, config.ModeExternal, config.ModeManaged)
	}
	client, err := containerd.New(address, containerd.WithDefaultNamespace(cfg.ContainerdNamespace),
		containerd.WithTimeout(10*time.Second), containerd.WithExtraDialOpts(kuberuntime.ContainerdDialOptions()))
	if err != nil {
		b.close()
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	b.client = client
	version, err := checkContainerdVersion(ctx, client, address)
	if err != nil {
		b.close()
		return nil, err
	}
	logrus.WithFields(logrus.Fields{"address": address, "version": version, "namespace": cfg.ContainerdNamespace, "mode": cfg.ContainerdMode, "started": b.managed != nil}).Info("connected to containerd")
	if b.managed != nil {
		b.stopSup, b.supDone = make(chan struct{}), make(chan struct{})
		go b.supervise()
	}
	return b, nil
}

func managedConfig(cfg config.Config) managed.Config {
	return managed.Config{
		BinaryDir: cfg.ContainerdBinaryDir,
		Root:      filepath.Join(cfg.RootDir, "containerd"),
		State:     filepath.Join(cfg.StateDir, "containerd"),
		Address:   cfg.ManagedContainerdAddress(),
		LogPath:   filepath.Join(cfg.RootDir, "containerd.log"),
	}
}

// supervise restarts the managed containerd when it dies; the client reconnects by itself.
func (b *backend) supervise() {
	defer close(b.supDone)
	delay := time.Second
	for {
		select {
		case <-b.stopSup:
			return
		case <-b.managed.Done():
		}
		logrus.WithField("pid", b.managed.Pid()).Error("managed containerd exited; restarting it")
		for {
			select {
			case <-b.stopSup:
				return
			case <-time.After(delay):
			}
			m, err := managed.Start(context.Background(), managedConfig(b.cfg))
			if err == nil {
				b.managed, delay = m, time.Second
				break
			}
			logrus.WithError(err).Error("restart managed containerd")
			delay = min(2*delay, 30*time.Second)
		}
	}
}

func (b *backend) close() {
	if b.client != nil {
		b.client.Close()
	}
	if b.managed != nil {
		if b.stopSup != nil {
			close(b.stopSup)
			<-b.supDone
		}
		if err := b.managed.Stop(15 * time.Second); err != nil {
			logrus.WithError(err).Warn("stop managed containerd")
		}
	}
}

// listenCRI prepares the CRI socket: it refuses to start while another daemon answers on it,
// removes a stale one, and creates the new one with mode 0660.
func listenCRI(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o711); err != nil {
		return nil, err
	}
	if _, err := os.Lstat(path); err == nil {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil, fmt.Errorf("socket %s: another daemon is serving on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket %s: %w", path, err)
		}
	}
	old := syscall.Umask(0o117)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func runDaemon(ctx context.Context, cfg config.Config, svc service) error {
	applyGCPercent(cfg.GoGCPercent)
	applyMemoryLimit(cfg.GoMemoryLimitMiB)
	// root_dir, state_dir, the manifests and NRI dirs: root's alone (trusted_dirs.go).
	if err := checkTrustedDirs(cfg); err != nil {
		return err
	}
	// No start where SELinux enforces: cri-shim applies no labels (confinement.go).
	if err := checkConfinement(apparmorprofile.Host(), lsm.HostSELinux()); err != nil {
		return err
	}
	// The effective driver, in a verbose Status too.
	cgroupDriver, err := cfg.ResolveCgroupDriver()
	if err != nil {
		return err
	}
	logrus.WithField("cgroup_driver", cgroupDriver).Info("cgroup driver")
	lis, err := listenCRI(cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Socket)

	b, err := connectContainerd(ctx, cfg, true, svc.notify)
	if err != nil {
		lis.Close()
		return err
	}
	defer b.close()

	handlers, handlerSpecs, _, err := runtimeHandlers(cfg)
	if err != nil {
		lis.Close()
		return err
	}
	images, err := newImageService(b, cfg)
	if err != nil {
		lis.Close()
		return err
	}
	defer images.Close()
	rt, err := kuberuntime.NewContainerdRuntime(ctx, b.client, kuberuntime.Options{
		Namespace:         cfg.ContainerdNamespace,
		RootDir:           cfg.RootDir,
		StateDir:          cfg.StateDir,
		SandboxImage:      cfg.SandboxImage,
		Images:            kuberuntime.NewImageServiceBackend(images),
		Network:           sandbox.NewNetwork(cfg.CNIBinDirs, cfg.CNIConfDir),
		RuntimeHandlers:   handlers,
		HandlerSpecs:      handlerSpecs,
		MaxCheckpointSize: int64(cfg.CheckpointMaxSizeMiB) << 20,
		ExecIODrain:       time.Duration(cfg.ExecIODrainTimeout),
		CgroupDriver:      cgroupDriver,
		EnableCDI:         cfg.EnableCDI,
		CDISpecDirs:       cfg.CDISpecDirs,
		PauseLessPods:     cfg.PauseLessPods,
	})
	if err != nil {
		lis.Close()
		return err
	}
	defer rt.Close()
	// Probe every handler's features now: logged, and the first Status is not slowed.
	for _, h := range handlers {
		rt.HandlerFeatures(ctx, h.Name)
	}
	// Probe CRIU in the background (a real dump and restore of a test process): the log says at
	// start whether checkpoint/restore works here, and why not.
	defer criu.StartCRIUProbe(ctx)()
	if err := startNRI(rt, cfg); err != nil {
		lis.Close()
		return err
	}
	defer rt.StopNRI()
	// The container GC by the config's policy. By default (no limits) it removes only orphans
	// (dead containers whose sandbox is gone): the kubelet collects the containers it created.
	containerGC, err := legacy.NewContainerGC(rt, gcPolicy(cfg))
	if err != nil {
		lis.Close()
		return fmt.Errorf("gc_min_age: %w", err)
	}
	gcCtx, stopGC := context.WithCancel(ctx)
	gcDone := make(chan struct{})
	go func() { defer close(gcDone); containerGC.Run(gcCtx, time.Duration(cfg.GCInterval)) }()
	// Orphaned network namespaces (a crash between creating one and recording its sandbox) go at
	// start and with every GC round.
	netnsGCDone := make(chan struct{})
	go func() {
		defer close(netnsGCDone)
		t := time.NewTicker(time.Duration(cfg.GCInterval))
		defer t.Stop()
		for {
			if _, err := rt.CleanStaleNetNS(time.Duration(cfg.GCMinAge)); err != nil {
				logrus.WithError(err).Warn("stale network namespace cleanup")
			}
			select {
			case <-gcCtx.Done():
				return
			case <-t.C:
			}
		}
	}()
	defer func() { stopGC(); <-gcDone; <-netnsGCDone }()
	// Standalone pods: the manifests of static_pods_dir, kept running through the model's SyncPod.
	// Their sandboxes and containers are closed to CRI calls that would delete them (a kubelet's
	// orphan cleanup and GC) unless static_pods_protected is off.
	stopPods, protectPods, err := startStandalonePods(ctx, cfg, rt, images)
	if err != nil {
		lis.Close()
		return err
	}
	defer stopPods()
	streamServer, err := streaming.NewServer(streaming.Config{Addr: cfg.StreamServerAddress}, rt)
	if err != nil {
		lis.Close()
		return fmt.Errorf("stream_server_address: %w", err)
	}
	streamServer.Start()
	defer streamServer.Stop()
	logrus.WithField("url", streamServer.URL().String()).Info("serving exec, attach and port-forward streams")
	reload := &reloader{load: svc.load, cfg: cfg, images: images}
	grpcServer := server.NewGRPCServer(server.Options{
		Version:      version,
		Backend:      rt,
		Images:       server.NewImageServer(images),
		Config:       func() any { return reload.effective() },
		SandboxImage: cfg.SandboxImage,
		Confinement:  confinementInfo(apparmorprofile.Host(), lsm.HostSELinux()),
		Streaming:    streamServer,
		// Recursive read-only mounts and user namespaces are advertised per handler, only when
		// its runc (and, for user namespaces, the kernel and snapshotter) can do them.
		HandlerFeatures: rt.HandlerFeatures,
		RuntimeHandlers: cfg.RuntimeNames(),
		Protected:       protectPods,
		CgroupDriver:    cgroupDriver,
	})

	if cfg.MetricsAddress != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsAddress, cfg.EnablePprof, rt.StateCollector())
		if err != nil {
			lis.Close()
			return err
		}
		defer stopMetrics()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- grpcServer.Serve(lis) }()
	logrus.WithFields(logrus.Fields{"socket": cfg.Socket, "version": version}).Info("cri-shim serving CRI")
	svcCtx, stopSvc := context.WithCancel(ctx)
	svcDone := make(chan struct{}, 2)
	go func() {
		defer func() { svcDone <- struct{}{} }()
		if err := announceReady(svcCtx, cfg.Socket, svc.notify); err != nil && svcCtx.Err() == nil {
			logrus.WithError(err).Error("tell the service manager cri-shim is ready")
		}
	}()
	go func() {
		defer func() { svcDone <- struct{}{} }()
		reloadOnSignal(svcCtx, svc, reload)
	}()
	defer func() { stopSvc(); <-svcDone; <-svcDone }()

	select {
	case <-ctx.Done():
		logrus.Info("shutting down")
		svc.notify.Notify(sdnotify.Stopping)
	case err := <-serveErr:
		return fmt.Errorf("grpc server: %w", err)
	case <-streamServer.Done():
		gracefulStop(grpcServer, 10*time.Second)
		return fmt.Errorf("streaming server: %w", streamServer.Err())
	}
	gracefulStop(grpcServer, 10*time.Second)
	return nil
}

func gracefulStop(s *grpc.Server, grace time.Duration) {
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		s.Stop()
	}
}

// serveMetrics serves Prometheus metrics on addr (/metrics), and /debug/pprof with pprof.
func serveMetrics(addr string, pprofOn bool, extra ...prometheus.Collector) (func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(server.Collectors()...)
	reg.MustRegister(kuberuntime.EventsGCAndContainerdCollectors()...)
	reg.MustRegister(imageservice.Collectors()...)
	reg.MustRegister(extra...)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics_address: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if pprofOn {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logrus.WithError(err).Error("metrics server")
		}
	}()
	logrus.WithField("address", lis.Addr().String()).Info("serving metrics")
	return func() { srv.Close() }, nil
}

// startNRI serves NRI plugins (enable_nri) on the configured socket, before any CRI request.
func startNRI(rt *kuberuntime.ContainerdRuntime, cfg config.Config) error {
	if !cfg.EnableNRI {
		return nil
	}
	err := rt.StartNRI(kuberuntime.NRIOptions{
		RuntimeName:         "cri-shim",
		RuntimeVersion:      version,
		SocketPath:          cfg.NRISocketPath(),
		PluginPath:          cfg.NRIPluginDir,
		PluginConfigPath:    cfg.NRIPluginConfigDir,
		RegistrationTimeout: time.Duration(cfg.NRIPluginRegistrationTimeout),
		RequestTimeout:      time.Duration(cfg.NRIPluginRequestTimeout),
	})
	if err != nil {
		return fmt.Errorf("enable_nri: %w", err)
	}
	return nil
}

// applyGCPercent sets the Go GC's heap growth target from go_gc_percent, unless the GOGC
// environment variable (which the runtime has applied already) is set. At 500 containers the live
// heap is ~11-15 MB: at Go's default of 100 the heap grows to twice that between collections; 75
// kept RSS at full 2-3 MiB lower in make bench for ~5% more of the daemon's (small) CPU.
func applyGCPercent(p int) {
	if p <= 0 || os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(p)
}

// applyMemoryLimit sets the Go runtime's soft memory limit from go_memory_limit_mib, unless the
// GOMEMLIMIT environment variable (which the runtime has applied already) is set. The daemon's live
// heap is small (about 15 MB at 500 containers); without a limit the GC lets it double between
// collections, which is most of the RSS.
func applyMemoryLimit(mib int) {
	if mib <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(int64(mib) << 20)
	logrus.WithField("limit_mib", mib).Debug("Go soft memory limit")
}
