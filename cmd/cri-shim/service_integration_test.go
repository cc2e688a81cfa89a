//go:build integration

package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// logFile is a daemon's output in a file, read by the test while the daemon writes it. A file, not
// a pipe: a process the daemon leaves behind cannot hold the test's wait for its output.
type logFile struct{ *os.File }

func (f logFile) String() string {
	data, _ := os.ReadFile(f.Name())
	return string(data)
}

// TestDaemonAsService: started as systemd would (NOTIFY_SOCKET set), the daemon reports READY=1
// once its CRI socket answers; SIGHUP reloads the config file and its drop-ins, applies a new log
// level, names a changed key that needs a restart, and the daemon serves on; SIGTERM reports
// STOPPING=1.
func TestDaemonAsService(t *testing.T) {
	bin := buildDaemon(t)
	dir, err := os.MkdirTemp("/tmp", "crishim-svc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.UnmountAll(dir); os.RemoveAll(dir) })
	notifyPath := filepath.Join(dir, "notify.sock")
	notify, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notifyPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer notify.Close()
	msgs := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := notify.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	next := func(prefix string, within time.Duration) string {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case m := <-msgs:
				if strings.HasPrefix(m, prefix) {
					return m
				}
			case <-deadline:
				t.Fatalf("no %s from the daemon in %s", prefix, within)
			}
		}
	}

	conf := filepath.Join(dir, "config.toml")
	write := func(p, body string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(conf, "log_level = \"info\"\ncontainerd_mode = \"managed\"\n")
	socket := filepath.Join(dir, "cri.sock")
	cmd := exec.Command(bin, "--config", conf, "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"),
		"--socket", socket, "--cni-conf-dir", filepath.Join(dir, "net.d"),
		"--static-pods-dir", filepath.Join(dir, "manifests"), "--static-pods-log-dir", filepath.Join(dir, "pod-logs"))
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notifyPath)
	f, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := logFile{f}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// exited is closed when the daemon has exited, with its error in waitErr.
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", out)
		}
	})

	ready := next("READY=1", 90*time.Second)
	c := criClient(t, socket)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Version(ctx, &runtime.VersionRequest{}); err != nil {
		t.Fatalf("%q sent, but Version fails: %v", ready, err)
	}

	waitFor := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for strings.Count(out.String(), what) < n {
			if time.Now().After(deadline) {
				t.Fatalf("%q not logged %d times", what, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A drop-in lowers the log level to warn (live) and changes max_concurrent_pulls (restart).
	write(filepath.Join(dir, "config.d", "50-service.toml"), "log_level = \"warn\"\nmax_concurrent_pulls = 1\n")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("applied=log_level", 1)
	waitFor("keys=max_concurrent_pulls", 1)
	// The second SIGHUP's info line is not logged any more: the warn level applies. The pending key
	// is named again.
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("keys=max_concurrent_pulls", 2)
	if n := strings.Count(out.String(), "SIGHUP: reloading the config"); n != 1 {
		t.Fatalf("%d info lines of a SIGHUP after the level went to warn, want 1 (before it)", n)
	}
	select {
	case <-exited:
		t.Fatalf("daemon exited after SIGHUP: %v", waitErr)
	default:
	}
	if _, err := c.Version(ctx, &runtime.VersionRequest{}); err != nil {
		t.Fatalf("Version after SIGHUP: %v", err)
	}
	// crictl info shows the config in effect: the reloaded log level, the pending key as it was.
	st, err := c.Status(ctx, &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatalf("verbose Status after SIGHUP: %v", err)
	}
	var info struct {
		LogLevel           string `json:"log_level"`
		MaxConcurrentPulls int    `json:"max_concurrent_pulls"`
	}
	if err := json.Unmarshal([]byte(st.GetInfo()["config"]), &info); err != nil {
		t.Fatalf("verbose Status config: %v", err)
	}
	if info.LogLevel != "warn" || info.MaxConcurrentPulls == 1 {
		t.Fatalf("crictl info after the reload shows log_level %q, max_concurrent_pulls %d; want warn and the value before", info.LogLevel, info.MaxConcurrentPulls)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("STOPPING=1", 30*time.Second)
	select {
	case <-exited:
		if waitErr != nil {
			t.Fatalf("daemon exit: %v", waitErr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("daemon did not exit after SIGTERM")
	}
}

// TestExternalModeRefusedWhileManagedPodsRun: a pod started by a managed-mode daemon runs on after
// the daemon (and its containerd) stopped; the daemon asked to start in external mode then refuses,
// saying what to do, and starts no containerd. Back in managed mode it finds the pod again.
func TestExternalModeRefusedWhileManagedPodsRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The test registry serves the pause image; the pod is on the host's network.
	dir, args := crashEnv(t, ctx, "mode", "crishimmd0", "10.91.0.0/24")
	bin := buildDaemon(t)

	d := startDaemon(t, bin, dir, args...)
	c := criClient(t, d.socket)
	p, err := c.RunPodSandbox(ctx, &runtime.RunPodSandboxRequest{Config: hostNetPod("modeswitch")})
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	d.cmd.Wait()

	ext := exec.CommandContext(ctx, bin, "--containerd-mode", "external", "--containerd-address", filepath.Join(dir, "system.sock"),
		"--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--socket", d.socket,
		"--static-pods-dir", filepath.Join(dir, "manifests"), "--static-pods-log-dir", filepath.Join(dir, "pod-logs"))
	out, err := ext.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "containerd_mode is external, but 1 containers of namespace \"cri-shim\" started by the managed containerd") ||
		!strings.Contains(string(out), p.PodSandboxId[:12]) || !strings.Contains(string(out), `containerd_mode = "managed"`) {
		t.Fatalf("external mode with a managed pod running: %v\n%s", err, out)
	}
	t.Logf("refused: %s", out)
	if strings.Contains(string(out), "waiting") || len(managedContainerdPids(dir)) != 0 {
		t.Fatalf("external mode waited or started a containerd:\n%s", out)
	}

	// What the refusal says to do: managed mode, remove the pod.
	d = startDaemon(t, bin, dir, args...)
	c = criClient(t, d.socket)
	st, err := c.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: p.PodSandboxId})
	if err != nil || st.Status.State != runtime.PodSandboxState_SANDBOX_READY {
		t.Fatalf("pod after the return to managed mode: %v %v", st, err)
	}
	if _, err := c.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.PodSandboxId}); err != nil {
		t.Fatal(err)
	}
}
