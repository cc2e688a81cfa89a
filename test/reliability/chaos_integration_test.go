//go:build integration

package reliability

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// chaosSeeds are the seeds of the kill schedules; CHAOS_SEED=n runs seed n alone.
var chaosSeeds = []int64{1, 7, 42}

// TestKill9DuringChurn SIGKILLs the daemon at random moments (seeded) while workers churn pods
// through full lifecycles and two pods keep counters running, restarts it on the same dirs each
// time, then checks what a kubelet would rely on:
//   - the CRI view (List and Status of every sandbox and container) matches containerd's truth
//     (containers and tasks, running or not), and every containerd container is visible in it;
//   - no name is blocked: every pod whose lifecycle a kill broke can be cleaned up through CRI and
//     run again with the same metadata, with its containers;
//   - the counters' CRI logs run on across the kills: no line doubled or out of order, and a line
//     lost only where a kill landed between the daemon's read of the FIFO and its write of the log
//     (the output in its memory at that moment: at most one gap of maxGapLines per kill), and
//     exec works in them;
//   - after removing everything, the leak census is back to the baseline.
func TestKill9DuringChurn(t *testing.T) {
	seeds := chaosSeeds
	if s, err := strconv.ParseInt(os.Getenv("CHAOS_SEED"), 10, 64); err == nil {
		seeds = []int64{s}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	e := newEnv(t, "chaos", "10.94.0.0/16")
	e.start()
	e.pull(ctx, busybox)
	if err := e.lifecycle(ctx, "warm", "warm"); err != nil {
		t.Fatal(err)
	}
	base := e.settle(ctx, counts{}, 5*time.Second)
	t.Logf("baseline: %s", base)
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			e.t = t
			defer func() { e.t = t }()
			chaosRound(t, ctx, e, seed, base)
		})
		if t.Failed() {
			return
		}
	}
}

type podName struct{ ns, name string }

