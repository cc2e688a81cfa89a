package kuberuntime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/containerd/api/services/tasks/v1"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/cgroupdriver"
	"github.com/cri-shim/cri-shim/kuberuntime/cgroupstats"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Pods without a pause process.
//
// A pod whose containers share no PID namespace (the kubelet's default) needs no process of its
// own: what its pause process held, its network, IPC and UTS namespaces (and its user namespace),
// is pinned by bind mounts under the pod's state dir (sandbox/nspin.go), its hostname and sysctls
// are set in those namespaces, and its containers join them by path. The sandbox keeps its
// containerd container (the record that restart recovery lists, with its metadata) but no
// snapshot and no task.
//
// Its containers' tasks are grouped in one shim by the io.kubernetes.cri.sandbox-id annotation
// (the runc shim's "start" finds the shim of the group by the socket named after the sandbox's
// ID): the first container's task starts the shim, the later ones reach it by its address
// (pod_shim.go), and it serves until the pod's stop, whichever container came first.
//
// A shim that exits with a pod's last task (one whose container's record names no sandbox, made
// by an earlier version, shuts it down at its deletion) leaves its socket a little after
// containerd's delete returned: a container started right then would be told to use the exiting
// shim. So the pod's task creations are serialized, and one that finds no task of the pod left
// waits for the pod's shim to stop listening (newPauseLessTask).
//
// The sandbox is Ready from RunPodSandbox until StopPodSandbox; a marker file in its state dir
// says so across restarts (it goes at the stop, before anything else).

// canRunPauseLess tells whether a pod can run without a pause process: its containers share no
// PID namespace, and its runtime is the runc shim (which groups a pod's containers without a
// sandbox task; other runtimes, VM-based ones among them, need their sandbox).
func canRunPauseLess(config *runtime.PodSandboxConfig, h legacy.RuntimeHandler) bool {
	return config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid() != runtime.NamespaceMode_POD &&
		groupsShims(h.Type)
}

// pauseLessReadyFile is the marker of a pause-less sandbox that is Ready.
const pauseLessReadyFile = "ready"

func (r *ContainerdRuntime) pauseLessReadyPath(id string) string {
	return filepath.Join(r.SandboxStateDir(id), pauseLessReadyFile)
}

// podNamespaces are the pinned namespaces of a pause-less sandbox.
func (s *podSandbox) podNamespaces() sandbox.PodNamespaces {
	return podNamespacesOf(s.config, s.files, s.meta.NetNSPath)
}

// podNamespacesOf are the pinned namespaces of a pause-less pod, with its gid mapping when it has a
// user namespace.
func podNamespacesOf(config *runtime.PodSandboxConfig, files sandbox.Files, netnsPath string) sandbox.PodNamespaces {
	ns := sandbox.PodNamespacesOf(config, files, netnsPath)
	if m := sandboxUsernsMapping(config); m != nil {
		gid := m.GID
		ns.GIDMap = &gid
	}
	return ns
}

