package main

import (
	"context"
	"errors"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/cmd/cri-shim/config"
	"github.com/cri-shim/cri-shim/internal/sdnotify"
	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// notifySocket is a service manager's notify socket for a test: it returns the messages received.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return name, msgs
}

// versionServer is a CRI server answering Version, recording when it first did.
type versionServer struct {
	runtime.UnimplementedRuntimeServiceServer
	mu    sync.Mutex
	first time.Time
}

func (s *versionServer) Version(context.Context, *runtime.VersionRequest) (*runtime.VersionResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.first.IsZero() {
		s.first = time.Now()
	}
	return &runtime.VersionResponse{RuntimeName: "test"}, nil
}

func serveCRI(t *testing.T, socket string) (*versionServer, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	vs := &versionServer{}
	srv := grpc.NewServer()
	runtime.RegisterRuntimeServiceServer(srv, vs)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return vs, srv
}

func notifierFor(t *testing.T, socket string, watchdog time.Duration) *sdnotify.Notifier {
	t.Helper()
	t.Setenv("NOTIFY_SOCKET", socket)
	if watchdog > 0 {
		t.Setenv("WATCHDOG_USEC", strconv.FormatInt(watchdog.Microseconds(), 10))
		t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	}
	return sdnotify.FromEnv()
}

// TestReadyOnlyOnceTheSocketAnswers: READY=1 reaches the service manager only after the CRI socket
// answered a Version call, however long that takes.
func TestReadyOnlyOnceTheSocketAnswers(t *testing.T) {
	name, msgs := notifySocket(t)
	n := notifierFor(t, name, 0)
	socket := filepath.Join(t.TempDir(), "cri.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- announceReady(ctx, socket, n) }()

	select {
	case m := <-msgs:
		t.Fatalf("%q sent while nothing serves on the socket", m)
	case <-time.After(500 * time.Millisecond):
	}
	vs, _ := serveCRI(t, socket)
	var m string
	select {
	case m = <-msgs:
	case <-time.After(10 * time.Second):
		t.Fatal("no READY=1 after the socket serves")
	}
	got := time.Now()
	if !strings.HasPrefix(m, "READY=1\n") || !strings.Contains(m, "STATUS=serving CRI on "+socket) {
		t.Fatalf("message %q", m)
	}
	vs.mu.Lock()
	first := vs.first
	vs.mu.Unlock()
	if first.IsZero() || first.After(got) {
		t.Fatalf("READY=1 at %v before the socket answered (%v)", got, first)
	}
	if err := <-done; err != nil {
		t.Fatalf("announceReady without a watchdog: %v", err)
	}
}

// TestWatchdogFedWhileTheSocketAnswers: with WATCHDOG_USEC set, WATCHDOG=1 follows READY=1 about
// twice per interval while the CRI socket answers, and stops when it no longer does.
func TestWatchdogFedWhileTheSocketAnswers(t *testing.T) {
	name, msgs := notifySocket(t)
	n := notifierFor(t, name, 400*time.Millisecond)
	socket := filepath.Join(t.TempDir(), "cri.sock")
	_, srv := serveCRI(t, socket)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- announceReady(ctx, socket, n) }()
	defer func() { cancel(); <-done }()
	next := func(within time.Duration) string {
		select {
		case m := <-msgs:
			return m
		case <-time.After(within):
			return ""
		}
	}
	if m := next(10 * time.Second); !strings.HasPrefix(m, "READY=1") {
		t.Fatalf("first message %q", m)
	}
	for i := 0; i < 2; i++ {
		if m := next(2 * time.Second); m != "WATCHDOG=1" {
			t.Fatalf("watchdog ping %d: %q", i, m)
		}
	}
	srv.Stop()
	// A ping whose probe answered just before the stop may still come.
	time.Sleep(300 * time.Millisecond)
	for len(msgs) > 0 {
		<-msgs
	}
	if m := next(time.Second); m != "" {
		t.Fatalf("%q while the socket does not answer", m)
	}
}

type fakeHosts struct{ paths []string }

func (f *fakeHosts) SetRegistryConfigPath(p string) { f.paths = append(f.paths, p) }

