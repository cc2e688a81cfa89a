//go:build integration

package reliability

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	tasks "github.com/containerd/containerd/api/services/tasks/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/cri-shim/cri-shim/internal/testutil"
	"github.com/cri-shim/cri-shim/test/critest/testregistry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	busybox = "registry.k8s.io/e2e-test-images/busybox:1.29-2"
	ctrdNS  = "cri-shim" // the daemon's default containerd namespace
)

// env is one daemon's dirs (root, state, logs, CNI config with its own bridge and IPAM dir, a
// cgroup parent of its own), the local registry, and the daemon process started on them; the
// daemon can be killed and started again on the same dirs.
type env struct {
	t, root                  *testing.T
	dir, bin, socket, cgroup string
	metrics                  string
	args                     []string

	mu  sync.Mutex
	cmd *exec.Cmd
	log *os.File
	rt  runtime.RuntimeServiceClient
	img runtime.ImageServiceClient
	// conn is the connection of rt and img, to the daemon started last.
	conn *grpc.ClientConn
}

// newEnv builds the daemon, starts the registry and writes the CNI config. name must be unique
// among the tests running on the host (it names the bridge and the cgroup parent).
func newEnv(t *testing.T, name, subnet string) *env {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the reliability tests need root (netns, mounts, cgroups)")
	}
	ctx := context.Background()
	reg, err := testregistry.Start(ctx, testregistry.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	dir, err := os.MkdirTemp("/tmp", "crishim-rel-")
	if err != nil {
		t.Fatal(err)
	}
	// A cgroup parent of this run's own, so that what an earlier run leaked does not count.
	e := &env{t: t, root: t, dir: dir, socket: filepath.Join(dir, "cri.sock"), cgroup: "/crishim-rel-" + name + "-" + filepath.Base(dir)[len("crishim-rel-"):]}
	t.Cleanup(func() {
		if t.Failed() {
			// Keep the logs for a look after the test.
			keep := "/tmp/crishim-rel-" + name + "-failed"
			os.RemoveAll(keep)
			os.MkdirAll(keep, 0o755)
			exec.Command("cp", filepath.Join(dir, "daemon.log"), filepath.Join(dir, "root", "containerd.log"), keep).Run()
			t.Logf("daemon and containerd logs kept in %s", keep)
		}
		// Shims of pods a failed test left running (the daemon's stop leaves them, by design).
		for _, pid := range e.shimPids() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		testutil.UnmountAll(dir)
		os.RemoveAll(dir)
		// The test has counted them: remove the (empty) cgroups left, deepest first, then the parent.
		children := e.cgroupChildren()
		for i := len(children) - 1; i >= 0; i-- {
			os.Remove(children[i])
		}
		for _, d := range e.cgroupDirs() {
			os.Remove(d)
		}
	})
	hosts := filepath.Join(dir, "certs.d")
	if err := reg.WriteHostsDir(hosts); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "net.d")
	os.MkdirAll(conf, 0o755)
	bridge := "crel" + name
	if len(bridge) > 15 {
		t.Fatalf("bridge name %q too long", bridge)
	}
	os.WriteFile(filepath.Join(conf, "10-rel.conflist"), []byte(`{"cniVersion":"1.0.0","name":"rel-`+name+`","plugins":[{"type":"bridge","bridge":"`+bridge+`","isGateway":true,"ipMasq":false,"ipam":{"type":"host-local","ranges":[[{"subnet":"`+subnet+`"}]],"dataDir":"`+filepath.Join(dir, "ipam")+`"}},{"type":"portmap","capabilities":{"portMappings":true}}]}`), 0o644)
	t.Cleanup(func() { exec.Command("ip", "link", "delete", bridge).Run() })

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.metrics = lis.Addr().String()
	lis.Close()
	e.args = []string{"--managed-containerd", "--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"),
		"--socket", e.socket, "--log-level", "debug", "--metrics-address", e.metrics,
		"--registry-config-path", hosts, "--cni-conf-dir", conf}

	e.bin = filepath.Join(dir, "cri-shim")
	build := exec.Command("go", "build", "-o", e.bin, "./cmd/cri-shim")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	lf, err := os.Create(filepath.Join(dir, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	e.log = lf
	t.Cleanup(func() {
		e.stop()
		if t.Failed() {
			b, _ := os.ReadFile(lf.Name())
			lines := strings.Split(string(b), "\n")
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			t.Logf("daemon log (tail):\n%s", strings.Join(lines, "\n"))
		}
		lf.Close()
	})
	return e
}

// start starts the daemon and waits until it answers.
func (e *env) start() {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(e.log, "=== start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(e.bin, e.args...)
	cmd.Stdout, cmd.Stderr = e.log, e.log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.cmd = cmd
	conn, err := grpc.NewClient("unix://"+e.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.root.Cleanup(func() { conn.Close() })
	// The connection to a killed daemon is closed: a call still made on it would otherwise
	// reconnect it to the new daemon and keep it open there, which the leak census would count
	// as the daemon's goroutines.
	if e.conn != nil {
		e.conn.Close()
	}
	e.conn = conn
	e.rt, e.img = runtime.NewRuntimeServiceClient(conn), runtime.NewImageServiceClient(conn)
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := e.rt.Version(ctx, &runtime.VersionRequest{})
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("daemon not answering after 90s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill sends SIGKILL to the daemon (not to its managed containerd, which runs on) and reaps it.
func (e *env) kill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return
	}
	fmt.Fprintf(e.log, "=== SIGKILL %s\n", time.Now().Format(time.RFC3339Nano))
	e.cmd.Process.Signal(syscall.SIGKILL)
	e.cmd.Wait()
	e.cmd = nil
}

// stop stops the daemon with SIGTERM (it stops its managed containerd).
func (e *env) stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { e.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		e.cmd.Process.Kill()
		<-done
	}
	e.cmd = nil
	// A managed containerd outliving a SIGKILLed daemon generation is stopped here too.
	for _, pid := range e.containerdPids() {
		syscall.Kill(pid, syscall.SIGTERM)
	}
}

// client is the CRI runtime client of the daemon started last.
func (e *env) client() runtime.RuntimeServiceClient {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.rt
}

func (e *env) pid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return 0
	}
	return e.cmd.Process.Pid
}

