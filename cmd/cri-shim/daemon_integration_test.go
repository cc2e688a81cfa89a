//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cri-shim/cri-shim/internal/testutil"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// daemon is a cri-shim process started by a test, with its own dirs and a managed containerd.
type daemon struct {
	dir, socket string
	cmd         *exec.Cmd
	out         *bytes.Buffer
}

func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cri-shim")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

func startDaemon(t *testing.T, bin, dir string, extra ...string) *daemon {
	t.Helper()
	d := &daemon{dir: dir, socket: filepath.Join(dir, "cri.sock"), out: &bytes.Buffer{}}
	args := append([]string{"--managed-containerd", "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"),
		"--socket", d.socket, "--log-level", "debug",
		// Standalone pods from a dir of the test's own, never the host's /etc/cri-shim/manifests.
		"--static-pods-dir", filepath.Join(dir, "manifests"), "--static-pods-log-dir", filepath.Join(dir, "pod-logs")}, extra...)
	d.cmd = exec.Command(bin, args...)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Signal(syscall.SIGTERM)
			d.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("daemon output:\n%s", d.out)
		}
	})
	deadline := time.Now().Add(90 * time.Second)
	c := criClient(t, d.socket)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Version(ctx, &runtime.VersionRequest{})
		cancel()
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon did not create its socket; output:\n%s", d.out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func criClient(t *testing.T, socket string) runtime.RuntimeServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return runtime.NewRuntimeServiceClient(conn)
}

