//go:build integration

package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/nri/pkg/api"
	"github.com/containerd/nri/pkg/stub"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// testPlugin is an NRI plugin (through NRI's stub) that records the events it gets in order.
type testPlugin struct {
	mu     sync.Mutex
	events []string // "<Event> <pod id> <container id> <container name>"
	synced []string // container IDs of its Synchronize
	// syncHold, when set, is waited for inside Synchronize (after syncReached is closed).
	syncHold    chan struct{}
	syncReached chan struct{}
	syncDone    chan struct{}
	// reject makes CreateContainer of a container with that name fail once.
	reject string
	// adjust makes CreateContainer set an env var and an annotation (one plugin only: NRI refuses
	// two plugins setting the same one).
	adjust bool
	// mountSrc, with adjust, is bind-mounted read-only at /nri-mnt.
	mountSrc string
	// cdiDevices are the CDI devices CreateContainer adds, by container name.
	cdiDevices map[string]string
	name       string
	// runPodLinux is the Linux part of each pod of RunPodSandbox, by pod ID.
	runPodLinux map[string]*api.LinuxPodSandbox
}

func newTestPlugin() *testPlugin {
	return &testPlugin{syncReached: make(chan struct{}), syncDone: make(chan struct{})}
}

func (p *testPlugin) record(ev string, pod *api.PodSandbox, ctr *api.Container) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line := ev + " " + pod.GetId()
	if ctr != nil {
		line += " " + ctr.GetId() + " " + ctr.GetName()
	}
	p.events = append(p.events, line)
}

// eventsOf returns the event names that concern the pod id, in order.
func (p *testPlugin) eventsOf(podID string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.events {
		f := strings.Fields(e)
		if f[1] == podID {
			out = append(out, f[0])
		}
	}
	return out
}

func (p *testPlugin) createdIDs() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for _, e := range p.events {
		if f := strings.Fields(e); f[0] == "CreateContainer" {
			out[f[2]]++
		}
	}
	return out
}

func (p *testPlugin) Synchronize(_ context.Context, _ []*api.PodSandbox, ctrs []*api.Container) ([]*api.ContainerUpdate, error) {
	p.mu.Lock()
	for _, c := range ctrs {
		p.synced = append(p.synced, c.GetId())
	}
	p.mu.Unlock()
	close(p.syncReached)
	if p.syncHold != nil {
		<-p.syncHold
	}
	close(p.syncDone)
	return nil, nil
}

func (p *testPlugin) RunPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RunPodSandbox", pod, nil)
	p.mu.Lock()
	if p.runPodLinux == nil {
		p.runPodLinux = map[string]*api.LinuxPodSandbox{}
	}
	p.runPodLinux[pod.GetId()] = pod.GetLinux()
	p.mu.Unlock()
	return nil
}

func (p *testPlugin) StopPodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("StopPodSandbox", pod, nil)
	return nil
}

func (p *testPlugin) RemovePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("RemovePodSandbox", pod, nil)
	return nil
}

func (p *testPlugin) CreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) (*api.ContainerAdjustment, []*api.ContainerUpdate, error) {
	p.record("CreateContainer", pod, ctr)
	p.mu.Lock()
	reject := p.reject != "" && p.reject == ctr.GetName()
	if reject {
		p.reject = ""
	}
	p.mu.Unlock()
	if reject {
		return nil, nil, errors.New("rejected by the test plugin")
	}
	p.mu.Lock()
	cdiDevice := p.cdiDevices[ctr.GetName()]
	p.mu.Unlock()
	if cdiDevice != "" {
		adj := &api.ContainerAdjustment{}
		adj.AddCDIDevice(&api.CDIDevice{Name: cdiDevice})
		return adj, nil, nil
	}
	if !p.adjust {
		return nil, nil, nil
	}
	adj := &api.ContainerAdjustment{}
	adj.AddEnv("NRI_INJECTED", "from-plugin-"+ctr.GetName())
	adj.AddAnnotation("nri.test/adjusted", "yes")
	if p.mountSrc != "" {
		adj.AddMount(&api.Mount{Source: p.mountSrc, Destination: "/nri-mnt", Type: "bind", Options: []string{"rbind", "ro"}})
	}
	return adj, nil, nil
}