func chaosRound(t *testing.T, ctx context.Context, e *env, seed int64, base counts) {
	rng := rand.New(rand.NewSource(seed))
	t.Logf("seed %d", seed)
	ns := fmt.Sprintf("chaos%d", seed)
	start := time.Now()

	// Two pods whose counters run through every kill.
	var keep []podName
	keepIDs := map[podName][]string{}
	for i := 0; i < 2; i++ {
		pn := podName{ns, fmt.Sprintf("keep%d", i)}
		_, ids, err := e.upPod(ctx, pn.ns, pn.name)
		if err != nil {
			t.Fatal(err)
		}
		keep = append(keep, pn)
		keepIDs[pn] = ids
	}

	// Churn workers; a pod whose lifecycle failed (the daemon died under it) is left for the
	// reconciliation, as a kubelet would leave it to its next sync.
	var (
		mu     sync.Mutex
		broken []podName
		done   int
		next   int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				pn := podName{ns, fmt.Sprintf("pod%d", next)}
				next++
				mu.Unlock()
				if err := e.lifecycle(ctx, pn.ns, pn.name); err != nil {
					t.Logf("broken by a kill? %v", err)
					mu.Lock()
					broken = append(broken, pn)
					mu.Unlock()
					e.waitUp(ctx)
					continue
				}
				mu.Lock()
				done++
				mu.Unlock()
			}
		}()
	}

	// The kills: 3 per seed, at random moments of the churn, with a random downtime.
	const kills = 3
	for k := 0; k < kills; k++ {
		up := time.Duration(300+rng.Intn(2500)) * time.Millisecond
		down := time.Duration(rng.Intn(1500)) * time.Millisecond
		time.Sleep(up)
		e.kill()
		t.Logf("seed %d kill %d: after %s up, %s down", seed, k+1, up, down)
		time.Sleep(down)
		e.start()
	}
	time.Sleep(time.Duration(500+rng.Intn(1000)) * time.Millisecond)
	close(stop)
	wg.Wait()
	t.Logf("seed %d: churn done, %d pods through full lifecycles, %d broken by kills, %s", seed, done, len(broken), time.Since(start).Round(time.Millisecond))

	// 1. The CRI view against containerd's truth.
	checkViewMatchesContainerd(t, ctx, e)

	// 2. No name blocked: clean up each broken pod through CRI, run it again (6 at a time).
	reconcile := time.Now()
	sem := make(chan struct{}, 6)
	var rwg sync.WaitGroup
	for _, pn := range broken {
		rwg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; rwg.Done() }()
			if err := e.removeByName(ctx, pn); err != nil {
				t.Errorf("cleaning up %s: %v", pn.name, err)
				return
			}
			if err := e.lifecycle(ctx, pn.ns, pn.name); err != nil {
				t.Errorf("pod %s again after a kill broke it: %v", pn.name, err)
				e.removeByName(ctx, pn) // so that the leak census below counts only the daemon's leaks
			}
		}()
	}
	rwg.Wait()
	t.Logf("seed %d: %d broken pods removed through CRI and run again under the same names in %s", seed, len(broken), time.Since(reconcile).Round(time.Millisecond))

	// 3. The counters' logs: stop them (SIGTERM, they exit 0), then every line once, in order.
	for _, pn := range keep {
		for _, id := range keepIDs[pn] {
			st, err := e.client().ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: id})
			if err != nil || st.Status.State != runtime.ContainerState_CONTAINER_RUNNING {
				t.Errorf("kept container %s of %s after the kills: %v %v", id, pn.name, st.GetStatus(), err)
				continue
			}
			// Exec works again in a container that ran through the kills.
			ex, err := e.client().ExecSync(ctx, &runtime.ExecSyncRequest{ContainerId: id, Cmd: []string{"echo", "alive"}, Timeout: 30})
			if err != nil || ex.ExitCode != 0 || string(ex.Stdout) != "alive\n" {
				t.Errorf("exec in %s after the kills: %v %v", id, ex, err)
			}
			if _, err := e.client().StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: id, Timeout: 10}); err != nil {
				t.Errorf("stop %s: %v", id, err)
				continue
			}
			n, gaps, err := checkCounterLog(st.Status.LogPath, kills)
			if err != nil {
				t.Errorf("log of %s/%s: %v", pn.name, st.Status.Metadata.Name, err)
			} else {
				t.Logf("log of %s/%s: %d lines in order, none doubled, gaps (lines lost at a kill): %v", pn.name, st.Status.Metadata.Name, n, gaps)
			}
		}
		if err := e.removeByName(ctx, pn); err != nil {
			t.Errorf("remove %s: %v", pn.name, err)
		}
		os.RemoveAll(e.podConfig(pn.ns, pn.name, 0).LogDirectory)
	}

	// 4. Nothing left, nothing leaked.
	pods, err := e.client().ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil || len(pods.Items) != 0 {
		t.Errorf("pods left after the clean-up: %v %v", pods, err)
	}
	after := e.settle(ctx, base, 20*time.Second)
	t.Logf("seed %d after removing everything: %s", seed, after)
	if l := leaks(base, after); len(l) > 0 {
		t.Errorf("seed %d leaked: %v", seed, l)
	}
}

