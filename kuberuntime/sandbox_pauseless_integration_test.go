//go:build integration

package kuberuntime

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	"golang.org/x/sys/unix"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pauseLessEnv is a test env whose runtime runs pods without a pause process.
func pauseLessEnv(t *testing.T) *env {
	return newEnvWith(t, "", func(o *Options) { o.PauseLessPods = true })
}

// kubeletPod is a pod as the kubelet makes it: a PID namespace per container.
func kubeletPod(name string) *runtime.PodSandboxConfig {
	cfg := podCfg(name)
	cfg.Linux = &runtime.LinuxPodSandboxConfig{SecurityContext: &runtime.LinuxSandboxSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}}
	return cfg
}

// kubeletCtr is a container as the kubelet makes it in such a pod.
func kubeletCtr(name string, cmd ...string) *runtime.ContainerConfig {
	cfg := ctrCfg(name, cmd...)
	cfg.Linux.SecurityContext = &runtime.LinuxContainerSecurityContext{
		NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_CONTAINER}}
	return cfg
}

// nsInode is the inode of a namespace file (a pin, or /proc/<pid>/ns/<type>).
func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Ino
}

// mountsOf lists the mount points of the mount table that name the sandbox.
func mountsOf(t *testing.T, id string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.Contains(f[4], id) {
			out = append(out, f[4])
		}
	}
	return out
}

// execOut runs cmd in the container and returns its stdout, failing on a non-zero exit.
func (e *env) execOut(t *testing.T, id string, cmd ...string) string {
	t.Helper()
	res, err := e.rt.ExecSync(context.Background(), id, cmd, 10*time.Second)
	if err != nil {
		t.Fatalf("exec %v in %s: %v", cmd, id, err)
	}
	if res.ExitCode != 0 {
		t.Fatalf("exec %v in %s: exit %d: %s", cmd, id, res.ExitCode, res.Stderr)
	}
	return strings.TrimSpace(string(res.Stdout))
}

func (e *env) pullBusybox() {
	e.t.Helper()
	if _, err := e.rt.images.PullImage(context.Background(), legacy.ImageSpec{Image: testBusybox}, nil, nil); err != nil {
		e.t.Fatalf("pull %s: %v", testBusybox, err)
	}
}

