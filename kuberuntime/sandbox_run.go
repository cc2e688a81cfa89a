package kuberuntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/sandbox"
	"github.com/opencontainers/image-spec/identity"
	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// background is the outcome of a function run in a goroutine of its own; wait returns it, to any
// number of callers.
type background[T any] struct {
	done chan struct{}
	v    T
}

func inBackground[T any](f func() T) *background[T] {
	b := &background[T]{done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.v = f()
	}()
	return b
}

// ready is a background outcome known already.
func ready[T any](v T) *background[T] {
	b := &background[T]{done: make(chan struct{}), v: v}
	close(b.done)
	return b
}

func (b *background[T]) wait() T {
	<-b.done
	return b.v
}

// cleanupTimeout bounds the undo of a failed operation, which runs even when the request's context
// is cancelled.
const cleanupTimeout = time.Minute

// RunPodSandbox creates and starts a pod sandbox. The pod's network namespace is set up by CNI while
// the pause container's task is created and started; the sandbox is ready when both are done.
func (r *ContainerdRuntime) RunPodSandbox(ctx context.Context, config *runtime.PodSandboxConfig, runtimeHandler string) (string, legacy.PodSyncResult) {
	run, err := r.newSandboxRun(ctx, config, runtimeHandler)
	if err != nil {
		var result legacy.PodSyncResult
		result.Fail(err)
		return "", result
	}
	if err := r.sandboxes.reserve(run.name, run.id); err != nil {
		run.result.Fail(err)
		return "", run.result
	}
	ctx = r.withNS(ctx)
	defer run.finish(ctx)
	run.times.start = time.Now()
	steps := []func(context.Context) error{
		run.ensureImage,
		run.makeRecordAndFiles,
		run.startNetwork,
		run.createPauseContainer,
		run.createPauseTask,
		run.startPauseTask,
		run.awaitNetwork,
		run.awaitSandboxRecord,
	}
	if run.pauseLess {
		steps = []func(context.Context) error{ // sandbox_pauseless.go
			run.makeRecordAndFiles,
			run.startNetwork,
			run.createPodRecord,
			run.pinNamespaces,
			run.awaitNetwork,
			run.markPinnedReady,
		}
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return "", run.result // the step recorded its failure
		}
	}
	run.markReady()
	// NRI plugins learn of the pod before it is listed; one that fails the hook fails the pod.
	defer r.nriBlockSync().Unblock()
	if err := r.nriRunPodSandboxBlocked(ctx, run.sb, run.pauseSpec); err != nil {
		run.startResult.FailErr(legacy.ErrRunContainer, err)
		return "", run.result
	}
	run.publish()
	return run.id, run.result
}

// sandboxRun is one RunPodSandbox call: the pod, what its steps made so far, and the undo of that.
// Each step records its own failure in result and returns it.
type sandboxRun struct {
	r       *ContainerdRuntime
	config  *runtime.PodSandboxConfig
	handler legacy.RuntimeHandler
	// runtimeHandler is the handler's name as the sandbox records it (the default's when empty).
	runtimeHandler string
	userns         *legacy.PodUsernsMapping
	hostNet        bool
	// pauseLess: the pod runs no pause process (sandbox_pauseless.go).
	pauseLess   bool
	id, name    string
	log         *logrus.Entry
	result      legacy.PodSyncResult
	netResult   *legacy.SyncResult
	startResult *legacy.SyncResult

	// undo collects the steps to take back, last first, when the sandbox fails.
	undo   []func(context.Context)
	failed bool
	// releaseRootfs tells, once the pause task is made or undone, that the shared pause rootfs
	// may be unmounted as far as this call is concerned (pause_rootfs.go).
	releaseRootfs func()

	// Of ensureImage.
	imageName, chainID string
	imgCfg             imagespec.ImageConfig
	// Of makeRecordAndFiles.
	sb        *podSandbox
	rawConfig []byte
	rootDir   string
	files     *background[error]
	// Of startNetwork.
	netnsMade *background[error]
	network   *background[netOutcome]
	// Of createPauseContainer.
	container   containerd.Container // nil when made record first (fast_create.go)
	rootfs      []mount.Mount
	pauseSpec   []byte
	copyMeta    sandboxMetadata
	sbRecord    *background[error]
	netRecorded *background[error]
	// Of startPauseTask.
	pausePid uint32

	times sandboxTimes
}

// netOutcome is the pod network's setup: nil res for the host's network.
type netOutcome struct {
	res *sandbox.NetworkResult
	err error
}