// pauseLessSpec is the OCI spec recorded with a pause-less sandbox's container: no process, the
// namespaces its containers join, its hostname, sysctls and cgroup, and the sandbox annotations
// (which NRI plugins and the verbose status read, as a pause container's).
func pauseLessSpec(id, namespace string, config *runtime.PodSandboxConfig, ns sandbox.PodNamespaces, usernsPath string, driver cgroupdriver.Driver) *runtimespec.Spec {
	md := config.GetMetadata()
	spec := &runtimespec.Spec{
		Version:  runtimespec.Version,
		Hostname: config.GetHostname(),
		Annotations: map[string]string{
			sandbox.AnnotationContainerType:    sandbox.ContainerTypeSandbox,
			sandbox.AnnotationSandboxID:        id,
			sandbox.AnnotationSandboxName:      md.GetName(),
			sandbox.AnnotationSandboxNamespace: md.GetNamespace(),
			sandbox.AnnotationSandboxUID:       md.GetUid(),
			sandbox.AnnotationSandboxLogDir:    config.GetLogDirectory(),
		},
		Linux: &runtimespec.Linux{Sysctl: config.GetLinux().GetSysctls()},
	}
	spec.Linux.CgroupsPath = driver.CgroupsPath(config.GetLinux().GetCgroupParent(), id)
	if spec.Linux.CgroupsPath == "" {
		// containerd's default, which a pause container without a parent would have had.
		spec.Linux.CgroupsPath = path.Join("/", namespace, id)
	}
	add := func(t runtimespec.LinuxNamespaceType, path string) {
		if path != "" {
			spec.Linux.Namespaces = append(spec.Linux.Namespaces, runtimespec.LinuxNamespace{Type: t, Path: path})
		}
	}
	add(runtimespec.NetworkNamespace, ns.Net)
	add(runtimespec.IPCNamespace, ns.IPC)
	add(runtimespec.UTSNamespace, ns.UTS)
	add(runtimespec.UserNamespace, usernsPath)
	return spec
}

