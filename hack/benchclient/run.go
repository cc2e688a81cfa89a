package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RunResult is what one `benchclient run` measured, written as JSON.
type RunResult struct {
	Name              string `json:"name"`
	Pods              int    `json:"pods"`
	Parallel          int    `json:"parallel"`
	ContainersPerPod  int    `json:"containers_per_pod"`
	ContainersRunning int    `json:"containers_running"` // at the node's fullest
	Errors            []string

	// StartSeconds: from the first RunPodSandbox to the last of the pods' containers running.
	StartSeconds float64 `json:"start_seconds"`
	// TeardownSeconds: StopPodSandbox + RemovePodSandbox of every pod.
	TeardownSeconds float64 `json:"teardown_seconds"`
	// Ops: every call's duration in ns, by operation name.
	Ops map[string][]int64 `json:"ops"`
	// Procs: label -> samples at "start", "full" (all containers running) and "end".
	Procs map[string]map[string]ProcSample `json:"procs"`
	// Shims: the containerd shims of the endpoint's namespace with all containers running.
	Shims ShimSample `json:"shims"`
	// StartCPU: the CPU seconds the machine used over the throughput phase, and by whom
	// (cpusplit.go).
	StartCPU CPUSplit `json:"start_cpu,omitempty"`
	// SettleSeconds: how long the filled node took to go quiet before the list calls.
	SettleSeconds float64 `json:"settle_seconds,omitempty"`
	// Handler: the runtime handler the pods named (empty: the runtime's default).
	Handler string `json:"handler,omitempty"`
	// OCIRuns: the OCI runtime's runs in the throughput phase by subcommand, from -oci-log.
	OCIRuns map[string]int `json:"oci_runs,omitempty"`
	// OCITeardownRuns: the same for the teardown.
	OCITeardownRuns map[string]int `json:"oci_teardown_runs,omitempty"`
}

type recorder struct {
	mu  sync.Mutex
	res *RunResult
}

func (r *recorder) add(op string, d time.Duration) {
	r.mu.Lock()
	r.res.Ops[op] = append(r.res.Ops[op], d.Nanoseconds())
	r.mu.Unlock()
}

func (r *recorder) fail(format string, a ...any) {
	r.mu.Lock()
	if len(r.res.Errors) < 50 {
		r.res.Errors = append(r.res.Errors, fmt.Sprintf(format, a...))
	}
	r.mu.Unlock()
}

type labeledPIDs map[string]int

func (l labeledPIDs) String() string { return fmt.Sprint(map[string]int(l)) }
func (l labeledPIDs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want LABEL=PID, got %q", s)
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return err
	}
	l[k] = n
	return nil
}