// sandboxTimes are the durations of RunPodSandbox's steps, logged when the sandbox is ready.
type sandboxTimes struct {
	start                                                         time.Time
	image, files, netNS, cni, container, task, startTask, waitNet time.Duration
}

// stepTimer sets *d to the time since now when the returned function is called.
func stepTimer(d *time.Duration) func() {
	t := time.Now()
	return func() { *d = time.Since(t) }
}

// newSandboxRun checks the request and resolves its runtime handler: nothing is made yet.
func (r *ContainerdRuntime) newSandboxRun(ctx context.Context, config *runtime.PodSandboxConfig, runtimeHandler string) (*sandboxRun, error) {
	if err := legacy.ValidateSandboxConfig(config); err != nil {
		return nil, err
	}
	if err := r.opts.CgroupDriver.CheckParent(config.GetLinux().GetCgroupParent()); err != nil {
		return nil, err
	}
	md := config.GetMetadata()
	handler, ok := r.handlers[runtimeHandler]
	if !ok {
		return nil, r.unknownHandler(runtimeHandler)
	}
	if runtimeHandler == "" {
		runtimeHandler = handler.Name
	}
	userns := sandboxUsernsMapping(config)
	if err := r.checkUsernsHandler(ctx, userns, handler); err != nil {
		return nil, err
	}
	fullName := legacy.BuildPodFullName(md.GetName(), md.GetNamespace())
	hostNet := config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
	if !hostNet && r.net == nil {
		return nil, fmt.Errorf("no pod network is configured: %w", errdefs.ErrFailedPrecondition)
	}
	pauseLess := r.opts.PauseLessPods && canRunPauseLess(config, handler)
	if pauseLess {
		if err := checkPauseLessSysctls(config); err != nil {
			return nil, err
		}
	}
	id := newID()
	return &sandboxRun{
		r: r, config: config, handler: handler, runtimeHandler: runtimeHandler, userns: userns, hostNet: hostNet,
		pauseLess: pauseLess,
		id:        id, name: nameKey(md), failed: true, releaseRootfs: func() {},
		log:         logrus.WithFields(logrus.Fields{"sandbox": id, "pod": fullName}),
		netResult:   legacy.NewSyncResult(legacy.SetupNetwork, fullName),
		startResult: legacy.NewSyncResult(legacy.StartContainer, fullName),
		network:     ready(netOutcome{}), // the host's network
		netnsMade:   ready(error(nil)),
	}, nil
}

// failNet records a failure of the pod network.
func (s *sandboxRun) failNet(err error) error {
	s.netResult.FailErr(legacy.ErrSetupNetwork, err)
	s.result.AddSyncResult(s.netResult)
	return err
}

// failStart records a failure of the pause container, and the network's outcome once CNI is done.
func (s *sandboxRun) failStart(err error) error {
	s.startResult.FailErr(legacy.ErrRunContainer, err)
	s.result.AddSyncResult(s.startResult)
	if o := s.network.wait(); o.err != nil {
		s.netResult.FailErr(legacy.ErrSetupNetwork, o.err)
	}
	s.result.AddSyncResult(s.netResult)
	return err
}

// finish takes back, last first, what the steps made when the sandbox failed, even when ctx is
// cancelled; the sandbox's name is then free again.
func (s *sandboxRun) finish(ctx context.Context) {
	defer s.releaseRootfs()
	if !s.failed {
		return
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i](cctx)
	}
	s.r.sandboxes.release(s.name, s.id)
}

// ensureImage makes the sandbox image present and unpacked for the handler's snapshotter.
func (s *sandboxRun) ensureImage(ctx context.Context) (err error) {
	defer stepTimer(&s.times.image)()
	s.imageName, s.imgCfg, s.chainID, err = s.r.sandboxImage(ctx, s.handler)
	if err != nil {
		err = fmt.Errorf("sandbox image %s: %w", s.r.opts.SandboxImage, err)
		s.result.Fail(err)
	}
	return err
}