// TestReloadAppliesLiveKeysOnly: a reload applies a new log level, log format and registry hosts
// dir, names the other changed keys in a warning without applying them, and a config that does not
// load changes nothing.
func TestReloadAppliesLiveKeysOnly(t *testing.T) {
	defer logrus.SetLevel(logrus.GetLevel())
	defer logrus.SetFormatter(logrus.StandardLogger().Formatter)
	hook := test.NewGlobal()
	defer hook.Reset()

	cfg := config.Default()
	if _, err := cfg.ResolveCgroupDriver(); err != nil { // as the daemon runs with it
		t.Fatal(err)
	}
	if err := applyLogSettings(cfg); err != nil {
		t.Fatal(err)
	}
	hostsDir := t.TempDir()
	next := cfg
	next.LogLevel, next.LogFormat, next.RegistryConfigPath = "debug", "json", hostsDir
	next.Socket, next.MaxConcurrentPulls = "/run/other.sock", 9
	var loadErr error
	hosts := &fakeHosts{}
	r := &reloader{cfg: cfg, images: hosts, load: func() (config.Config, []string, error) {
		return next, []string{"/etc/cri-shim/config.toml"}, loadErr
	}}

	applied, pending, err := r.reload()
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(applied)
	if strings.Join(applied, ",") != "log_format,log_level,registry_config_path" {
		t.Fatalf("applied %q, want log_format,log_level,registry_config_path", applied)
	}
	if strings.Join(pending, ",") != "socket,max_concurrent_pulls" {
		t.Fatalf("pending %q, want socket,max_concurrent_pulls", pending)
	}
	if logrus.GetLevel() != logrus.DebugLevel {
		t.Fatalf("log level %s after the reload", logrus.GetLevel())
	}
	if _, ok := logrus.StandardLogger().Formatter.(*logrus.JSONFormatter); !ok {
		t.Fatalf("formatter %T after the reload", logrus.StandardLogger().Formatter)
	}
	if len(hosts.paths) != 1 || hosts.paths[0] != hostsDir {
		t.Fatalf("registry hosts dir set to %q", hosts.paths)
	}
	if r.cfg.Socket != cfg.Socket || r.cfg.MaxConcurrentPulls != cfg.MaxConcurrentPulls || r.cfg.LogLevel != "debug" {
		t.Fatalf("config in effect after the reload: %+v", r.cfg)
	}
	var warned bool
	for _, e := range hook.AllEntries() {
		if keys, _ := e.Data["keys"].(string); e.Level == logrus.WarnLevel && strings.Contains(keys, "socket") {
			warned = true
		}
	}
	if !warned {
		t.Fatal("no warning naming the keys that need a restart")
	}

	next.LogLevel = "error"
	loadErr = errors.New("config drop-in /etc/cri-shim/config.d/x.toml: unknown key x")
	if _, _, err := r.reload(); err == nil {
		t.Fatal("a failed load reported as reloaded")
	}
	if logrus.GetLevel() != logrus.DebugLevel || r.cfg.LogLevel != "debug" {
		t.Fatalf("a failed load changed the log level to %s", logrus.GetLevel())
	}
}

// TestSIGHUPReloads: a SIGHUP sent to the process reaches the reloader, which applies the new log
// level, and the process lives on.
func TestSIGHUPReloads(t *testing.T) {
	defer logrus.SetLevel(logrus.GetLevel())
	cfg := config.Default()
	if err := applyLogSettings(cfg); err != nil {
		t.Fatal(err)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reloaded := make(chan struct{}, 1)
	next := cfg
	next.LogLevel = "trace"
	r := &reloader{cfg: cfg, load: func() (config.Config, []string, error) {
		defer func() { reloaded <- struct{}{} }()
		return next, nil, nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); reloadOnSignal(ctx, service{reload: hup}, r) }()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloaded:
	case <-time.After(10 * time.Second):
		t.Fatal("SIGHUP did not reload")
	}
	cancel()
	<-done
	if logrus.GetLevel() != logrus.TraceLevel {
		t.Fatalf("log level %s after SIGHUP, want trace", logrus.GetLevel())
	}
}

// TestReloadUnsetCgroupDriverIsNoChange: the daemon runs with its cgroup driver resolved (an unset
// key is the host's driver); the same files read again on a reload resolve the same way, so no
// change of cgroup_driver is warned about. Another driver named in the files is one.
func TestReloadUnsetCgroupDriverIsNoChange(t *testing.T) {
	defer logrus.SetLevel(logrus.GetLevel())
	cfg := config.Default()
	running, err := cfg.ResolveCgroupDriver()
	if err != nil {
		t.Fatal(err)
	}
	next := config.Default()
	next.LogLevel = "debug"
	r := &reloader{cfg: cfg, load: func() (config.Config, []string, error) { return next, nil, nil }}
	applied, pending, err := r.reload()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(applied, ",") != "log_level" || len(pending) != 0 {
		t.Fatalf("applied %q, pending %q; want log_level and nothing pending", applied, pending)
	}
	if r.cfg.CgroupDriver != string(running) {
		t.Fatalf("cgroup_driver in effect %q after the reload, want %q", r.cfg.CgroupDriver, running)
	}

	next.CgroupDriver = "cgroupfs"
	if running == "cgroupfs" {
		next.CgroupDriver = "systemd"
	}
	if _, pending, _ = r.reload(); strings.Join(pending, ",") != "cgroup_driver" {
		t.Fatalf("pending %q after the files named another driver, want cgroup_driver", pending)
	}
}