func (p *testPlugin) UpdatePodSandbox(_ context.Context, pod *api.PodSandbox, _, _ *api.LinuxResources) error {
	p.record("UpdatePodSandbox", pod, nil)
	return nil
}

func (p *testPlugin) PostUpdatePodSandbox(_ context.Context, pod *api.PodSandbox) error {
	p.record("PostUpdatePodSandbox", pod, nil)
	return nil
}

func (p *testPlugin) PostCreateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("PostCreateContainer", pod, ctr)
	return nil
}

func (p *testPlugin) StartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("StartContainer", pod, ctr)
	return nil
}

func (p *testPlugin) PostStartContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("PostStartContainer", pod, ctr)
	return nil
}

func (p *testPlugin) UpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container, _ *api.LinuxResources) ([]*api.ContainerUpdate, error) {
	p.record("UpdateContainer", pod, ctr)
	// The plugin overrides the CPU shares asked for.
	u := &api.ContainerUpdate{ContainerId: ctr.GetId()}
	u.SetLinuxCPUShares(512)
	return []*api.ContainerUpdate{u}, nil
}

func (p *testPlugin) PostUpdateContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("PostUpdateContainer", pod, ctr)
	return nil
}

func (p *testPlugin) StopContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) ([]*api.ContainerUpdate, error) {
	p.record("StopContainer", pod, ctr)
	return nil, nil
}

func (p *testPlugin) RemoveContainer(_ context.Context, pod *api.PodSandbox, ctr *api.Container) error {
	p.record("RemoveContainer", pod, ctr)
	return nil
}

// startNRI starts NRI on a socket in the test's dir.
func (e *env) startNRI() string {
	e.t.Helper()
	sock := filepath.Join(e.dir, "nri", "nri.sock")
	if err := e.rt.StartNRI(NRIOptions{SocketPath: sock, RequestTimeout: 20 * time.Second}); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(e.rt.StopNRI)
	return sock
}

// connect connects p as plugin idx-name; it returns once the plugin registered (its Synchronize
// may still run).
func (e *env) connect(p *testPlugin, sock, name, idx string) {
	e.t.Helper()
	s, err := stub.New(p, stub.WithPluginName(name), stub.WithPluginIdx(idx), stub.WithSocketPath(sock))
	if err != nil {
		e.t.Fatal(err)
	}
	p.name = idx + "-" + name
	if err := s.Start(context.Background()); err != nil {
		e.t.Fatalf("plugin %s: %v", name, err)
	}
	e.t.Cleanup(s.Stop)
}

