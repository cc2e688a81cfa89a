//go:build integration

package kuberuntime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	"github.com/cri-shim/cri-shim/legacy"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const testBusybox = "registry.k8s.io/e2e-test-images/busybox:1.29-2"

// podWithLogs runs a pod whose log directory is under the test's dir, and pulls busybox.
func (e *env) podWithLogs(name string) (*legacy.SandboxStatus, string) {
	e.t.Helper()
	cfg := podCfg(name)
	cfg.LogDirectory = filepath.Join(e.dir, "logs", name)
	sb := e.run(cfg)
	if _, err := e.rt.images.PullImage(context.Background(), legacy.ImageSpec{Image: testBusybox}, nil, nil); err != nil {
		e.t.Fatalf("pull %s: %v", testBusybox, err)
	}
	return sb, cfg.LogDirectory
}

func ctrCfg(name string, cmd ...string) *runtime.ContainerConfig {
	return &runtime.ContainerConfig{
		Metadata: &runtime.ContainerMetadata{Name: name},
		Image:    &runtime.ImageSpec{Image: testBusybox},
		Command:  cmd,
		LogPath:  name + ".log",
		Labels:   map[string]string{"ctr": name},
		Linux:    &runtime.LinuxContainerConfig{},
	}
}

// createStart creates and starts a container.
func (e *env) createStart(sandboxID string, cfg *runtime.ContainerConfig) string {
	e.t.Helper()
	ctx := context.Background()
	t0 := time.Now()
	id, err := e.rt.CreateContainer(ctx, sandboxID, cfg)
	if err != nil {
		e.t.Fatalf("create %s: %v", cfg.Metadata.Name, err)
	}
	t1 := time.Now()
	if err := e.rt.StartContainer(ctx, id); err != nil {
		e.t.Fatalf("start %s: %v", cfg.Metadata.Name, err)
	}
	e.t.Logf("container %s: create %v, start %v", cfg.Metadata.Name, t1.Sub(t0), time.Since(t1))
	return id
}

// waitExited waits for the container to exit and returns its status.
func (e *env) waitExited(rt *ContainerdRuntime, id string) *legacy.ContainerDetails {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := rt.ContainerStatus(context.Background(), id, false)
		if err != nil {
			e.t.Fatal(err)
		}
		if st.State == legacy.ContainerStateExited {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container %s did not exit: %+v", id, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var logLine = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (stdout|stderr) (P|F) (.*)$`)

// readCRILog returns the log's entries as "stream tag content".
func readCRILog(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" {
			continue
		}
		m := logLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("malformed log line %q", l)
		}
		out = append(out, m[1]+" "+m[2]+" "+m[3])
	}
	return out
}