func (e *env) containerdAddress() string {
	return filepath.Join(e.dir, "state", "containerd", "containerd.sock")
}

// containerdPids are the managed containerd processes serving on this env's state dir.
func (e *env) containerdPids() []int {
	return pgrep("containerd --config " + filepath.Join(e.dir, "state", "containerd"))
}

// shimPids are the runc shims of this env's containerd.
func (e *env) shimPids() []int {
	return pgrep("containerd-shim-runc-v2 -namespace " + ctrdNS + " .*-address " + e.containerdAddress())
}

func pgrep(pattern string) []int {
	out, _ := exec.Command("pgrep", "-f", pattern).Output()
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (e *env) pull(ctx context.Context, image string) {
	e.t.Helper()
	e.mu.Lock()
	img := e.img
	e.mu.Unlock()
	if _, err := img.PullImage(ctx, &runtime.PullImageRequest{Image: &runtime.ImageSpec{Image: image}}); err != nil {
		e.t.Fatalf("pull %s: %v", image, err)
	}
}

// counts is one census of everything a pod or container can leak.
type counts struct {
	Goroutines, FDs, LogFDs                  int
	NetNSFiles, NetNSMounts, Mounts, Cgroups int
	Containers, Tasks, Leases, Snapshots     int
	Shims, IPAllocations                     int
	SandboxDirs, ContainerDirs               int
	// SharedPause counts the shared pause rootfs's mount, snapshot and lease (one each per pause
	// image; kuberuntime/pause_rootfs.go), kept apart from the per-pod counts.
	SharedPause int

	cgroupIDs []string // the distinct cgroup names below the parent, for the leak report
	// cgroupDetails: each cgroup's path and the processes in it, for the leak report.
	cgroupDetails []string
}

func (c counts) String() string {
	return fmt.Sprintf("goroutines=%d fds=%d log-fds=%d netns-files=%d netns-mounts=%d mounts=%d cgroups=%d "+
		"ctrd-containers=%d ctrd-tasks=%d ctrd-leases=%d ctrd-snapshots=%d shims=%d ip-allocations=%d sandbox-dirs=%d container-dirs=%d shared-pause=%d",
		c.Goroutines, c.FDs, c.LogFDs, c.NetNSFiles, c.NetNSMounts, c.Mounts, c.Cgroups,
		c.Containers, c.Tasks, c.Leases, c.Snapshots, c.Shims, c.IPAllocations, c.SandboxDirs, c.ContainerDirs, c.SharedPause)
}

// census counts what the daemon holds (goroutines from its own Prometheus go_goroutines, open
// fds), what is left on the host under the env's dirs (netns pins, mounts, cgroups under its
// cgroup parent, IPAM allocations, per-object dirs) and what is left in containerd (containers,
// tasks, leases, snapshots in the daemon's namespace, shim processes).
func (e *env) census(ctx context.Context) counts {
	e.t.Helper()
	var c counts
	c.Goroutines = e.goroutines()
	pid := e.pid()
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		c.FDs = len(ents)
		for _, ent := range ents {
			if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, ent.Name())); err == nil && strings.HasPrefix(l, filepath.Join(e.dir, "logs")+"/") {
				c.LogFDs++
			}
		}
	}
	c.NetNSFiles = countEntries(filepath.Join(e.dir, "state", "netns"))
	c.SandboxDirs = countEntries(filepath.Join(e.dir, "root", "sandboxes")) + countEntries(filepath.Join(e.dir, "state", "sandboxes"))
	c.ContainerDirs = countEntries(filepath.Join(e.dir, "root", "containers")) + countEntries(filepath.Join(e.dir, "state", "containers"))
	c.IPAllocations = ipAllocations(filepath.Join(e.dir, "ipam"))
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) < 5 {
				continue
			}
			mp := fields[4]
			if strings.HasPrefix(mp, filepath.Join(e.dir, "state", "pause-rootfs")+"/") {
				// The pause image's rootfs, shared by all pods (kuberuntime/pause_rootfs.go): one per
				// image, not per pod.
				c.SharedPause++
				continue
			}
			if strings.HasPrefix(mp, e.dir+"/") {
				c.Mounts++
				if strings.HasPrefix(mp, filepath.Join(e.dir, "state", "netns")+"/") {
					c.NetNSMounts++
				}
			}
		}
		f.Close()
	}
	cgs := e.cgroupChildren()
	c.Cgroups = len(cgs)
	seen := map[string]bool{}
	for _, p := range cgs {
		if b := filepath.Base(p); !seen[b] {
			seen[b] = true
			c.cgroupIDs = append(c.cgroupIDs, b)
		}
		c.cgroupDetails = append(c.cgroupDetails, cgroupDetail(p))
	}
	c.Shims = len(e.shimPids())

	cl, err := containerd.New(e.containerdAddress(), containerd.WithTimeout(10*time.Second))
	if err != nil {
		e.t.Fatalf("containerd client: %v", err)
	}
	defer cl.Close()
	ctx = namespaces.WithNamespace(ctx, ctrdNS)
	ctrs, err := cl.Containers(ctx)
	if err != nil {
		e.t.Fatalf("containerd containers: %v", err)
	}
	c.Containers = len(ctrs)
	tl, err := cl.TaskService().List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		e.t.Fatalf("containerd tasks: %v", err)
	}
	c.Tasks = len(tl.Tasks)
	ls, err := cl.LeasesService().List(ctx)
	if err != nil {
		e.t.Fatalf("containerd leases: %v", err)
	}
	for _, l := range ls {
		if l.ID == "cri-shim-pause-rootfs" { // holds the shared pause rootfs
			c.SharedPause++
			continue
		}
		c.Leases++
	}
	if err := cl.SnapshotService("overlayfs").Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if strings.HasPrefix(info.Name, "cri-shim-pause-rootfs-") {
			c.SharedPause++
			return nil
		}
		c.Snapshots++
		return nil
	}); err != nil {
		e.t.Fatalf("containerd snapshots: %v", err)
	}
	return c
}