// waitUp waits until the daemon answers (it may be down, killed by the test).
func (e *env) waitUp(ctx context.Context) {
	for ctx.Err() == nil {
		c, cancel := context.WithTimeout(ctx, time.Second)
		_, err := e.client().Version(c, &runtime.VersionRequest{})
		cancel()
		if err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeByName removes, as a kubelet's sync would, every sandbox with the pod's metadata and
// every container in it.
func (e *env) removeByName(ctx context.Context, pn podName) error {
	rt := e.client()
	pods, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		if p.Metadata.Namespace != pn.ns || p.Metadata.Name != pn.name {
			continue
		}
		ctrs, err := rt.ListContainers(ctx, &runtime.ListContainersRequest{Filter: &runtime.ContainerFilter{PodSandboxId: p.Id}})
		if err != nil {
			return err
		}
		for _, c := range ctrs.Containers {
			if _, err := rt.StopContainer(ctx, &runtime.StopContainerRequest{ContainerId: c.Id, Timeout: 10}); err != nil {
				return fmt.Errorf("stop container %s (%v): %w", c.Id, c.State, err)
			}
			if _, err := rt.RemoveContainer(ctx, &runtime.RemoveContainerRequest{ContainerId: c.Id}); err != nil {
				return fmt.Errorf("remove container %s: %w", c.Id, err)
			}
		}
		if _, err := rt.StopPodSandbox(ctx, &runtime.StopPodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			return fmt.Errorf("stop pod %s (%v): %w", p.Id, p.State, err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtime.RemovePodSandboxRequest{PodSandboxId: p.Id}); err != nil {
			return fmt.Errorf("remove pod %s: %w", p.Id, err)
		}
	}
	return os.RemoveAll(e.podConfig(pn.ns, pn.name, 0).LogDirectory)
}

// checkViewMatchesContainerd compares every sandbox and container the CRI lists (and its Status)
// with containerd: the object exists there, a READY sandbox or RUNNING container has a running
// task and a NOTREADY/EXITED one none running, a CREATED container no task started; and every
// containerd container of the namespace is one the CRI lists.
func checkViewMatchesContainerd(t *testing.T, ctx context.Context, e *env) {
	t.Helper()
	rt := e.client()
	cl, err := containerd.New(e.containerdAddress(), containerd.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cctx := namespaces.WithNamespace(ctx, ctrdNS)
	truth := map[string]string{} // containerd container id -> task status ("" without a task)
	ctrs, err := cl.Containers(cctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		truth[c.ID()] = ""
		task, err := c.Task(cctx, nil)
		if err != nil {
			continue
		}
		st, err := task.Status(cctx)
		if err != nil {
			t.Errorf("task status of %s: %v", c.ID(), err)
			continue
		}
		truth[c.ID()] = string(st.Status)
	}
	seen := map[string]bool{}
	var view []string
	pods, err := rt.ListPodSandbox(ctx, &runtime.ListPodSandboxRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		seen[p.Id] = true
		st, err := rt.PodSandboxStatus(ctx, &runtime.PodSandboxStatusRequest{PodSandboxId: p.Id})
		if err != nil {
			t.Errorf("status of listed pod %s: %v", p.Id, err)
			continue
		}
		if st.Status.State != p.State {
			t.Errorf("pod %s: listed %v, status %v", p.Id, p.State, st.Status.State)
		}
		task, ok := truth[p.Id]
		view = append(view, fmt.Sprintf("pod %s/%s %s task=%q", p.Metadata.Name, p.Id[:12], p.State, task))
		// A pod without a pause process (pidMode) is ready with no task: its record in
		// containerd and its network (pinned namespace, IP) are what it has.
		pauseLess := pidMode(p.Metadata.Name) == runtime.NamespaceMode_CONTAINER
		switch {
		case pauseLess && p.State == runtime.PodSandboxState_SANDBOX_READY && (!ok || task != "" || st.Status.GetNetwork().GetIp() == ""):
			t.Errorf("pod %s (%s) without a pause is READY, containerd has it %v with task %q, IP %q", p.Id, p.Metadata.Name, ok, task, st.Status.GetNetwork().GetIp())
		case pauseLess:
		case p.State == runtime.PodSandboxState_SANDBOX_READY && task != "running":
			t.Errorf("pod %s (%s) is READY, containerd has it %v with task %q", p.Id, p.Metadata.Name, ok, task)
		case p.State == runtime.PodSandboxState_SANDBOX_NOTREADY && task == "running":
			t.Errorf("pod %s (%s) is NOTREADY but its pause task runs", p.Id, p.Metadata.Name)
		}
	}
	cs, err := rt.ListContainers(ctx, &runtime.ListContainersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs.Containers {
		seen[c.Id] = true
		st, err := rt.ContainerStatus(ctx, &runtime.ContainerStatusRequest{ContainerId: c.Id})
		if err != nil {
			t.Errorf("status of listed container %s: %v", c.Id, err)
			continue
		}
		if st.Status.State != c.State {
			t.Errorf("container %s: listed %v, status %v", c.Id, c.State, st.Status.State)
		}
		if !seen[c.PodSandboxId] {
			t.Errorf("container %s is in pod %s, which is not listed", c.Id, c.PodSandboxId)
		}
		task, ok := truth[c.Id]
		view = append(view, fmt.Sprintf("container %s/%s %s task=%q", c.Metadata.Name, c.Id[:12], c.State, task))
		switch c.State {
		case runtime.ContainerState_CONTAINER_RUNNING:
			if task != "running" {
				t.Errorf("container %s is RUNNING, containerd has it %v with task %q", c.Id, ok, task)
			}
		case runtime.ContainerState_CONTAINER_CREATED:
			if !ok || (task != "" && task != "created") {
				t.Errorf("container %s is CREATED, containerd has it %v with task %q", c.Id, ok, task)
			}
		case runtime.ContainerState_CONTAINER_EXITED:
			if task == "running" {
				t.Errorf("container %s is EXITED but its task runs", c.Id)
			}
			if st.Status.FinishedAt == 0 {
				t.Errorf("container %s is EXITED without a finish time", c.Id)
			}
		default:
			t.Errorf("container %s is %v", c.Id, c.State)
		}
	}
	for id, task := range truth {
		if !seen[id] {
			t.Errorf("containerd container %s (task %q) is not in the CRI view: nothing could remove it", id, task)
		}
	}
	sort.Strings(view)
	t.Logf("after the kills, %d objects in containerd, CRI view:\n  %s", len(truth), strings.Join(view, "\n  "))
}

// maxGapLines bounds the lines one kill may lose: the counters write a line every 50 ms, and what
// the daemon holds between reading a FIFO and writing the log is one read, written within
// microseconds (a kill at any moment loses that and nothing else: the FIFO keeps the rest).
const maxGapLines = 2

// checkCounterLog reads a CRI log of `line N` and checks that N goes 0, 1, 2, ... with nothing
// doubled or out of order, and no more than maxKills gaps of at most maxGapLines lines each; it
// returns the number of lines and the gaps' sizes.
func checkCounterLog(path string, maxKills int) (int, []int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, err
	}
	want, lines := 0, 0
	var gaps []int
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		// <time> <stream> <tag> <content>
		f := strings.SplitN(l, " ", 4)
		if len(f) != 4 || f[2] != "F" {
			return lines, gaps, fmt.Errorf("not a full CRI log line: %q", l)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(f[3], "line "))
		if err != nil {
			return lines, gaps, fmt.Errorf("not a counter line: %q", l)
		}
		switch {
		case n < want:
			return lines, gaps, fmt.Errorf("line %d after line %d: doubled or out of order", n, want-1)
		case n > want:
			gaps = append(gaps, n-want)
			if n-want > maxGapLines || len(gaps) > maxKills {
				return lines, gaps, fmt.Errorf("lines %d to %d lost: gaps %v for %d kills", want, n-1, gaps, maxKills)
			}
		}
		want = n + 1
		lines++
	}
	if lines < 20 {
		return lines, gaps, fmt.Errorf("only %d lines in %s", lines, filepath.Base(path))
	}
	return lines, gaps, nil
}

func TestCheckCounterLog(t *testing.T) {
	logOf := func(ns ...int) string {
		var b strings.Builder
		for _, n := range ns {
			fmt.Fprintf(&b, "2026-12-07T00:00:00.000000000Z stdout F line %d\n", n)
		}
		return b.String()
	}
	seq := func(from, to int) []int {
		var s []int
		for i := from; i < to; i++ {
			s = append(s, i)
		}
		return s
	}
	for _, c := range []struct {
		name string
		ns   []int
		ok   bool
	}{
		{"complete", seq(0, 30), true},
		{"one line lost at a kill", append(seq(0, 10), seq(11, 30)...), true},
		{"a line doubled", append(seq(0, 10), seq(9, 30)...), false},
		{"a gap longer than one read", append(seq(0, 10), seq(14, 30)...), false},
		{"more gaps than kills", append(append(seq(0, 5), seq(6, 10)...), append(seq(11, 15), seq(16, 30)...)...), false},
		{"too short", seq(0, 5), false},
	} {
		p := filepath.Join(t.TempDir(), "log")
		if err := os.WriteFile(p, []byte(logOf(c.ns...)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, gaps, err := checkCounterLog(p, 2)
		if (err == nil) != c.ok {
			t.Errorf("%s: gaps %v, err %v; want ok=%v", c.name, gaps, err, c.ok)
		}
	}
}