func waitCh(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNRILifecycle: a plugin gets the pod and container events in order, its adjustment (an env
// var) is visible in the container, it may override a resource update, and a plugin's error fails
// CreateContainer without leaking anything.
func TestNRILifecycle(t *testing.T) {
	e := newEnv(t, "")
	sock := e.startNRI()
	p := newTestPlugin()
	p.adjust = true
	p.mountSrc = filepath.Join(e.dir, "nri-mount")
	if err := os.MkdirAll(p.mountSrc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.mountSrc, "hello"), []byte("mounted by NRI\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.connect(p, sock, "lifecycle", "10")
	waitCh(t, p.syncDone, "Synchronize")
	ctx := context.Background()

	sb, _ := e.podWithLogs("nri-life")
	id := e.createStart(sb.ID, ctrCfg("web", "sleep", "3600"))

	t.Run("pod's namespaces and cgroup told at RunPodSandbox", func(t *testing.T) {
		p.mu.Lock()
		linux := p.runPodLinux[sb.ID]
		p.mu.Unlock()
		if linux.GetCgroupsPath() == "" {
			t.Fatalf("no cgroups path in %v", linux)
		}
		var netns string
		for _, ns := range linux.GetNamespaces() {
			if ns.GetType() == "network" {
				netns = ns.GetPath()
			}
		}
		if netns == "" || netns != sb.NetNSPath {
			t.Fatalf("network namespace told %q, want %q (%v)", netns, sb.NetNSPath, linux.GetNamespaces())
		}
	})

	t.Run("env adjusted by the plugin", func(t *testing.T) {
		res, err := e.rt.ExecSync(ctx, id, []string{"sh", "-c", "echo $NRI_INJECTED"}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(res.Stdout)); got != "from-plugin-web" {
			t.Fatalf("NRI_INJECTED in the container = %q, want from-plugin-web", got)
		}
	})

	t.Run("mount added by the plugin", func(t *testing.T) {
		res, err := e.rt.ExecSync(ctx, id, []string{"cat", "/nri-mnt/hello"}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(res.Stdout)); got != "mounted by NRI" {
			t.Fatalf("/nri-mnt/hello = %q (stderr %q)", got, res.Stderr)
		}
	})

	t.Run("pod update announced", func(t *testing.T) {
		if err := e.rt.UpdatePodSandboxResources(ctx, sb.ID, nil, &runtime.LinuxContainerResources{CpuShares: 1024}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("update overridden by the plugin", func(t *testing.T) {
		if err := e.rt.UpdateContainerResources(ctx, id, &runtime.LinuxContainerResources{CpuShares: 256}); err != nil {
			t.Fatal(err)
		}
		st, err := e.rt.ContainerStatus(ctx, id, false)
		if err != nil {
			t.Fatal(err)
		}
		if st.Resources.GetCpuShares() != 512 {
			t.Fatalf("cpu shares after update = %d, want the plugin's 512", st.Resources.GetCpuShares())
		}
	})

	t.Run("rejected create leaks nothing and may be retried", func(t *testing.T) {
		p.mu.Lock()
		p.reject = "rejected"
		p.mu.Unlock()
		if _, err := e.rt.CreateContainer(ctx, sb.ID, ctrCfg("rejected", "sleep", "3600")); err == nil || !strings.Contains(err.Error(), "rejected by the test plugin") {
			t.Fatalf("create with a rejecting plugin: err = %v", err)
		}
		list, err := e.rt.ListContainers(ctx, &legacy.ContainerFilter{SandboxID: sb.ID})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			if c.Config.GetMetadata().GetName() == "rejected" {
				t.Fatalf("rejected container %s is listed", c.ID.ID)
			}
		}
		cs, err := e.client.Containers(e.rt.withNS(ctx), fmt.Sprintf(`labels.%q==%q`, LabelContainerName, "rejected"))
		if err != nil || len(cs) != 0 {
			t.Fatalf("containerd containers of the rejected one: %d (%v)", len(cs), err)
		}
		rid, err := e.rt.CreateContainer(ctx, sb.ID, ctrCfg("rejected", "sleep", "3600"))
		if err != nil {
			t.Fatalf("retry: %v", err)
		}
		if err := e.rt.RemoveContainer(ctx, rid); err != nil {
			t.Fatal(err)
		}
	})

	// A container that exits by itself gets its StopContainer without a CRI call.
	short := e.createStart(sb.ID, ctrCfg("short", "sh", "-c", "exit 3"))
	e.waitExited(e.rt, short)
	waitFor(t, "StopContainer of the exited container", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, ev := range p.events {
			if strings.HasPrefix(ev, "StopContainer ") && strings.Contains(ev, short) {
				return true
			}
		}
		return false
	})
	if err := e.rt.RemoveContainer(ctx, short); err != nil {
		t.Fatal(err)
	}

	if err := e.rt.StopContainer(ctx, id, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ { // the second stop is a no-op, without an event
		if res := e.rt.StopPodSandbox(ctx, sb.ID); res.Error() != nil {
			t.Fatal(res.Error())
		}
	}
	if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"RunPodSandbox",
		"CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer", // web
		"UpdatePodSandbox", "PostUpdatePodSandbox",
		"UpdateContainer", "PostUpdateContainer",
		"CreateContainer", "StopContainer", "RemoveContainer", // rejected, undone
		"CreateContainer", "PostCreateContainer", "StopContainer", "RemoveContainer", // retried
		"CreateContainer", "PostCreateContainer", "StartContainer", "PostStartContainer", "StopContainer", "RemoveContainer", // short
		"StopContainer", "RemoveContainer", // web
		"StopPodSandbox", "RemovePodSandbox",
	}
	waitFor(t, "RemovePodSandbox", func() bool { return len(p.eventsOf(sb.ID)) >= len(want) })
	if got := p.eventsOf(sb.ID); !slices.Equal(got, want) {
		t.Fatalf("events:\n got %v\nwant %v", got, want)
	}
	t.Log("events checked")
	// Metadata: the container events name the container.
	p.mu.Lock()
	for _, ev := range p.events {
		if f := strings.Fields(ev); len(f) == 4 && f[2] == id && f[3] != "web" {
			t.Errorf("event %q: container name is not web", ev)
		}
	}
	p.mu.Unlock()
}

// TestNRILateJoinLosesNoContainer: a plugin that joins while containers are being created learns
// of every one of them exactly once, in its Synchronize or by CreateContainer.
func TestNRILateJoinLosesNoContainer(t *testing.T) {
	e := newEnv(t, "")
	sock := e.startNRI()
	sb, _ := e.podWithLogs("nri-sync")
	ctx := context.Background()
	var mu sync.Mutex
	var all []string
	create := func(name string) {
		id, err := e.rt.CreateContainer(ctx, sb.ID, ctrCfg(name, "sleep", "3600"))
		if err != nil {
			t.Errorf("create %s: %v", name, err)
			return
		}
		mu.Lock()
		all = append(all, id)
		mu.Unlock()
	}
	for i := range 2 {
		create(fmt.Sprintf("before-%d", i))
	}

	// A plugin whose Synchronize is held open while containers are created.
	late := newTestPlugin()
	late.syncHold = make(chan struct{})
	e.connect(late, sock, "late", "20")
	waitCh(t, late.syncReached, "the late plugin's Synchronize")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { create(fmt.Sprintf("during-%d", i)) })
	}
	time.Sleep(time.Second)
	close(late.syncHold)
	waitCh(t, late.syncDone, "the late plugin's Synchronize to end")
	wg.Wait()

	// Plugins joining one after another while containers are created without pause.
	var joiners []*testPlugin
	stop := make(chan struct{})
	var cwg sync.WaitGroup
	for g := range 3 {
		cwg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				create(fmt.Sprintf("race-%d-%d", g, i))
			}
		})
	}
	for j := range 3 {
		time.Sleep(300 * time.Millisecond)
		jp := newTestPlugin()
		e.connect(jp, sock, fmt.Sprintf("joiner%d", j), fmt.Sprintf("3%d", j))
		waitCh(t, jp.syncDone, "a joiner's Synchronize")
		joiners = append(joiners, jp)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	cwg.Wait()
	for i := range 2 {
		create(fmt.Sprintf("after-%d", i))
	}
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d containers created", len(all))

	for _, p := range append([]*testPlugin{late}, joiners...) {
		p.mu.Lock()
		synced := slices.Clone(p.synced)
		p.mu.Unlock()
		created := p.createdIDs()
		for _, id := range all {
			n := created[id]
			if slices.Contains(synced, id) {
				n++
			}
			if n != 1 {
				t.Errorf("plugin %s learned of container %s %d times (want once, by Synchronize or CreateContainer)", p.name, id, n)
			}
		}
	}
}

// TestNRIPreinstalledPlugin: a plugin in the plugin dir is launched at start with its config from
// the config dir, and adjusts containers; no socket is served then.
func TestNRIPreinstalledPlugin(t *testing.T) {
	e := newEnv(t, "")
	pluginDir, confDir := filepath.Join(e.dir, "plugins"), filepath.Join(e.dir, "conf.d")
	for _, d := range []string{pluginDir, confDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	build := exec.Command(filepath.Join(goruntime.GOROOT(), "bin", "go"), "build", "-o", filepath.Join(pluginDir, "05-envplug"), "./testdata/nriplugin")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the test plugin: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(confDir, "05-envplug.conf"), []byte("configured-value\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.rt.StartNRI(NRIOptions{PluginPath: pluginDir, PluginConfigPath: confDir}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.rt.StopNRI)
	sb, _ := e.podWithLogs("nri-pre")
	id := e.createStart(sb.ID, ctrCfg("pre", "sleep", "3600"))
	res, err := e.rt.ExecSync(context.Background(), id, []string{"sh", "-c", "echo $PREINSTALLED"}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(res.Stdout)); got != "configured-value" {
		t.Fatalf("PREINSTALLED in the container = %q, want configured-value", got)
	}
}