// A pod without a pause process: no sandbox task; its two containers share the pinned network,
// IPC and UTS namespaces, its hostname, sysctls and /dev/shm; its network stats come from the
// pinned netns; removing the first container (whose task started the pod's shim) keeps the second
// running and the namespaces pinned, and a third still starts; stop and remove leave nothing.
func TestPauseLessPod(t *testing.T) {
	e := pauseLessEnv(t)
	ctx := e.rt.withNS(context.Background())
	cfg := kubeletPod("pl")
	cfg.Hostname = "pl-host"
	cfg.LogDirectory = filepath.Join(e.dir, "logs", "pl")
	cfg.Linux.Sysctls = map[string]string{"kernel.shmmax": "12345678", "net.ipv4.ip_unprivileged_port_start": "81"}
	sb := e.run(cfg)
	if sb.Pid != 0 {
		t.Fatalf("sandbox pid %d, want none", sb.Pid)
	}
	c, err := e.client.LoadContainer(ctx, sb.ID)
	if err != nil {
		t.Fatalf("the sandbox's record: %v", err)
	}
	if _, err := c.Task(ctx, nil); !errdefs.IsNotFound(err) {
		t.Fatalf("sandbox task: %v, want NotFound", err)
	}
	files := sandbox.PodFiles(e.rt.SandboxRootDir(sb.ID), e.rt.SandboxStateDir(sb.ID), false)
	for _, p := range []string{sb.NetNSPath, files.IPCNS, files.UTSNS} {
		if !sandbox.Pinned(p) {
			t.Fatalf("%s not pinned", p)
		}
	}

	e.pullBusybox()
	a := e.createStart(sb.ID, kubeletCtr("a", "sleep", "600"))
	b := e.createStart(sb.ID, kubeletCtr("b", "sleep", "600"))
	// The first task started the pod's shim; the second reached it by its address.
	if e.reachedByAddress(a, sb.ID) || !e.reachedByAddress(b, sb.ID) {
		t.Errorf("tasks reached by the pod shim's address: first %v, second %v; want false, true",
			e.reachedByAddress(a, sb.ID), e.reachedByAddress(b, sb.ID))
	}
	if _, err := e.client.SandboxStore().Get(ctx, sb.ID); err != nil {
		t.Errorf("the pod shim's sandbox record: %v", err)
	}
	pids := map[string]uint32{}
	for _, id := range []string{a, b} {
		st, err := e.rt.ContainerStatus(ctx, id, false)
		if err != nil || st.Pid == 0 {
			t.Fatalf("container %s: %+v %v", id, st, err)
		}
		pids[id] = st.Pid
	}
	for typ, pin := range map[string]string{"net": sb.NetNSPath, "ipc": files.IPCNS, "uts": files.UTSNS} {
		want := nsInode(t, pin)
		for id, pid := range pids {
			if got := nsInode(t, filepath.Join("/proc", itoa(pid), "ns", typ)); got != want {
				t.Errorf("container %s: %s namespace %d, want the pinned %d", id, typ, got, want)
			}
		}
	}
	if nsInode(t, filepath.Join("/proc", itoa(pids[a]), "ns", "pid")) == nsInode(t, filepath.Join("/proc", itoa(pids[b]), "ns", "pid")) {
		t.Error("the containers share a PID namespace")
	}
	for _, id := range []string{a, b} {
		if h := e.execOut(t, id, "hostname"); h != "pl-host" {
			t.Errorf("container %s: hostname %q", id, h)
		}
		if v := e.execOut(t, id, "cat", "/proc/sys/kernel/shmmax"); v != "12345678" {
			t.Errorf("container %s: kernel.shmmax %q", id, v)
		}
		if v := e.execOut(t, id, "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"); v != "81" {
			t.Errorf("container %s: net.ipv4.ip_unprivileged_port_start %q", id, v)
		}
	}
	e.execOut(t, a, "sh", "-c", "echo shared > /dev/shm/x")
	if v := e.execOut(t, b, "cat", "/dev/shm/x"); v != "shared" {
		t.Errorf("/dev/shm across containers: %q", v)
	}
	if ps, err := e.rt.PodSandboxStats(ctx, sb.ID); err != nil || ps.Network == nil || ps.Network.Default == nil || ps.Network.Default.Name != "eth0" {
		t.Errorf("pod stats: %+v %v, want the netns's eth0", ps, err)
	}
	tasks, err := e.client.TaskService().List(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks.GetTasks()) != 2 {
		t.Errorf("%d tasks, want the two containers' only", len(tasks.GetTasks()))
	}

	// The first container, whose task started the pod's shim, crashes and is removed.
	if err := unix.Kill(int(pids[a]), unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitExited(e.rt, a)
	if err := e.rt.RemoveContainer(ctx, a); err != nil {
		t.Fatal(err)
	}
	if st, err := e.rt.ContainerStatus(ctx, b, false); err != nil || st.State != legacy.ContainerStateRunning {
		t.Fatalf("second container after the first's removal: %+v %v", st, err)
	}
	if h := e.execOut(t, b, "hostname"); h != "pl-host" {
		t.Errorf("second container after the first's removal: hostname %q", h)
	}
	for _, p := range []string{sb.NetNSPath, files.IPCNS, files.UTSNS} {
		if !sandbox.Pinned(p) {
			t.Fatalf("%s not pinned after the first container's removal", p)
		}
	}
	if st, _ := e.rt.PodSandboxStatus(ctx, sb.ID, false); st.State != legacy.SandboxStateReady {
		t.Fatalf("sandbox after the first container's removal: %+v", st)
	}
	c3 := e.createStart(sb.ID, kubeletCtr("c", "sleep", "600"))
	if v := e.execOut(t, c3, "cat", "/dev/shm/x"); v != "shared" {
		t.Errorf("third container: /dev/shm %q", v)
	}
	if shims := e.shimsOf(sb.ID, a, b, c3); len(shims) != 1 {
		t.Errorf("shims of the pod: %v, want one", shims)
	}
	if !e.reachedByAddress(c3, sb.ID) {
		t.Error("third container: its task did not reach the pod's shim by address")
	}

	if res := e.rt.StopPodSandbox(ctx, sb.ID); res.Error() != nil {
		t.Fatal(res.Error())
	}
	// containerd shuts no shim down for tasks that name their sandbox: the stop does.
	if !e.waitNoShim(sb.ID, a, b, c3) {
		t.Errorf("the pod's shim after the stop: %v", e.shimsOf(sb.ID, a, b, c3))
	}
	if _, err := e.client.SandboxStore().Get(ctx, sb.ID); !errdefs.IsNotFound(err) {
		t.Errorf("the pod shim's sandbox record after the stop: %v, want NotFound", err)
	}
	if st, _ := e.rt.PodSandboxStatus(ctx, sb.ID, false); st.State != legacy.SandboxStateNotReady {
		t.Fatalf("stopped sandbox: %+v", st)
	}
	for _, p := range []string{sb.NetNSPath, files.IPCNS, files.UTSNS} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after the stop: %v", p, err)
		}
	}
	if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	e.checkPodGone(sb.ID)
}

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// reachedByAddress tells whether containerd created container id's task in the shim of sandbox
// sb by that shim's address, without running the shim binary: only that path writes the bundle's
// "sandbox" file.
func (e *env) reachedByAddress(id, sb string) bool {
	b, err := os.ReadFile(filepath.Join(e.ctrdState, "io.containerd.runtime.v2.task", e.opts.Namespace, id, "sandbox"))
	return err == nil && string(b) == sb
}