// makeRecordAndFiles makes the sandbox's record and starts writing the pod's files (hostname,
// resolv.conf, shm), which go on while the network namespace and the container are made.
func (s *sandboxRun) makeRecordAndFiles(context.Context) error {
	r, config := s.r, s.config
	rawConfig, err := proto.Marshal(config)
	if err != nil {
		s.result.Fail(err)
		return err
	}
	s.rawConfig = rawConfig
	s.sb = &podSandbox{
		config: config,
		meta: sandboxMetadata{
			ID: s.id, Config: rawConfig, RuntimeHandler: s.runtimeHandler, RuntimeType: s.handler.Type,
			Image: r.opts.SandboxImage, CreatedAt: time.Now(), PauseLess: s.pauseLess,
		},
	}
	hostIPC := config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE
	rootDir, stateDir := r.SandboxRootDir(s.id), r.SandboxStateDir(s.id)
	s.rootDir = rootDir
	s.sb.files = sandbox.PodFiles(rootDir, stateDir, hostIPC)
	s.undo = append(s.undo, func(context.Context) {
		if err := s.sb.files.Cleanup(); err != nil {
			s.log.WithError(err).Warn("undo: unmount pod shm")
		}
		os.RemoveAll(rootDir)
		os.RemoveAll(stateDir)
	})
	s.files = inBackground(func() error {
		defer stepTimer(&s.times.files)()
		return s.sb.files.Write(config, r.opts.ShmSize)
	})
	// The undo of the files must not run before their writing is over.
	s.undo = append(s.undo, func(context.Context) { s.files.wait() })
	return nil
}

// startNetwork starts the pod's network: a pinned namespace, then CNI ADD, in the background.
// Without a user namespace the namespace's path is known ahead, and it is made while the pause
// container's record is (the task, made later, needs it); with one it is made first (it pins the
// user namespace).
func (s *sandboxRun) startNetwork(ctx context.Context) error {
	r, id := s.r, s.id
	if !s.hostNet {
		nsPath := r.podNetNSPath(id)
		makeNetNS := func() error {
			defer stepTimer(&s.times.netNS)()
			_, err := r.newPodNetNS(id, s.userns, s.sb.files, s.pauseLess)
			return err
		}
		if s.userns == nil {
			s.netnsMade = inBackground(makeNetNS)
		} else if err := makeNetNS(); err != nil {
			return s.failNet(err)
		}
		s.sb.meta.NetNSPath = nsPath
		netnsMade := s.netnsMade
		s.undo = append(s.undo, func(context.Context) {
			if netnsMade.wait() != nil {
				return
			}
			if err := sandbox.RemoveNetNS(nsPath); err != nil {
				s.log.WithError(err).Warn("undo: remove netns")
			}
		})
		s.network = inBackground(func() netOutcome {
			if err := netnsMade.wait(); err != nil {
				return netOutcome{err: err}
			}
			defer stepTimer(&s.times.cni)()
			res, err := r.setupPodNetwork(ctx, id, nsPath, s.rawConfig, s.config)
			return netOutcome{res, err}
		})
		// Whatever CNI ADD did, partly or wholly, DEL takes back (after the ADD has returned).
		s.undo = append(s.undo, func(cctx context.Context) {
			if netnsMade.wait() != nil {
				return // no ADD ran
			}
			if err := r.net.Teardown(cctx, id, nsPath, s.config); err != nil {
				s.log.WithError(err).Warn("undo: CNI DEL")
			}
		})
	}
	// The CNI goroutine must have returned before any undo runs.
	network := s.network
	s.undo = append(s.undo, func(context.Context) { network.wait() })
	return nil
}