func TestDaemonManagedContainerd(t *testing.T) {
	if _, err := os.Stat("/var/cache/cri-shim/bin/containerd"); err != nil {
		if _, err := exec.LookPath("containerd"); err != nil {
			t.Fatal("no containerd binary: run hack/setup.sh (make setup) first")
		}
	}
	bin := buildDaemon(t)
	dir, err := os.MkdirTemp("/tmp", "crishim-it-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.UnmountAll(dir); os.RemoveAll(dir) }) // the shared pause rootfs stays mounted by design
	conf := filepath.Join(dir, "net.d")
	os.MkdirAll(conf, 0o755)

	d := startDaemon(t, bin, dir, "--cni-conf-dir", conf)
	st, _ := os.Stat(d.socket)
	if perm := st.Mode().Perm(); perm != 0o660 {
		t.Errorf("socket mode %o, want 660", perm)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := criClient(t, d.socket)
	v, err := c.Version(ctx, &runtime.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if v.RuntimeName != "cri-shim" || v.RuntimeApiVersion != "v1" {
		t.Fatalf("version: %v", v)
	}

	// No CNI config: the runtime is ready, the network is not, with a reason.
	s, err := c.Status(ctx, &runtime.StatusRequest{Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	conds := map[string]*runtime.RuntimeCondition{}
	for _, cond := range s.Status.Conditions {
		conds[cond.Type] = cond
	}
	if !conds["RuntimeReady"].GetStatus() {
		t.Fatalf("runtime not ready: %v", conds["RuntimeReady"])
	}
	if conds["NetworkReady"].GetStatus() || conds["NetworkReady"].GetReason() == "" {
		t.Fatalf("network ready without a CNI config: %v", conds["NetworkReady"])
	}
	if !strings.Contains(s.Info["config"], `"containerd_namespace":"cri-shim"`) {
		t.Fatalf("verbose config: %s", s.Info["config"])
	}
	// The host's confinement, as crictl info shows it: AppArmor's default profile or why none,
	// SELinux's mode and that no labels are applied.
	var aa struct {
		Enabled        bool
		DefaultProfile string
		Reason         string
	}
	if err := json.Unmarshal([]byte(s.Info["apparmor"]), &aa); err != nil {
		t.Fatalf("info apparmor %q: %v", s.Info["apparmor"], err)
	}
	if aa.Enabled && aa.DefaultProfile != "cri-shim.apparmor.d" || !aa.Enabled && !strings.HasPrefix(aa.Reason, "AppArmor not enabled on this host") {
		t.Fatalf("info apparmor: %s", s.Info["apparmor"])
	}
	if !strings.Contains(s.Info["selinux"], `"labels":false`) || !strings.Contains(s.Info["selinux"], "applies no SELinux labels") {
		t.Fatalf("info selinux: %s", s.Info["selinux"])
	}

	// A CNI config appears: the network becomes ready without a restart.
	os.WriteFile(filepath.Join(conf, "10-test.conflist"), []byte(`{"cniVersion":"1.0.0","name":"t","plugins":[{"type":"bridge","bridge":"crishimtest0","ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"}]]}}]}`), 0o644)
	s, err = c.Status(ctx, &runtime.StatusRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cond := range s.Status.Conditions {
		if cond.Type == "NetworkReady" && !cond.Status {
			t.Fatalf("network not ready with a config: %v", cond)
		}
	}

	// A second daemon on the same socket refuses to start.
	second := exec.Command(bin, "--managed-containerd", "--root", filepath.Join(dir, "root2"), "--state", filepath.Join(dir, "state2"), "--socket", d.socket)
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another daemon is serving") {
		t.Fatalf("second daemon on the same socket: err %v, output:\n%s", err, out)
	}

	// SIGTERM: a clean exit that stops the managed containerd and removes the socket.
	pidOut, _ := exec.Command("pgrep", "-f", "containerd --config "+filepath.Join(dir, "state", "containerd")).Output()
	if len(strings.Fields(string(pidOut))) != 1 {
		t.Fatalf("want one managed containerd process, found %q", pidOut)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	if _, err := os.Stat(d.socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	for _, p := range strings.Fields(string(pidOut)) {
		pid, _ := strconv.Atoi(p)
		if pid > 0 && syscall.Kill(pid, 0) == nil {
			t.Errorf("managed containerd %d still running after the daemon stopped", pid)
		}
	}

	// A stale socket (no one answering) is replaced.
	l, err := net.Listen("unix", d.socket)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	if _, err := os.Stat(d.socket); err != nil {
		t.Fatalf("stale socket not created: %v", err)
	}
	d2 := startDaemon(t, bin, dir, "--cni-conf-dir", conf)
	if _, err := criClient(t, d2.socket).Version(ctx, &runtime.VersionRequest{}); err != nil {
		t.Fatalf("restarted daemon: %v", err)
	}
}

func TestDaemonMetrics(t *testing.T) {
	bin := buildDaemon(t)
	dir, err := os.MkdirTemp("/tmp", "crishim-it-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.UnmountAll(dir); os.RemoveAll(dir) }) // the shared pause rootfs stays mounted by design
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	d := startDaemon(t, bin, dir, "--metrics-address", addr, "--enable-pprof")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := criClient(t, d.socket)
	if _, err := c.Status(ctx, &runtime.StatusRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: "absent"}); err == nil {
		t.Fatal("status of an absent container succeeded")
	}
	get := func(path string) string {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return string(b)
	}
	body := get("/metrics")
	for _, want := range []string{
		`cri_shim_grpc_request_duration_seconds_count{code="OK",method="/runtime.v1.RuntimeService/Status"}`,
		`cri_shim_grpc_request_duration_seconds_count{code="NotFound",method="/runtime.v1.RuntimeService/ContainerStatus"} 1`,
		`cri_shim_pod_sandboxes{state="ready"} 0`,
		`cri_shim_containers{state="running"} 0`,
		`cri_shim_image_pulls_total{result="success"} 0`,
		`cri_shim_container_events_dropped_total 0`,
		`cri_shim_gc_containers_removed_total`,
		// recovery at start lists containerd's tasks: the client's calls are timed
		`cri_shim_containerd_request_duration_seconds_count{code="OK",method="/containerd.services.tasks.v1.Tasks/List"}`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if !strings.Contains(get("/debug/pprof/"), "goroutine") {
		t.Error("pprof index without goroutine profile")
	}
}

func TestDaemonRejectsBadConfig(t *testing.T) {
	bin := buildDaemon(t)
	// A root dir others may write to: the daemon refuses to start.
	open := filepath.Join(t.TempDir(), "open-root")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if out, err := exec.Command(bin, "--root", open, "--state", filepath.Join(t.TempDir(), "st"), "--socket", filepath.Join(t.TempDir(), "s.sock")).CombinedOutput(); err == nil || !strings.Contains(string(out), "root_dir:") {
		t.Fatalf("world-writable root dir: err %v, output %s", err, out)
	}
	// Nor one its group may write to (issue 19, finding 9).
	os.Chmod(open, 0o770)
	if out, err := exec.Command(bin, "--root", open, "--state", filepath.Join(t.TempDir(), "st"), "--socket", filepath.Join(t.TempDir(), "s.sock")).CombinedOutput(); err == nil || !strings.Contains(string(out), "root_dir:") {
		t.Fatalf("group-writable root dir: err %v, output %s", err, out)
	}
	p := filepath.Join(t.TempDir(), "c.toml")
	os.WriteFile(p, []byte("max_concurrent_pulls = \"many\"\n"), 0o600)
	out, err := exec.Command(bin, "--config", p).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "max_concurrent_pulls") {
		t.Fatalf("bad config: err %v, output %s", err, out)
	}
	out, err = exec.Command(bin, "--socket", "relative").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "socket:") {
		t.Fatalf("bad flag value: err %v, output %s", err, out)
	}
}