// waitNoShim waits (bounded) for the shims of the ids to be gone and tells whether they are.
func (e *env) waitNoShim(ids ...string) bool {
	deadline := time.Now().Add(10 * time.Second)
	for len(e.shimsOf(ids...)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	return len(e.shimsOf(ids...)) == 0
}

// checkPodGone checks that nothing of the sandbox is left: record, dirs, netns, mounts, shim.
func (e *env) checkPodGone(id string) {
	t := e.t
	t.Helper()
	ctx := e.rt.withNS(context.Background())
	if _, err := e.client.LoadContainer(ctx, id); !errdefs.IsNotFound(err) {
		t.Errorf("sandbox record after removal: %v", err)
	}
	for _, p := range []string{e.rt.SandboxRootDir(id), e.rt.SandboxStateDir(id), e.rt.podNetNSPath(id)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
	if m := mountsOf(t, id); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(e.shimsOf(id)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if pids := e.shimsOf(id); len(pids) > 0 {
		t.Errorf("shim left: %v", pids)
	}
}

// A pod sharing a PID namespace keeps its pause process with the key on.
func TestPauseLessKeepsPauseForSharedPID(t *testing.T) {
	e := pauseLessEnv(t)
	ctx := e.rt.withNS(context.Background())
	cfg := podCfg("shared")
	cfg.Linux.SecurityContext = &runtime.LinuxSandboxSecurityContext{NamespaceOptions: &runtime.NamespaceOption{Pid: runtime.NamespaceMode_POD}}
	sb := e.run(cfg)
	if sb.Pid == 0 {
		t.Fatal("no pause process")
	}
	c, err := e.client.LoadContainer(ctx, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Task(ctx, nil); err != nil {
		t.Fatalf("pause task: %v", err)
	}
}

// A failed RunPodSandbox of a pause-less pod leaves nothing: refused sysctls before anything is
// made (InvalidArgument), a failed sysctl write after the namespaces are pinned.
func TestPauseLessRunFailureLeavesNothing(t *testing.T) {
	e := pauseLessEnv(t)
	ctx := context.Background()
	cfg := kubeletPod("bad")
	cfg.Linux.Sysctls = map[string]string{"kernel.pid_max": "1000"}
	if _, res := e.rt.RunPodSandbox(ctx, cfg, ""); !errdefs.IsInvalidArgument(res.Error()) {
		t.Fatalf("not namespaced sysctl: %v, want InvalidArgument", res.Error())
	}
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.ip_forward": "not a number"}
	if _, res := e.rt.RunPodSandbox(ctx, cfg, ""); res.Error() == nil {
		t.Fatal("a sysctl write that fails did not fail the pod")
	}
	list, _ := e.rt.ListPodSandbox(ctx, nil)
	if len(list) != 0 {
		t.Fatalf("sandboxes listed: %+v", list)
	}
	for _, dir := range []string{e.rt.sandboxesRoot(), e.rt.sandboxesState(), e.rt.netnsDir()} {
		if ents, _ := os.ReadDir(dir); len(ents) > 0 {
			t.Errorf("%s holds %d entries", dir, len(ents))
		}
	}
	if m := mountsOf(t, e.dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	cs, _ := e.client.Containers(e.rt.withNS(ctx))
	if len(cs) != 0 {
		t.Errorf("%d containerd containers left", len(cs))
	}
	// The name is free again.
	cfg.Linux.Sysctls = nil
	e.run(cfg)
}

// A pause-less pod survives a restart of the daemon: Ready with its container, a stopped one
// NotReady; its containers are created and the pod removed as before the restart.
func TestPauseLessPodSurvivesRestart(t *testing.T) {
	e := pauseLessEnv(t)
	ctx := context.Background()
	keep := e.run(kubeletPod("keep"))
	stopped := e.run(kubeletPod("stopped"))
	e.pullBusybox()
	a := e.createStart(keep.ID, kubeletCtr("a", "sleep", "600"))
	if err := e.rt.StopPodSandbox(ctx, stopped.ID).Error(); err != nil {
		t.Fatal(err)
	}
	e.rt.Close()
	rt2 := e.newRuntime()
	e.rt = rt2
	st, err := rt2.PodSandboxStatus(ctx, keep.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != legacy.SandboxStateReady || st.IP != keep.IP || st.NetNSPath != keep.NetNSPath {
		t.Fatalf("after restart: %+v, before %+v", st, keep)
	}
	if st, _ := rt2.PodSandboxStatus(ctx, stopped.ID, false); st == nil || st.State != legacy.SandboxStateNotReady {
		t.Fatalf("stopped sandbox after restart: %+v", st)
	}
	b := e.createStart(keep.ID, kubeletCtr("b", "sleep", "600"))
	if e.execOut(t, a, "hostname") != e.execOut(t, b, "hostname") {
		t.Error("containers before and after the restart in different UTS namespaces")
	}
	if !e.reachedByAddress(b, keep.ID) {
		t.Error("container started after the restart: its task did not reach the pod's shim by address")
	}
	for _, id := range []string{keep.ID, stopped.ID} {
		if err := rt2.RemovePodSandbox(ctx, id); err != nil {
			t.Fatal(err)
		}
		e.checkPodGone(id)
	}
}

// The pod's shim outlives its last task: a container started right after (a kubelet replacing the
// pod's only container) reaches it by its address, however close it comes after the exit.
func TestPauseLessContainerReplacedAtOnce(t *testing.T) {
	e := pauseLessEnv(t)
	ctx := context.Background()
	sb := e.run(kubeletPod("again"))
	e.pullBusybox()
	cfg := kubeletCtr("only", "sh", "-c", "exit 0")
	for i := 0; i < 10; i++ {
		id := e.createStart(sb.ID, cfg)
		if i > 0 && !e.reachedByAddress(id, sb.ID) {
			t.Errorf("container %d: its task did not reach the pod's shim by address", i)
		}
		e.waitExited(e.rt, id)
		if err := e.rt.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	e.checkPodGone(sb.ID)
}

// A pod whose shim was killed: the next container starts a new shim (the record of the old one is
// dropped), and the one after reaches that new shim by its address.
func TestPauseLessPodShimKilled(t *testing.T) {
	e := pauseLessEnv(t)
	ctx := context.Background()
	sb := e.run(kubeletPod("shimkill"))
	e.pullBusybox()
	a := e.createStart(sb.ID, kubeletCtr("a", "sleep", "600"))
	shims := e.shimsOf(sb.ID, a)
	if len(shims) != 1 {
		t.Fatalf("shims of the pod: %v, want one", shims)
	}
	pid, _ := strconv.Atoi(shims[0])
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// containerd learns of the shim's death and the container's exit (its "shim delete" kills
	// the container's process).
	e.waitExited(e.rt, a)
	b := e.createStart(sb.ID, kubeletCtr("b", "sleep", "600"))
	if e.reachedByAddress(b, sb.ID) {
		t.Error("the container after the kill was sent to the dead shim's address")
	}
	c := e.createStart(sb.ID, kubeletCtr("c", "sleep", "600"))
	if !e.reachedByAddress(c, sb.ID) {
		t.Error("the container after that: its task did not reach the new shim by address")
	}
	if got := e.execOut(t, c, "echo", "ok"); got != "ok" {
		t.Errorf("exec in the last container: %q", got)
	}
	if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	e.checkPodGone(sb.ID)
}

// A pause-less pod on the host's network and IPC: its containers are in the host's network, UTS
// and IPC namespaces, and nothing of those is pinned.
func TestPauseLessHostNetwork(t *testing.T) {
	e := pauseLessEnv(t)
	ctx := context.Background()
	cfg := kubeletPod("hostnet")
	cfg.Linux.SecurityContext.NamespaceOptions.Network = runtime.NamespaceMode_NODE
	cfg.Linux.SecurityContext.NamespaceOptions.Ipc = runtime.NamespaceMode_NODE
	sb := e.run(cfg)
	if sb.Pid != 0 || sb.NetNSPath != "" {
		t.Fatalf("status %+v", sb)
	}
	e.pullBusybox()
	id := e.createStart(sb.ID, kubeletCtr("c", "sleep", "600"))
	st, err := e.rt.ContainerStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"net", "ipc", "uts"} {
		if own, ctr := nsInode(t, "/proc/self/ns/"+ns), nsInode(t, filepath.Join("/proc", itoa(st.Pid), "ns", ns)); own != ctr {
			t.Errorf("%s namespace %d, want the host's %d", ns, ctr, own)
		}
	}
	if m := mountsOf(t, sb.ID); len(m) > 0 {
		t.Errorf("mounts of a host-namespaces pod: %v", m)
	}
}

// A pause-less pod with a user namespace: its IPC and UTS namespaces are made in it, its
// containers join the pinned user namespace, and its hostname is set.
func TestPauseLessUserNamespacePod(t *testing.T) {
	e := pauseLessEnv(t)
	ctx := context.Background()
	if f := e.rt.HandlerFeatures(ctx, ""); !f.UserNamespaces {
		t.Fatalf("the default handler does not advertise user namespaces; run hack/setup.sh: %+v", f)
	}
	mapping := []*runtime.IDMapping{{ContainerId: 0, HostId: 300000, Length: 65536}}
	userns := &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD, Uids: mapping, Gids: mapping}
	cfg := kubeletPod("userns")
	cfg.Hostname = "userns-host"
	cfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
	cfg.Linux.Sysctls = map[string]string{"net.ipv4.ping_group_range": "0 0"}
	sb := e.run(cfg)
	if sb.Pid != 0 {
		t.Fatalf("sandbox pid %d, want none", sb.Pid)
	}
	e.pullBusybox()
	ctr := kubeletCtr("c", "sleep", "600")
	ctr.Linux.SecurityContext.NamespaceOptions.UsernsOptions = userns
	id := e.createStart(sb.ID, ctr)
	st, err := e.rt.ContainerStatus(ctx, id, false)
	if err != nil {
		t.Fatal(err)
	}
	files := sandbox.PodFiles(e.rt.SandboxRootDir(sb.ID), e.rt.SandboxStateDir(sb.ID), false)
	for typ, pin := range map[string]string{"user": files.Userns, "net": sb.NetNSPath, "ipc": files.IPCNS, "uts": files.UTSNS} {
		if got, want := nsInode(t, filepath.Join("/proc", itoa(st.Pid), "ns", typ)), nsInode(t, pin); got != want {
			t.Errorf("%s namespace %d, want the pinned %d", typ, got, want)
		}
	}
	if h := e.execOut(t, id, "hostname"); h != "userns-host" {
		t.Errorf("hostname %q", h)
	}
	if v := e.execOut(t, id, "cat", "/proc/sys/net/ipv4/ping_group_range"); strings.Join(strings.Fields(v), " ") != "0 0" {
		t.Errorf("ping_group_range %q", v)
	}
	if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	e.checkPodGone(sb.ID)
}