// createPauseContainer makes the pause container's record and rootfs, the sandbox's record in
// containerd's sandbox store (in the background), and starts recording the network in the
// container's metadata as soon as CNI is done.
func (s *sandboxRun) createPauseContainer(ctx context.Context) error {
	r, id, config, md := s.r, s.id, s.config, s.config.GetMetadata()
	snapshotter := snapshotterOr(s.handler.Snapshotter)
	// The pause rootfs is shared by all pods but those with a user namespace (whose rootfs is
	// idmapped): pause_rootfs.go.
	var sharedRootfs string
	if s.userns == nil {
		rootfs, release, err := r.sharedPauseRootfs(ctx, snapshotter, s.chainID)
		if err != nil {
			return s.failStart(err)
		}
		sharedRootfs, s.releaseRootfs = rootfs, release
	}
	specOpts, err := sandbox.SpecOpts(sandbox.SpecInput{
		ID: id, Config: config, Image: s.imgCfg, ImageName: r.opts.SandboxImage,
		NetNSPath: s.sb.meta.NetNSPath, Files: s.sb.files, OOMScoreAdj: sandbox.DefaultSandboxOOMScoreAdj,
		UsernsPath: usernsPinnedPath(s.userns, s.sb.files), RootfsPath: sharedRootfs, CgroupDriver: r.opts.CgroupDriver,
	})
	if err != nil {
		return s.failStart(fmt.Errorf("sandbox spec: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	specOpts = r.handlerSpec(s.runtimeHandler).sandboxSpecOpts(config, specOpts)
	labels := sandboxLabels(id, md)
	if groupsShims(s.handler.Type) {
		s.sb.meta.GroupedShim = true // shim_grouping.go
	}
	s.copyMeta = s.sb.meta
	stopTimer := stepTimer(&s.times.container)
	// The record first and then the snapshot (fast_create.go); the general path when the spec needs
	// the rootfs (a user looked up in the image's files) or an option failed (its error then).
	snapOpts := usernsSnapshotOpts(s.userns)
	newOpts := []containerd.NewContainerOpts{
		containerd.WithNewSpec(specOpts...),
		containerd.WithContainerLabels(labels),
		containerd.WithContainerExtension(sandboxExtensionID, &s.copyMeta),
		containerd.WithRuntime(s.handler.Type, s.handler.Options),
	}
	parent := s.chainID
	if sharedRootfs != "" {
		parent = "" // no snapshot of its own
	}
	s.rootfs, s.pauseSpec, err = r.newContainerRecordFirst(ctx, id, s.imageName, snapshotter, parent, snapOpts, newOpts...)
	var optsErr *recordOptsError
	if errors.As(err, &optsErr) && sharedRootfs == "" {
		s.log.WithError(err).Debug("pause container: general path")
		s.container, err = r.client.NewContainer(ctx, id, append([]containerd.NewContainerOpts{
			containerd.WithSnapshotter(snapshotter),
			withSnapshotFrom(id, s.imageName, snapshotter, s.chainID, snapOpts...),
		}, newOpts...)...)
	}
	if err != nil {
		return s.failStart(fmt.Errorf("create pause container: %w", err))
	}
	s.undo = append(s.undo, func(cctx context.Context) {
		if err := r.deleteContainerRecord(cctx, id, snapshotter); err != nil {
			s.log.WithError(err).Warn("undo: delete pause container")
		}
	})
	stopTimer()
	// The record in containerd's sandbox store (shim_grouping.go), while the pause task is made
	// (not with the container record: containerd's metadata writes are serialized).
	if s.sb.meta.GroupedShim {
		sbRecord := inBackground(func() error { return r.createSandboxRecord(ctx, id, s.handler.Type) })
		s.sbRecord = sbRecord
		s.undo = append(s.undo, func(cctx context.Context) {
			if sbRecord.wait() == nil {
				if err := r.deleteSandboxRecord(cctx, id); err != nil {
					s.log.WithError(err).Warn("undo: delete the sandbox record")
				}
			}
		})
	}
	// The spec for the verbose status (spec_file.go).
	if s.container != nil {
		saveSpecFile(ctx, s.rootDir, s.container)
	} else {
		saveSpecJSON(s.rootDir, s.pauseSpec)
	}
	s.recordNetwork(ctx)
	return nil
}

// recordNetwork records the pod's network in the sandbox's container metadata as soon as CNI is
// done, while the next steps run.
func (s *sandboxRun) recordNetwork(ctx context.Context) {
	r, id := s.r, s.id
	network := s.network
	s.netRecorded = inBackground(func() error {
		o := network.wait()
		if o.err != nil {
			return nil // reported by awaitNetwork
		}
		m := s.copyMeta
		m.NetworkReady = true
		if !s.hostNet {
			m.IP, m.AdditionalIPs = o.res.IP, o.res.AdditionalIPs
		}
		return r.updateSandboxMetadata(ctx, id, &m)
	})
	netRecorded := s.netRecorded
	s.undo = append(s.undo, func(context.Context) { netRecorded.wait() })
}

// createPauseTask creates the pause container's task, once the network namespace it joins is there.
func (s *sandboxRun) createPauseTask(ctx context.Context) error {
	if err := s.netnsMade.wait(); err != nil {
		return s.failNet(err)
	}
	stopTimer := stepTimer(&s.times.task)
	var err error
	if s.container == nil {
		nullIO, _ := cio.NullIO(s.id)
		_, err = s.r.createTask(ctx, s.id, s.rootfs, nullIO, nil)
	} else {
		_, err = s.container.NewTask(ctx, cio.NullIO)
	}
	if err != nil {
		return s.failStart(fmt.Errorf("create pause task: %w", err))
	}
	s.undo = append(s.undo, func(cctx context.Context) {
		if err := s.r.killDeleteTask(cctx, s.id); err != nil {
			s.log.WithError(err).Warn("undo: delete pause task")
		}
	})
	stopTimer()
	return nil
}

// startPauseTask starts the pause process; the pod's files must be written by then.
func (s *sandboxRun) startPauseTask(ctx context.Context) error {
	stopTimer := stepTimer(&s.times.startTask)
	pausePid, err := s.r.startTask(ctx, s.id)
	if err != nil {
		return s.failStart(fmt.Errorf("start pause task: %w", err))
	}
	s.pausePid = pausePid
	s.result.AddSyncResult(s.startResult)
	stopTimer()
	return nil
}

// awaitNetwork waits for the pod's files, then for CNI and the network's record in the container.
func (s *sandboxRun) awaitNetwork(context.Context) error {
	if err := s.files.wait(); err != nil {
		return s.failStart(fmt.Errorf("sandbox files: %w", err))
	}
	stopTimer := stepTimer(&s.times.waitNet)
	o := s.network.wait()
	stopTimer()
	if o.err != nil {
		return s.failNet(o.err)
	}
	if !s.hostNet {
		s.sb.meta.IP, s.sb.meta.AdditionalIPs = o.res.IP, o.res.AdditionalIPs
		s.sb.cni = o.res
	}
	s.sb.meta.NetworkReady = true
	if err := s.netRecorded.wait(); err != nil {
		return s.failNet(fmt.Errorf("record the pod network: %w", err))
	}
	s.result.AddSyncResult(s.netResult)
	return nil
}

// awaitSandboxRecord waits for the record in containerd's sandbox store, when there is one.
func (s *sandboxRun) awaitSandboxRecord(context.Context) error {
	if s.sbRecord == nil {
		return nil
	}
	if err := s.sbRecord.wait(); err != nil {
		err = fmt.Errorf("record the sandbox in containerd: %w", err)
		s.startResult.FailErr(legacy.ErrRunContainer, err)
		return err
	}
	return nil
}

// markReady sets the sandbox's state: ready, with its pause process and network.
func (s *sandboxRun) markReady() {
	s.sb.state, s.sb.pid, s.sb.netUp = legacy.SandboxStateReady, s.pausePid, !s.hostNet
}

// publish lists the ready sandbox and tells of it: as containerd's CRI, created and started, both
// once the sandbox is ready, before its exit is watched (its stopped event comes after them).
func (s *sandboxRun) publish() {
	r, sb := s.r, s.sb
	s.failed = false
	r.sandboxes.add(sb)
	r.podSandboxChanged(sb, time.Now())
	r.emitSandboxEvent(legacy.ContainerEventCreated, sb)
	r.emitSandboxEvent(legacy.ContainerEventStarted, sb)
	if !sb.meta.PauseLess {
		r.monitorExit(sb, nil) // its own Wait call: it returns the exit status even after the exit
	}
	t := s.times
	s.log.WithFields(logrus.Fields{"ip": sb.meta.IP, "pid": sb.pid, "total": time.Since(t.start), "image": t.image,
		"files": t.files, "netns": t.netNS, "cni": t.cni, "container": t.container, "task": t.task, "start": t.startTask,
		"wait_net": t.waitNet}).Debug("sandbox ready")
}

// updateSandboxMetadata replaces the sandbox's metadata in its containerd container (one write).
func (r *ContainerdRuntime) updateSandboxMetadata(ctx context.Context, id string, meta *sandboxMetadata) error {
	ext, err := typeurl.MarshalAny(meta)
	if err != nil {
		return err
	}
	_, err = r.client.ContainerService().Update(ctx, containers.Container{
		ID: id, Extensions: map[string]typeurl.Any{sandboxExtensionID: ext},
	}, "extensions."+sandboxExtensionID)
	return err
}

// monitorExit marks the sandbox NotReady when its pause task exits. With exitCh nil (the usual
// case) the exit comes from the runtime's exit monitor (exit_monitor.go); otherwise from exitCh, a
// task.Wait of the caller's.
func (r *ContainerdRuntime) monitorExit(sb *podSandbox, exitCh <-chan containerd.ExitStatus) {
	if exitCh == nil {
		pid := sb.snapshot().pid
		r.exitMonitor().Watch(sb.meta.ID, pid, func(_ uint32, at time.Time, _ bool) {
			if at.IsZero() {
				at = time.Now()
			}
			if sb.setStopped(at) {
				r.emitSandboxEvent(legacy.ContainerEventStopped, sb)
			}
			r.podSandboxChanged(sb, time.Now())
		})
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		select {
		case st := <-exitCh:
			if st.Error() != nil && (errors.Is(st.Error(), context.Canceled) || r.bg.Err() != nil) {
				return
			}
			if st.Error() != nil {
				// containerd went away: the exit monitor finds out once it is back.
				r.rewatch(sb)
				return
			}
			if sb.setStopped(st.ExitTime()) {
				r.emitSandboxEvent(legacy.ContainerEventStopped, sb)
			}
			r.podSandboxChanged(sb, time.Now())
		case <-r.bg.Done():
		}
	}()
}

// rewatch watches the pause task again after a wait of its own failed (containerd restarted).
func (r *ContainerdRuntime) rewatch(sb *podSandbox) { r.monitorExit(sb, nil) }

// sandboxImage returns the sandbox image, pulled when absent and unpacked for the handler's
// snapshotter, with its config.
func (r *ContainerdRuntime) sandboxImage(ctx context.Context, h legacy.RuntimeHandler) (string, imagespec.ImageConfig, string, error) {
	ref := r.opts.SandboxImage
	// From the image index in memory when it has the image (no containerd round trip).
	if ci, err := r.localImage(ctx, ref); err == nil && ci.ChainID != "" {
		if err := r.ensureUnpacked(ctx, ci, snapshotterOr(h.Snapshotter)); err == nil {
			return ci.Name, ci.Config, ci.ChainID, nil
		}
	}
	img, err := r.client.GetImage(ctx, ref)
	if errdefs.IsNotFound(err) {
		if _, perr := r.images.PullImage(ctx, legacy.ImageSpec{Image: ref, RuntimeHandler: h.Name}, nil, nil); perr != nil {
			return "", imagespec.ImageConfig{}, "", fmt.Errorf("pull: %w", perr)
		}
		img, err = r.client.GetImage(ctx, ref)
	}
	if err != nil {
		return "", imagespec.ImageConfig{}, "", err
	}
	key := img.Target().Digest.String()
	rec, ok := r.imgCache.image(key)
	if !ok {
		spec, err := img.Spec(ctx)
		if err != nil {
			return "", imagespec.ImageConfig{}, "", fmt.Errorf("image config: %w", err)
		}
		diffIDs, err := img.RootFS(ctx)
		if err != nil {
			return "", imagespec.ImageConfig{}, "", fmt.Errorf("image rootfs: %w", err)
		}
		rec = imageRecord{config: spec.Config, chainID: identity.ChainID(diffIDs).String()}
		r.imgCache.addImage(key, rec)
	}
	snapshotter := snapshotterOr(h.Snapshotter)
	if !r.imgCache.isUnpacked(snapshotter, rec.chainID) {
		ok, err := img.IsUnpacked(ctx, snapshotter)
		if err != nil {
			return "", imagespec.ImageConfig{}, "", fmt.Errorf("image unpacked: %w", err)
		}
		if !ok {
			if err := img.Unpack(ctx, snapshotter); err != nil {
				return "", imagespec.ImageConfig{}, "", fmt.Errorf("unpack: %w", err)
			}
		}
		r.imgCache.setUnpacked(snapshotter, rec.chainID)
	}
	return img.Name(), rec.config, rec.chainID, nil
}

// withSnapshotFrom prepares the container's writable snapshot on the image's unpacked layers
// (chainID, cached per image) without reading the image's manifest and config again; opts label it
// (e.g. the idmapping of a pod with a user namespace).
func withSnapshotFrom(id, imageName, snapshotter, chainID string, opts ...snapshots.Opt) containerd.NewContainerOpts {
	return func(ctx context.Context, client *containerd.Client, c *containers.Container) error {
		if _, err := client.SnapshotService(snapshotter).Prepare(ctx, id, chainID, opts...); err != nil {
			return fmt.Errorf("prepare snapshot: %w", err)
		}
		c.SnapshotKey = id
		c.Image = imageName
		return nil
	}
}

func snapshotterOr(s string) string {
	if s == "" {
		return defaults.DefaultSnapshotter
	}
	return s
}

// sandboxLabels are the labels of a sandbox's containerd container, by which recovery finds it.
func sandboxLabels(id string, md *runtime.PodSandboxMetadata) map[string]string {
	return map[string]string{
		LabelKind:         KindSandbox,
		LabelSandboxID:    id,
		LabelPodName:      md.GetName(),
		LabelPodNamespace: md.GetNamespace(),
		LabelPodUID:       md.GetUid(),
		LabelAttempt:      strconv.FormatUint(uint64(md.GetAttempt()), 10),
	}
}