// goroutines is the daemon's go_goroutines metric.
func (e *env) goroutines() int {
	resp, err := http.Get("http://" + e.metrics + "/metrics")
	if err != nil {
		e.t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
			n, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return int(n)
		}
	}
	e.t.Fatalf("no go_goroutines in the metrics")
	return 0
}

// cgroupDirs are the env's cgroup parent in every mounted hierarchy.
func (e *env) cgroupDirs() []string {
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	var dirs []string
	for _, ent := range ents {
		d := filepath.Join("/sys/fs/cgroup", ent.Name(), e.cgroup)
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// cgroupChildren are the cgroups below the env's cgroup parent (the pods' sandboxes and
// containers), in every hierarchy.
func (e *env) cgroupChildren() []string {
	var out []string
	for _, d := range e.cgroupDirs() {
		filepath.WalkDir(d, func(p string, de os.DirEntry, err error) error {
			if err == nil && de.IsDir() && p != d {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// cgroupDetail is a cgroup's path with the pids and commands of the processes in it.
func cgroupDetail(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	var procs []string
	for _, pid := range strings.Fields(string(b)) {
		cmd, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		procs = append(procs, pid+" "+strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
	}
	return fmt.Sprintf("%s procs=%q", dir, procs)
}

func countEntries(dir string) int {
	ents, _ := os.ReadDir(dir)
	return len(ents)
}

// ipAllocations counts host-local's reservation files (one per allocated IP).
func ipAllocations(dir string) int {
	n := 0
	nets, _ := os.ReadDir(dir)
	for _, nd := range nets {
		ents, _ := os.ReadDir(filepath.Join(dir, nd.Name()))
		for _, ent := range ents {
			if net.ParseIP(ent.Name()) != nil {
				n++
			}
		}
	}
	return n
}

// settle takes censuses until the daemon's goroutines and fds are back to at most the baseline
// (goroutines of finished calls and waits exit asynchronously) or the time is up, and returns the
// last one.
func (e *env) settle(ctx context.Context, base counts, within time.Duration) counts {
	deadline := time.Now().Add(within)
	for {
		c := e.census(ctx)
		if (c.Goroutines <= base.Goroutines && c.FDs <= base.FDs && c.Shims <= base.Shims) || time.Now().After(deadline) {
			return c
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// leaks compares a census with the baseline: anything above it is a leak.
func leaks(base, after counts) []string {
	var out []string
	chk := func(name string, b, a int) {
		if a > b {
			out = append(out, fmt.Sprintf("%s %d -> %d", name, b, a))
		}
	}
	chk("goroutines", base.Goroutines, after.Goroutines)
	chk("fds", base.FDs, after.FDs)
	chk("log fds", base.LogFDs, after.LogFDs)
	chk("netns files", base.NetNSFiles, after.NetNSFiles)
	chk("netns mounts", base.NetNSMounts, after.NetNSMounts)
	chk("mounts", base.Mounts, after.Mounts)
	if after.Cgroups > base.Cgroups {
		out = append(out, fmt.Sprintf("cgroups %d -> %d (%v: %s)", base.Cgroups, after.Cgroups, after.cgroupIDs, strings.Join(after.cgroupDetails, "; ")))
	}
	chk("containerd containers", base.Containers, after.Containers)
	chk("containerd tasks", base.Tasks, after.Tasks)
	chk("containerd leases", base.Leases, after.Leases)
	chk("containerd snapshots", base.Snapshots, after.Snapshots)
	chk("shims", base.Shims, after.Shims)
	if after.SharedPause > 3 { // one mount, one snapshot, one lease for the one pause image
		out = append(out, fmt.Sprintf("shared pause rootfs: %d objects (mount, snapshot, lease), want at most 3", after.SharedPause))
	}
	chk("IP allocations", base.IPAllocations, after.IPAllocations)
	chk("sandbox dirs", base.SandboxDirs, after.SandboxDirs)
	chk("container dirs", base.ContainerDirs, after.ContainerDirs)
	return out
}