// ensurePodCgroup makes the pod's cgroup parent under the cgroupfs driver, as runc makes the
// parents of a pause container's cgroup: the pod's resources are written there before any of its
// containers runs. (The kubelet makes it first; under systemd its slice is the kubelet's, or
// systemd's when the first container's scope is made.)
func (r *ContainerdRuntime) ensurePodCgroup(config *runtime.PodSandboxConfig) error {
	parent, ok := cgroupdriver.ParentDir(config.GetLinux().GetCgroupParent())
	if !ok || r.opts.CgroupDriver.IsSystemd() {
		return nil
	}
	fs := cgroupstats.DetectCgroupFS()
	if fs == nil {
		return nil
	}
	var roots []string
	if fs.Unified {
		roots = append(roots, fs.V2Root)
	} else {
		for _, root := range fs.V1 {
			roots = append(roots, root)
		}
	}
	for _, root := range roots {
		if err := os.MkdirAll(filepath.Join(root, filepath.Clean("/"+parent)), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// checkPauseLessSysctls refuses, before anything is made, sysctls that are not in a namespace of
// the pod's own.
func checkPauseLessSysctls(config *runtime.PodSandboxConfig) error {
	ns := sandbox.PodNamespacesOf(config, sandbox.Files{IPCNS: "ipc", UTSNS: "uts"}, "net")
	if _, err := ns.CheckSysctls(config.GetLinux().GetSysctls()); err != nil {
		return fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
	}
	return nil
}

// createPodRecord makes the sandbox's containerd container: its record and metadata, no snapshot,
// no task.
func (s *sandboxRun) createPodRecord(ctx context.Context) error {
	r, id, md := s.r, s.id, s.config.GetMetadata()
	ns := sandbox.PodNamespacesOf(s.config, s.sb.files, s.sb.meta.NetNSPath)
	spec := pauseLessSpec(id, r.namespace, s.config, ns, usernsPinnedPath(s.userns, s.sb.files), r.opts.CgroupDriver)
	if err := r.ensurePodCgroup(s.config); err != nil {
		return s.failStart(fmt.Errorf("the pod's cgroup parent: %w", err))
	}
	labels := sandboxLabels(id, md)
	s.copyMeta = s.sb.meta
	stopTimer := stepTimer(&s.times.container)
	rec, err := podRecord(id, labels, spec, &s.copyMeta, s.handler)
	if err == nil {
		// Straight to the store: no snapshot to protect, so no lease around it (the client's
		// NewContainer takes one).
		_, err = r.client.ContainerService().Create(ctx, rec)
	}
	if err != nil {
		return s.failStart(fmt.Errorf("create the sandbox's container record: %w", err))
	}
	s.undo = append(s.undo, func(cctx context.Context) {
		if err := r.client.ContainerService().Delete(cctx, id); err != nil && !errdefs.IsNotFound(err) {
			s.log.WithError(err).Warn("undo: delete the sandbox's container record")
		}
	})
	stopTimer()
	if b, err := json.Marshal(spec); err == nil {
		s.pauseSpec = b
		saveSpecJSON(s.rootDir, b)
	}
	s.recordNetwork(ctx)
	return nil
}

// podRecord is the containerd container of a pause-less sandbox.
func podRecord(id string, labels map[string]string, spec *runtimespec.Spec, meta *sandboxMetadata, h legacy.RuntimeHandler) (containers.Container, error) {
	specAny, err := typeurl.MarshalAny(spec)
	if err != nil {
		return containers.Container{}, err
	}
	metaAny, err := typeurl.MarshalAny(meta)
	if err != nil {
		return containers.Container{}, err
	}
	c := containers.Container{
		ID: id, Labels: labels, Spec: specAny,
		Runtime:    containers.RuntimeInfo{Name: h.Type},
		Extensions: map[string]typeurl.Any{sandboxExtensionID: metaAny},
	}
	if h.Options != nil {
		if c.Runtime.Options, err = typeurl.MarshalAny(h.Options); err != nil {
			return containers.Container{}, err
		}
	}
	return c, nil
}

// pinNamespaces pins the pod's IPC and UTS namespaces (a pod with a user namespace got them with
// its network namespace), then sets its hostname and sysctls in them.
func (s *sandboxRun) pinNamespaces(ctx context.Context) error {
	if err := s.netnsMade.wait(); err != nil {
		return s.failNet(err)
	}
	stopTimer := stepTimer(&s.times.task)
	ns := podNamespacesOf(s.config, s.sb.files, s.sb.meta.NetNSPath)
	if s.userns == nil {
		if err := sandbox.PinIPCUTS(ns.IPC, ns.UTS); err != nil {
			return s.failStart(fmt.Errorf("pin the pod's namespaces: %w", err))
		}
	}
	// The undo of the pod's files unpins them (Files.Cleanup).
	if err := ns.SetUp(s.config.GetHostname(), s.config.GetLinux().GetSysctls()); err != nil {
		return s.failStart(fmt.Errorf("set up the pod's namespaces: %w", err))
	}
	s.result.AddSyncResult(s.startResult)
	stopTimer()
	return nil
}

// markPinnedReady writes the marker of a Ready pause-less sandbox (for restart recovery).
func (s *sandboxRun) markPinnedReady(context.Context) error {
	p := s.r.pauseLessReadyPath(s.id)
	err := os.MkdirAll(filepath.Dir(p), 0o711)
	if err == nil {
		err = os.WriteFile(p, nil, 0o600)
	}
	if err != nil {
		s.startResult.FailErr(legacy.ErrRunContainer, err)
		return err
	}
	return nil
}

// stopPauseLess marks a pause-less sandbox not Ready: the first thing its stop does.
func (r *ContainerdRuntime) stopPauseLess(id string) error {
	if err := os.Remove(r.pauseLessReadyPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// pauseLessReady tells whether a recovered pause-less sandbox is still Ready: set up whole, not
// stopped, and its namespaces still pinned (a reboot takes them).
func (r *ContainerdRuntime) pauseLessReady(sb *podSandbox) bool {
	if !sb.meta.NetworkReady {
		return false
	}
	if _, err := os.Stat(r.pauseLessReadyPath(sb.meta.ID)); err != nil {
		return false
	}
	ns := sb.podNamespaces()
	for _, p := range []string{ns.Net, ns.IPC, ns.UTS} {
		if p != "" && !sandbox.Pinned(p) {
			return false
		}
	}
	return true
}

// podNSOf is the pinned namespaces a container of the sandbox joins; nil when it has a pause
// process, whose namespaces the container joins.
func podNSOf(sb *podSandbox) *sandbox.PodNamespaces {
	if !sb.meta.PauseLess {
		return nil
	}
	ns := sb.podNamespaces()
	return &ns
}

// shimExitWait bounds the wait for the exiting shim of a pod without tasks; shimStartTries and
// shimStartRetryDelay the new tries of a task whose shim went away under its start all the same.
const (
	shimExitWait        = 5 * time.Second
	shimStartTries      = 3
	shimStartRetryDelay = 50 * time.Millisecond
)

// newPauseLessTask creates the task of a container in a pod without a pause process: in the pod's
// shim by its address once it runs (pod_shim.go), else through the shim binary, which starts the
// pod's shim once one that is exiting is gone.
func (r *ContainerdRuntime) newPauseLessTask(ctx context.Context, sb *podSandbox, c *podContainer, ctrIO *containerIO, restoreOpts []containerd.NewTaskOpts) (uint32, containerd.Task, error) {
	sb.taskMu.Lock()
	defer sb.taskMu.Unlock()
	if shim := r.podShimForTask(ctx, sb); shim != nil {
		pid, task, err := r.newContainerTask(ctx, c, ctrIO, restoreOpts, shim)
		if err == nil || shimListening(r.shimSocket(sb.meta.ID)) {
			return pid, task, err
		}
		// The shim went away under the create (containerd made nothing): start one.
		logrus.WithError(err).WithField("container", c.meta.ID).Info("the pod's shim went away under the task's create: starting one")
		r.forgetPodShim(ctx, sb)
	}
	if err := r.awaitExitingShim(ctx, sb.meta.ID, c.meta.ID); err != nil {
		return 0, nil, err
	}
	pid, task, err := r.newContainerTask(ctx, c, ctrIO, restoreOpts, nil)
	for try := 0; err != nil && shimGoingAway(err) && try < shimStartTries; try++ {
		logrus.WithError(err).WithField("container", c.meta.ID).Debug("the pod's shim went away under the task's start: again")
		time.Sleep(shimStartRetryDelay)
		pid, task, err = r.newContainerTask(ctx, c, ctrIO, restoreOpts, nil)
	}
	if err == nil {
		r.notePodShimUp(ctx, sb)
	}
	return pid, task, err
}

// awaitExitingShim waits, when no container of the sandbox but self has a task, for the pod's shim
// to stop listening: that shim is exiting.
func (r *ContainerdRuntime) awaitExitingShim(ctx context.Context, sandboxID, self string) error {
	sock := r.shimSocket(sandboxID)
	if !shimListening(sock) {
		return nil // no shim: the task starts one
	}
	resp, err := r.client.TaskService().List(ctx, &tasks.ListTasksRequest{})
	if err != nil {
		return fmt.Errorf("list tasks: %w", err)
	}
	mine := map[string]bool{}
	for _, pc := range r.ctrs().store.ofSandbox(sandboxID) {
		mine[pc.meta.ID] = pc.meta.ID != self
	}
	for _, t := range resp.GetTasks() {
		if mine[t.GetID()] {
			return nil // the shim serves the pod's tasks
		}
	}
	deadline := time.Now().Add(shimExitWait)
	for {
		if !shimListening(sock) {
			return nil
		}
		if time.Now().After(deadline) {
			// Not exiting after all: the task joins it.
			logrus.WithField("sandbox", sandboxID).Warn("the pod's shim serves no task and did not exit")
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// shimListening tells whether a shim listens on sock (an exiting shim may leave its socket file).
func shimListening(sock string) bool {
	if sock == "" {
		return false
	}
	conn, err := net.DialTimeout("unix", sock, 100*time.Millisecond)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// shimGoingAway tells whether a task's creation failed because the shim of its group was exiting:
// containerd found no shim to connect to, and created nothing.
func shimGoingAway(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "failed to start shim") &&
		(strings.Contains(msg, "connection refused") || strings.Contains(msg, "no such file or directory"))
}