func TestContainers(t *testing.T) {
	e := newEnv(t, "")
	ctx := context.Background()
	sb, logDir := e.podWithLogs("ctrs")

	t.Run("logs and exit code 0", func(t *testing.T) {
		id := e.createStart(sb.ID, ctrCfg("echo", "sh", "-c", "echo hello; echo oops >&2; sleep 0.2; printf partial"))
		st := e.waitExited(e.rt, id)
		if st.ExitCode != 0 || st.Reason != legacy.ReasonCompleted || st.StartedAt.IsZero() || st.FinishedAt.Before(st.StartedAt) {
			t.Fatalf("status %+v", st)
		}
		if st.LogPath != filepath.Join(logDir, "echo.log") || st.ImageID == "" || !strings.Contains(st.ImageRef, "@sha256:") {
			t.Fatalf("status %+v", st)
		}
		got := readCRILog(t, st.LogPath)
		want := map[string]bool{"stdout F hello": true, "stderr F oops": true, "stdout P partial": true}
		if len(got) != 3 {
			t.Fatalf("log %q", got)
		}
		for _, l := range got {
			if !want[l] {
				t.Fatalf("log %q", got)
			}
		}
	})

	t.Run("exit code and termination message", func(t *testing.T) {
		msgDir := t.TempDir()
		msg := filepath.Join(msgDir, "termination-log")
		os.WriteFile(msg, nil, 0o666)
		cfg := ctrCfg("fail", "sh", "-c", "echo bye > /dev/termination-log; exit 3")
		cfg.Mounts = []*runtime.Mount{{ContainerPath: "/dev/termination-log", HostPath: msg}}
		cfg.Annotations = map[string]string{containerspec.AnnotationTerminationMessagePath: "/dev/termination-log"}
		id := e.createStart(sb.ID, cfg)
		st := e.waitExited(e.rt, id)
		if st.ExitCode != 3 || st.Reason != legacy.ReasonError || st.Message != "bye\n" {
			t.Fatalf("status %+v", st)
		}
	})

	t.Run("exec, stop and remove", func(t *testing.T) {
		cfg := ctrCfg("sleeper", "sh", "-c", `trap "" TERM; while true; do sleep 1; done`)
		cfg.Envs = []*runtime.KeyValue{{Key: "GREETING", Value: []byte("hi there")}}
		id := e.createStart(sb.ID, cfg)
		if _, err := e.rt.CreateContainer(ctx, sb.ID, cfg); !errdefs.IsAlreadyExists(err) {
			t.Fatalf("duplicate name: %v", err)
		}
		// The model's view: the running container is part of its pod.
		pods, err := e.rt.GetPods(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		var found *legacy.Container
		for _, p := range pods {
			if p.ID == sb.UID {
				found = p.FindContainerByName("sleeper")
			}
		}
		if found == nil || found.ID.ID != id || found.State != legacy.ContainerStateRunning || found.Hash == 0 {
			t.Fatalf("GetPods: container %+v in %+v", found, pods)
		}
		ps, err := e.rt.GetPodStatus(ctx, sb.UID, sb.Name, sb.Namespace)
		if err != nil {
			t.Fatal(err)
		}
		if cs := ps.FindContainerStatusByName("sleeper"); cs == nil || cs.ID.ID != id || cs.State != legacy.ContainerStateRunning {
			t.Fatalf("GetPodStatus: %+v", ps.ContainerStatuses)
		}
		res, err := e.rt.ExecSync(ctx, id, []string{"sh", "-c", "echo $GREETING; echo e >&2; exit 5"}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(res.Stdout) != "hi there\n" || string(res.Stderr) != "e\n" || res.ExitCode != 5 {
			t.Fatalf("exec: %q %q %d", res.Stdout, res.Stderr, res.ExitCode)
		}
		start := time.Now()
		if _, err := e.rt.ExecSync(ctx, id, []string{"sleep", "60"}, time.Second); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("exec timeout: %v", err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("exec timeout took %v", d)
		}
		if err := e.rt.UpdateContainerResources(ctx, id, &runtime.LinuxContainerResources{CpuShares: 300, MemoryLimitInBytes: 200 << 20}); err != nil {
			t.Fatal(err)
		}
		st, _ := e.rt.ContainerStatus(ctx, id, true)
		if st.Resources.GetCpuShares() != 300 || st.Resources.GetMemoryLimitInBytes() != 200<<20 || st.Info["info"] == "" {
			t.Fatalf("after update: %+v", st)
		}
		list, _ := e.rt.ListContainers(ctx, &legacy.ContainerFilter{SandboxID: sb.ID, Labels: map[string]string{"ctr": "sleeper"}})
		if len(list) != 1 || list[0].ID.ID != id {
			t.Fatalf("list %+v", list)
		}
		// The shell ignores SIGTERM: SIGKILL after the timeout.
		start = time.Now()
		if err := e.rt.StopContainer(ctx, id, time.Second); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < time.Second || d > 15*time.Second {
			t.Fatalf("stop took %v", d)
		}
		st = e.waitExited(e.rt, id)
		if st.ExitCode != 137 {
			t.Fatalf("status after stop %+v", st)
		}
		if err := e.rt.StopContainer(ctx, id, time.Second); err != nil {
			t.Fatalf("second stop: %v", err)
		}
		if err := e.rt.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.ContainerStatus(ctx, id, false); !errdefs.IsNotFound(err) {
			t.Fatalf("status after remove: %v", err)
		}
		if err := e.rt.RemoveContainer(ctx, id); err != nil {
			t.Fatalf("second remove: %v", err)
		}
		// The name is free again.
		id2 := e.createStart(sb.ID, cfg)
		if err := e.rt.RemoveContainer(ctx, id2); err != nil {
			t.Fatalf("remove running: %v", err)
		}
	})

	t.Run("oom kill", func(t *testing.T) {
		cfg := ctrCfg("oom", "sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done")
		cfg.Linux.Resources = &runtime.LinuxContainerResources{MemoryLimitInBytes: 32 << 20}
		id := e.createStart(sb.ID, cfg)
		st := e.waitExited(e.rt, id)
		if st.Reason != legacy.ReasonOOMKilled || st.ExitCode != 137 {
			t.Fatalf("status %+v", st)
		}
	})

	t.Run("restart keeps state and logs", func(t *testing.T) {
		exited := e.createStart(sb.ID, ctrCfg("exit7", "sh", "-c", "exit 7"))
		e.waitExited(e.rt, exited)
		running := e.createStart(sb.ID, ctrCfg("ticker", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"))
		e.rt.Close()
		time.Sleep(500 * time.Millisecond) // output while the daemon is away
		rt2 := e.newRuntime()
		e.rt = rt2
		st, err := rt2.ContainerStatus(ctx, exited, false)
		if err != nil || st.State != legacy.ContainerStateExited || st.ExitCode != 7 || st.Reason != legacy.ReasonError {
			t.Fatalf("exited container after restart: %+v %v", st, err)
		}
		st, err = rt2.ContainerStatus(ctx, running, false)
		if err != nil || st.State != legacy.ContainerStateRunning || st.Pid == 0 {
			t.Fatalf("running container after restart: %+v %v", st, err)
		}
		if _, err := rt2.CreateContainer(ctx, sb.ID, ctrCfg("ticker", "true")); !errdefs.IsAlreadyExists(err) {
			t.Fatalf("name not reserved after restart: %v", err)
		}
		// Lines keep coming after the restart (the new daemon took the container's output over):
		// wait for a few past those written before and while away, however slow the machine.
		before := len(readCRILog(t, st.LogPath))
		for deadline := time.Now().Add(30 * time.Second); len(readCRILog(t, st.LogPath)) < max(before+3, 8); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the log stays at %d lines after the restart", len(readCRILog(t, st.LogPath)))
			}
		}
		if err := rt2.StopContainer(ctx, running, 0); err != nil {
			t.Fatal(err)
		}
		lines := readCRILog(t, st.LogPath)
		for i, l := range lines {
			if want := "stdout F tick " + strconv.Itoa(i); l != want {
				t.Fatalf("log line %d: %q, want %q (a line lost or doubled)", i, l, want)
			}
		}
		if len(lines) < 8 {
			t.Fatalf("only %d log lines", len(lines))
		}
	})

	t.Run("remove answers before the deletion finishes; a half-removed container is finished at start", func(t *testing.T) {
		id := e.createStart(sb.ID, ctrCfg("quick", "sleep", "3600"))
		if err := e.rt.StopContainer(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		if err := e.rt.RemoveContainer(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := e.rt.ContainerStatus(ctx, id, false); !errdefs.IsNotFound(err) {
			t.Fatalf("status right after remove: %v", err)
		}
		if list, _ := e.rt.ListContainers(ctx, &legacy.ContainerFilter{ID: id}); len(list) != 0 {
			t.Fatalf("listed right after remove: %+v", list)
		}
		if err := e.rt.removals().wait(ctx, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.LoadContainer(e.rt.withNS(ctx), id); !errdefs.IsNotFound(err) {
			t.Fatalf("containerd container after the background deletion: %v", err)
		}
		if _, err := os.Stat(filepath.Join(e.rt.containersRoot(), id)); !os.IsNotExist(err) {
			t.Fatalf("root dir after the background deletion: %v", err)
		}

		// The daemon died after answering RemoveContainer, before the deletion: the marker is there.
		half := e.createStart(sb.ID, ctrCfg("half", "sleep", "3600"))
		if err := e.rt.StopContainer(ctx, half, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(e.rt.containersRoot(), half, removingMarker), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		e.rt.Close()
		e.rt = e.newRuntime()
		if _, err := e.rt.ContainerStatus(ctx, half, false); !errdefs.IsNotFound(err) {
			t.Fatalf("half-removed container after restart: %v", err)
		}
		if _, err := e.client.LoadContainer(e.rt.withNS(ctx), half); !errdefs.IsNotFound(err) {
			t.Fatalf("containerd container of the half-removed one after restart: %v", err)
		}
		if _, err := os.Stat(filepath.Join(e.rt.containersRoot(), half)); !os.IsNotExist(err) {
			t.Fatalf("root dir of the half-removed one after restart: %v", err)
		}
		// Its name is free.
		again := e.createStart(sb.ID, ctrCfg("half", "true"))
		e.waitExited(e.rt, again)
	})

	t.Run("stop and remove of the pod take its containers", func(t *testing.T) {
		id := e.createStart(sb.ID, ctrCfg("last", "sleep", "3600"))
		if err := e.rt.StopPodSandbox(ctx, sb.ID).Error(); err != nil {
			t.Fatal(err)
		}
		st, _ := e.rt.ContainerStatus(ctx, id, false)
		if st == nil || st.State != legacy.ContainerStateExited {
			t.Fatalf("container after pod stop: %+v", st)
		}
		if err := e.rt.RemovePodSandbox(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
		if list, _ := e.rt.ListContainers(ctx, nil); len(list) != 0 {
			t.Fatalf("containers left after pod removal: %+v", list)
		}
		cs, _ := e.client.Containers(ctx)
		for _, c := range cs {
			t.Errorf("containerd container left: %s", c.ID())
		}
	})
}
