//go:build integration

package standalone

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/cri-shim/cri-shim/imageservice"
	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/kuberuntime"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/cri-shim/cri-shim/test/critest/testregistry"
)

// itEnv is a containerd, the test registry, a CNI network of the test's own, a ContainerdRuntime
// and a standalone pods manager on a manifests dir.
type itEnv struct {
	t     *testing.T
	dir   string
	rt    *kuberuntime.ContainerdRuntime
	m     *Manager
	state string
}

func newITEnv(t *testing.T, backoff *legacy.Backoff, gc legacy.ContainerGCPolicy) *itEnv {
	t.Helper()
	return newITEnvWith(t, backoff, gc, nil)
}

// newITEnvWith is newITEnv with the runtime's options changed by configure (nil: none).
func newITEnvWith(t *testing.T, backoff *legacy.Backoff, gc legacy.ContainerGCPolicy, configure func(*kuberuntime.Options)) *itEnv {
	t.Helper()
	ctx := context.Background()
	address := testutil.StartContainerd(t)
	reg, err := testregistry.Start(ctx, testregistry.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	dir, err := os.MkdirTemp("/tmp", "sap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { testutil.UnmountAll(dir); os.RemoveAll(dir) })
	hosts := filepath.Join(dir, "certs.d")
	if err := reg.WriteHostsDir(hosts); err != nil {
		t.Fatal(err)
	}
	bridge, subnet := fmt.Sprintf("csa%d", os.Getpid()%1000), fmt.Sprintf("10.%d.%d.0/24", 150+os.Getpid()%50, os.Getpid()%250)
	conf := filepath.Join(dir, "net.d")
	os.MkdirAll(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "10-sa.conflist"), []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":"sa-test","plugins":[
		{"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q}]]}},
		{"type":"portmap","capabilities":{"portMappings":true}}]}`, bridge, filepath.Join(dir, "ipam"), subnet)), 0o644)
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	client, err := containerd.New(address, containerd.WithDefaultNamespace("sa-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	images, err := imageservice.New(client, imageservice.Config{Namespace: "sa-test", RegistryConfigPath: hosts})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { images.Close() })
	opts := kuberuntime.Options{
		Namespace: "sa-test", RootDir: filepath.Join(dir, "root"), StateDir: filepath.Join(dir, "state"),
		SandboxImage: "registry.k8s.io/pause:3.10", Images: kuberuntime.NewImageServiceBackend(images),
		Network: sandbox.NewNetwork([]string{"/opt/cni/bin", "/usr/lib/cni"}, conf),
		// CRI_SHIM_TEST_PAUSE_LESS=1 runs the standalone pods without a pause process, as the
		// daemon's default does.
		PauseLessPods: os.Getenv("CRI_SHIM_TEST_PAUSE_LESS") == "1",
	}
	if configure != nil {
		configure(&opts)
	}
	rt, err := kuberuntime.NewContainerdRuntime(ctx, client, opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &itEnv{t: t, dir: dir, rt: rt, state: filepath.Join(dir, "state")}
	e.m, err = New(Options{
		Dir: filepath.Join(dir, "manifests"), StateDir: e.state, VolumeRoot: filepath.Join(dir, "volumes"),
		PodLogRoot: filepath.Join(dir, "logs"), Runtime: rt, Cache: rt.PodStatusCache(),
		Images: kuberuntime.NewImageServiceBackend(images), GC: rt, GCPolicy: gc, GCInterval: time.Second,
		Backoff: backoff, ScanInterval: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); e.m.Run(mctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		list, _ := rt.ListPodSandbox(context.Background(), nil)
		for _, s := range list {
			rt.RemovePodSandbox(context.Background(), s.ID)
		}
		rt.Close()
	})
	return e
}

func (e *itEnv) apply(name, manifest string) {
	e.t.Helper()
	os.MkdirAll(filepath.Join(e.dir, "manifests"), 0o700)
	if err := WriteFileAtomic(filepath.Join(e.dir, "manifests", name+".yaml"), []byte(manifest), 0o600); err != nil {
		e.t.Fatal(err)
	}
}

// containers returns the pod's containers of that name, oldest attempt first.
func (e *itEnv) containers(pod, name string) []*legacy.ContainerDetails {
	cs, _ := e.rt.ListContainers(context.Background(), &legacy.ContainerFilter{Labels: map[string]string{
		"io.kubernetes.pod.name": pod, "io.kubernetes.container.name": name}})
	sort.Slice(cs, func(i, j int) bool { return cs[i].Attempt < cs[j].Attempt })
	return cs
}

func (e *itEnv) wait(what string, d time.Duration, f func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out (%s) waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *itEnv) events(pod string) string {
	rec, err := ReadRecord(e.state, "default", pod)
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, ev := range rec.Events {
		fmt.Fprintf(&b, "  %s %-8s %-10s x%-3d %s\n", ev.FirstTime.Format("15:04:05.000"), ev.Type, ev.Reason, ev.Count, ev.Message)
	}
	return b.String()
}

func runningOf(cs []*legacy.ContainerDetails) *legacy.ContainerDetails {
	for _, c := range cs {
		if c.State == legacy.ContainerStateRunning {
			return c
		}
	}
	return nil
}

// TestStandalonePods runs manifests from the directory on a real containerd: a two-container pod
// with a hostPort and an exec probe serves on the host port and is replaced container by
// container when edited; a crash-looping container restarts with growing delays and its dead
// containers are bounded by the GC; a liveness failure restarts a container; a removed manifest
// removes the pod.
//
// The crash-loop backoff is 1 s doubling to 8 s here to stay fast (the default is 10 s to 300 s,
// CRI_SHIM_REAL_BACKOFF=1 uses it and takes minutes).
func TestStandalonePods(t *testing.T) {
	if os.Getenv("CRI_SHIM_INTEGRATION") == "" {
		t.Fatal("CRI_SHIM_INTEGRATION is not set: run through make integration")
	}
	base, maxDelay, attempts := time.Second, 8*time.Second, 6
	if os.Getenv("CRI_SHIM_REAL_BACKOFF") != "" {
		base, maxDelay, attempts = legacy.CrashLoopBackoffInitial, legacy.CrashLoopBackoffMax, 5
	}
	e := newITEnv(t, legacy.NewBackoff(base, maxDelay, nil),
		legacy.ContainerGCPolicy{MinAge: 0, MaxPerPodContainer: 2, MaxContainers: -1})

	e.apply("web", `
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: server
    image: busybox:1.37.0
    command: [sh, -c, 'mkdir -p /www && echo "$GREETING" > /www/index.html && touch /tmp/healthy && exec httpd -f -p 8080 -h /www']
    env: [{name: GREETING, value: hello}]
    ports: [{containerPort: 8080, hostPort: 18089}]
    livenessProbe:
      exec: {command: [test, -f, /tmp/healthy]}
      periodSeconds: 1
    readinessProbe:
      httpGet: {path: /, port: 8080}
      periodSeconds: 1
  - name: sidecar
    image: busybox:1.37.0
    command: [sleep, "3600"]
`)
	e.apply("crash", `
metadata: {name: crash}
spec:
  containers:
  - {name: crasher, image: busybox:1.37.0, command: [sh, -c, 'echo crashing; exit 3']}
`)
	e.apply("sick", `
metadata: {name: sick}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: app
    image: busybox:1.37.0
    command: [sh, -c, 'touch /tmp/ok; sleep 3; rm /tmp/ok; exec sleep 3600']
    livenessProbe:
      exec: {command: [test, -f, /tmp/ok]}
      periodSeconds: 1
      failureThreshold: 2
`)

	// The two-container pod serves on its host port.
	e.wait("web's containers", 90*time.Second, func() bool {
		return runningOf(e.containers("web", "server")) != nil && runningOf(e.containers("web", "sidecar")) != nil
	})
	fetch := func() string {
		resp, err := http.Get("http://127.0.0.1:18089/")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	e.wait("the host port to serve", 30*time.Second, func() bool { return fetch() == "hello" })
	e.wait("web ready", 30*time.Second, func() bool {
		rec, err := ReadRecord(e.state, "default", "web")
		return err == nil && rec.Ready["server"] && rec.Ready["sidecar"]
	})

	// Crash loop: measure the delay between each exit and the next start.
	e.wait(fmt.Sprintf("%d attempts of crasher", attempts), time.Duration(attempts)*maxDelay+60*time.Second, func() bool {
		cs := e.containers("crash", "crasher")
		return len(cs) > 0 && int(cs[len(cs)-1].Attempt) >= attempts-1 && !cs[len(cs)-1].StartedAt.IsZero()
	})
	// The GC keeps 2 dead containers per container name (it runs every second).
	e.wait("the GC bound", 10*time.Second, func() bool {
		dead := 0
		for _, c := range e.containers("crash", "crasher") {
			if c.State == legacy.ContainerStateExited {
				dead++
			}
		}
		return dead <= 2
	})

	// Liveness: the sick container is killed and restarted.
	e.wait("sick restarted after its liveness probe failed", 60*time.Second, func() bool {
		cs := e.containers("sick", "app")
		return len(cs) >= 2 && runningOf(cs) != nil && runningOf(cs).Attempt >= 1
	})
	sickEvents := e.events("sick")
	if !strings.Contains(sickEvents, "Liveness probe failed") || !strings.Contains(sickEvents, "failed liveness probe, will be restarted") {
		t.Errorf("sick's events:\n%s", sickEvents)
	}

	// Edit: the changed container is replaced, the other left alone.
	sidecar := runningOf(e.containers("web", "sidecar"))
	server := runningOf(e.containers("web", "server"))
	data, _ := os.ReadFile(filepath.Join(e.dir, "manifests", "web.yaml"))
	e.apply("web", strings.Replace(string(data), "value: hello", "value: edited", 1))
	e.wait("the edited container to serve", 60*time.Second, func() bool { return fetch() == "edited" })
	if s := runningOf(e.containers("web", "server")); s == nil || s.ID == server.ID || s.Attempt != server.Attempt+1 {
		t.Errorf("server not replaced: %+v", s)
	}
	if s := runningOf(e.containers("web", "sidecar")); s == nil || s.ID != sidecar.ID {
		t.Errorf("sidecar was touched: %+v", s)
	}
	webEvents := e.events("web")
	if !strings.Contains(webEvents, "Container server definition changed, will be restarted") {
		t.Errorf("web's events:\n%s", webEvents)
	}

	// The crash loop's delays, from the containers' own times (exit -> next start). Read them
	// before the GC removes the oldest: the record's Started events keep them all.
	rec, err := ReadRecord(e.state, "default", "crash")
	if err != nil {
		t.Fatal(err)
	}
	var starts []time.Time
	for _, ev := range rec.Events {
		if ev.Reason == legacy.StartedContainer {
			// Count events merge repeats only when consecutive; Started alternates with others.
			for i := 0; i < ev.Count; i++ {
				starts = append(starts, ev.FirstTime)
			}
		}
	}
	t.Logf("crash-looping container events:\n%s", e.events("crash"))
	if len(starts) < attempts {
		t.Fatalf("%d starts recorded, want %d", len(starts), attempts)
	}
	var gaps []time.Duration
	for i := 1; i < len(starts); i++ {
		gaps = append(gaps, starts[i].Sub(starts[i-1]).Round(10*time.Millisecond))
	}
	t.Logf("start-to-start intervals of the crash-looping container: %v (backoff %v doubling to %v; each also holds the container's short run and the sync latency)", gaps, base, maxDelay)
	// The first restart is at once; each next one waits the doubled delay (capped).
	want := time.Duration(0)
	for i, g := range gaps {
		if i == 1 {
			want = base
		} else if i > 1 {
			want = min(2*want, maxDelay)
		}
		if g < want || g > want+4*time.Second {
			t.Errorf("interval %d: %v, want %v (+ at most 4 s of run time and sync latency)", i, g, want)
		}
	}
	if !strings.Contains(e.events("crash"), "Back-off restarting failed container crasher") {
		t.Error("no BackOff event")
	}

	// Delete: the pod goes, with its record.
	os.Remove(filepath.Join(e.dir, "manifests", "crash.yaml"))
	e.wait("the crash pod removed", 30*time.Second, func() bool {
		list, _ := e.rt.ListPodSandbox(context.Background(), &legacy.SandboxFilter{Labels: map[string]string{"io.kubernetes.pod.name": "crash"}})
		return len(list) == 0
	})
	if _, err := ReadRecord(e.state, "default", "crash"); !os.IsNotExist(err) {
		t.Errorf("record of a removed pod: %v", err)
	}
	t.Logf("web's events:\n%s", webEvents)
	t.Logf("sick's events:\n%s", sickEvents)
}