func runMain(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	endpoint := fs.String("endpoint", "", "CRI endpoint (unix:///path)")
	name := fs.String("name", "", "runtime name for the report")
	out := fs.String("out", "", "write the JSON result here")
	pods := fs.Int("pods", 100, "pods to start")
	parallel := fs.Int("parallel", 10, "pods started (and torn down) at once")
	perPod := fs.Int("containers-per-pod", 5, "containers per pod for the list measurements (the first is started in the throughput phase)")
	listN := fs.Int("list-n", 100, "ListContainers / ListPodSandbox / status calls measured")
	statsN := fs.Int("stats-n", 10, "ListContainerStats calls measured")
	image := fs.String("image", "registry.k8s.io/e2e-test-images/busybox:1.29-2", "container image")
	logDir := fs.String("log-dir", os.TempDir(), "pods' log directories go below this")
	ctrdAddr := fs.String("containerd-address", "", "containerd socket (to find the shims of -namespace)")
	ns := fs.String("namespace", "", "the endpoint's containerd namespace (to find its shims)")
	keep := fs.Bool("keep", false, "leave the pods running at the end (for measuring by hand); no teardown")
	atFull := fs.String("at-full", "", "shell command run once all containers run (e.g. to take a heap profile)")
	handler := fs.String("runtime-handler", "", "the runtime handler (RuntimeClass) the pods name; empty: the runtime's default")
	serialPods := fs.Int("serial-pods", 20, "pods run, given a container, stopped and removed one at a time before the throughput phase (the \"serial:\" rows)")
	sharePID := fs.Bool("share-pid", false, "pods share one PID namespace among their containers (shareProcessNamespace); default: one per container, as the kubelet makes pods")
	ociLog := fs.String("oci-log", "", "log of the OCI runtime wrapper (a line of arguments per run): count its runs in the throughput phase")
	procs := labeledPIDs{}
	fs.Var(procs, "proc", "LABEL=PID of a runtime process to sample (repeatable)")
	fs.Parse(args)
	if *endpoint == "" || *out == "" {
		return fmt.Errorf("run: -endpoint and -out are required")
	}

	conn, err := grpc.NewClient("passthrough:///"+strings.TrimPrefix(*endpoint, "unix://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (netConn, error) {
			return dialUnix(ctx, addr)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	img := runtimeapi.NewImageServiceClient(conn)
	ctx := context.Background()

	res := &RunResult{Name: *name, Pods: *pods, Parallel: *parallel, ContainersPerPod: *perPod,
		Ops: map[string][]int64{}, Procs: map[string]map[string]ProcSample{}, Handler: *handler}
	rec := &recorder{res: res}
	sample := func(when string) {
		for label, pid := range procs {
			s, err := sampleProc(pid)
			if err != nil {
				rec.fail("sample %s: %v", label, err)
				continue
			}
			if res.Procs[label] == nil {
				res.Procs[label] = map[string]ProcSample{}
			}
			res.Procs[label][when] = s
		}
	}
	sample("start")

	if _, err := img.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: *image}}); err != nil {
		return fmt.Errorf("pull %s: %w", *image, err)
	}
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)

	type pod struct {
		id  string
		cfg *runtimeapi.PodSandboxConfig
	}
	podList := make([]pod, *pods)
	startContainer := func(p pod, j int, prefix string) bool {
		cfg := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: fmt.Sprintf("c%d", j)},
			Image:    &runtimeapi.ImageSpec{Image: *image},
			Command:  []string{"sleep", "86400"},
			LogPath:  fmt.Sprintf("c%d.log", j),
			Linux:    &runtimeapi.LinuxContainerConfig{},
		}
		t := time.Now()
		c, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{PodSandboxId: p.id, Config: cfg, SandboxConfig: p.cfg})
		if err != nil {
			rec.fail("CreateContainer: %v", err)
			return false
		}
		rec.add(prefix+"CreateContainer", time.Since(t))
		t = time.Now()
		if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: c.ContainerId}); err != nil {
			rec.fail("StartContainer: %v", err)
			return false
		}
		rec.add(prefix+"StartContainer", time.Since(t))
		return true
	}

	podConfig := func(name, uid string) *runtimeapi.PodSandboxConfig {
		pid := runtimeapi.NamespaceMode_CONTAINER
		if *sharePID {
			pid = runtimeapi.NamespaceMode_POD
		}
		return &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "bench", Uid: uid},
			Hostname:     name,
			LogDirectory: filepath.Join(*logDir, uid),
			// The namespace options the kubelet sends for a pod without hostNetwork/hostPID/hostIPC.
			Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD, Pid: pid, Ipc: runtimeapi.NamespaceMode_POD},
			}},
		}
	}

	// (0) a pod's life one call at a time, on an idle node, with the kubelet's pods (critest's
	// own benchmark pods set no namespace options: one PID namespace for the pod).
	const sp = "serial: "
	for i := 0; i < *serialPods; i++ {
		cfg := podConfig(fmt.Sprintf("serial-%d", i), fmt.Sprintf("serial-%s-%d", runID, i))
		t := time.Now()
		r, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: *handler})
		if err != nil {
			rec.fail("RunPodSandbox: %v", err)
			continue
		}
		rec.add(sp+"RunPodSandbox", time.Since(t))
		startContainer(pod{id: r.PodSandboxId, cfg: cfg}, 0, sp)
		t = time.Now()
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: r.PodSandboxId}); err != nil {
			rec.fail("StopPodSandbox: %v", err)
		} else {
			rec.add(sp+"StopPodSandbox (1 container)", time.Since(t))
		}
		t = time.Now()
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: r.PodSandboxId}); err != nil {
			rec.fail("RemovePodSandbox: %v", err)
		} else {
			rec.add(sp+"RemovePodSandbox", time.Since(t))
		}
	}

	// (1) pod start throughput.
	const tp = "throughput: "
	var ociFrom int64
	if *ociLog != "" {
		if ociFrom, err = ociLogSize(*ociLog); err != nil {
			return err
		}
	}
	cpuBefore, cpuErr := sampleCPUSplit(procs["runtime"], procs["containerd"], *ctrdAddr, *ns)
	start := time.Now()
	parallelDo(*pods, *parallel, func(i int) {
		t0 := time.Now()
		cfg := podConfig(fmt.Sprintf("bench-%d", i), fmt.Sprintf("bench-%s-%d", runID, i))
		t := time.Now()
		r, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: cfg, RuntimeHandler: *handler})
		if err != nil {
			rec.fail("RunPodSandbox: %v", err)
			return
		}
		rec.add(tp+"RunPodSandbox", time.Since(t))
		podList[i] = pod{id: r.PodSandboxId, cfg: cfg}
		if startContainer(podList[i], 0, tp) {
			rec.add(tp+"pod start (pod + 1 container)", time.Since(t0))
		}
	})
	res.StartSeconds = time.Since(start).Seconds()
	if cpuErr == nil {
		if after, err := sampleCPUSplit(procs["runtime"], procs["containerd"], *ctrdAddr, *ns); err == nil {
			res.StartCPU = after.sub(cpuBefore)
		}
	}
	if *ociLog != "" {
		if res.OCIRuns, err = countOCIRuns(*ociLog, ociFrom); err != nil {
			return err
		}
	}

	// (2) fill the node, then the list calls.
	parallelDo(*pods, *parallel, func(i int) {
		if podList[i].id == "" {
			return
		}
		for j := 1; j < *perPod; j++ {
			startContainer(podList[i], j, "fill: ")
		}
	})
	lc, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return err
	}
	for _, c := range lc.Containers {
		if c.State == runtimeapi.ContainerState_CONTAINER_RUNNING {
			res.ContainersRunning++
		}
	}
	sample("full")
	if *atFull != "" {
		if out, err := exec.Command("sh", "-c", *atFull).CombinedOutput(); err != nil {
			rec.fail("-at-full: %v: %s", err, out)
		}
	}
	if *ctrdAddr != "" && *ns != "" {
		res.Shims = sampleShims(*ctrdAddr, *ns)
	}
	// The kubelet relists a node at rest; the fill's last starts leave work behind for a
	// while (shims settling, containerd's GC, writeback), which is not what is measured here.
	t0 := time.Now()
	quiet, err := settle(0.15, 500*time.Millisecond, 20*time.Second)
	res.SettleSeconds = time.Since(t0).Seconds()
	if err != nil {
		return err
	}
	if !quiet {
		rec.fail("node not quiet %.0f s after the fill; list calls measured anyway", res.SettleSeconds)
	}
	scale := fmt.Sprintf(" (%d containers)", res.ContainersRunning)
	timeN := func(op string, n int, f func() error) {
		// a few calls first, unrecorded: connection buffers and the first large-message
		// allocations of either side are not what a relist every second costs.
		for k := 0; k < 5; k++ {
			if err := f(); err != nil {
				rec.fail("%s: %v", op, err)
				return
			}
		}
		for k := 0; k < n; k++ {
			t := time.Now()
			if err := f(); err != nil {
				rec.fail("%s: %v", op, err)
				return
			}
			rec.add(op+scale, time.Since(t))
		}
	}
	timeN("ListContainers", *listN, func() error {
		_, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		return err
	})
	timeN("ListPodSandbox", *listN, func() error {
		_, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		return err
	})
	if len(lc.Containers) > 0 {
		// the kubelet's PLEG asks for each pod's containers with a sandbox filter.
		k := 0
		timeN("ListContainers by pod", *listN, func() error {
			k++
			_, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
				PodSandboxId: lc.Containers[k%len(lc.Containers)].PodSandboxId}})
			return err
		})
		timeN("ContainerStatus", *listN, func() error {
			k++
			_, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: lc.Containers[k%len(lc.Containers)].Id})
			return err
		})
		timeN("PodSandboxStatus", *listN, func() error {
			k++
			_, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: lc.Containers[k%len(lc.Containers)].PodSandboxId})
			return err
		})
	}
	// CPU of the runtime's processes (distinct pids) per ListContainerStats call.
	pids := map[int]bool{}
	for _, pid := range procs {
		pids[pid] = true
	}
	cpuOf := func() float64 {
		var sum float64
		for pid := range pids {
			if s, err := sampleProc(pid); err == nil {
				sum += s.CPUSeconds
			}
		}
		return sum
	}
	cpu0 := cpuOf()
	timeN("ListContainerStats", *statsN, func() error {
		_, err := rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
		return err
	})
	if *statsN > 0 && len(pids) > 0 {
		// CPU seconds per call, stored in ns so the report treats it like a duration (ms of CPU).
		rec.add("ListContainerStats CPU ms per call, runtime + containerd", time.Duration((cpuOf()-cpu0)/float64(*statsN)*1e9))
	}

	// teardown.
	torn := *pods
	if *keep {
		torn = 0
	}
	if *ociLog != "" {
		if ociFrom, err = ociLogSize(*ociLog); err != nil {
			return err
		}
	}
	start = time.Now()
	parallelDo(torn, *parallel, func(i int) {
		if podList[i].id == "" {
			return
		}
		t := time.Now()
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: podList[i].id}); err != nil {
			rec.fail("StopPodSandbox: %v", err)
		}
		rec.add(fmt.Sprintf("teardown: StopPodSandbox (%d containers)", *perPod), time.Since(t))
		t = time.Now()
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: podList[i].id}); err != nil {
			rec.fail("RemovePodSandbox: %v", err)
		}
		rec.add("teardown: RemovePodSandbox", time.Since(t))
	})
	res.TeardownSeconds = time.Since(start).Seconds()
	if *ociLog != "" && torn > 0 {
		if res.OCITeardownRuns, err = countOCIRuns(*ociLog, ociFrom); err != nil {
			return err
		}
	}
	sample("end")

	b, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchclient: %s: %d pods started in %.1fs, %d containers running, teardown %.1fs, %d errors\n",
		*name, *pods, res.StartSeconds, res.ContainersRunning, res.TeardownSeconds, len(res.Errors))
	for _, e := range res.Errors {
		fmt.Fprintln(os.Stderr, "  ", e)
	}
	return nil
}

// settle waits until the machine's CPUs are busy less than frac of a window, at most max.
// It tells whether they were.
func settle(frac float64, window, max time.Duration) (bool, error) {
	deadline := time.Now().Add(max)
	prev, err := machineBusySeconds()
	if err != nil {
		return false, err
	}
	for time.Now().Before(deadline) {
		time.Sleep(window)
		busy, err := machineBusySeconds()
		if err != nil {
			return false, err
		}
		if (busy-prev)/(window.Seconds()*float64(runtime.NumCPU())) < frac {
			return true, nil
		}
		prev = busy
	}
	return false, nil
}

// parallelDo runs f(0..n-1) with at most par running at once.
func parallelDo(n, par int, f func(i int)) {
	if par < 1 {
		par = 1
	}
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			f(i)
		}(i)
	}
	wg.Wait()
}
