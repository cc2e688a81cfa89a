package kuberuntime

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
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

func newSandboxID() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

// RunPodSandbox creates and starts a pod sandbox. The pod's network namespace is set up by CNI while
// the pause container's task is created and started; the sandbox is ready when both are done.
func (r *ContainerdRuntime) RunPodSandbox(ctx context.Context, config *runtime.PodSandboxConfig, runtimeHandler string) (_ string, result legacy.PodSyncResult) {
	if err := legacy.ValidateSandboxConfig(config); err != nil {
		result.Fail(err)
		return "", result
	}
	md := config.GetMetadata()
	handler, ok := r.handlers[runtimeHandler]
	if !ok {
		result.Fail(fmt.Errorf("unknown runtime handler %q: %w", runtimeHandler, errdefs.ErrInvalidArgument))
		return "", result
	}
	if runtimeHandler == "" {
		runtimeHandler = handler.Name
	}
	userns := sandboxUsernsMapping(config)
	if err := r.checkUsernsHandler(ctx, userns, handler); err != nil {
		result.Fail(err)
		return "", result
	}
	fullName := legacy.BuildPodFullName(md.GetName(), md.GetNamespace())
	hostNet := config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtime.NamespaceMode_NODE
	if !hostNet && r.net == nil {
		result.Fail(fmt.Errorf("no pod network is configured: %w", errdefs.ErrFailedPrecondition))
		return "", result
	}

	id := newSandboxID()
	name := nameKey(md)
	if err := r.sandboxes.reserve(name, id); err != nil {
		result.Fail(err)
		return "", result
	}
	ctx = r.withNS(ctx)
	// undo collects the steps to take back, last first, when the sandbox fails.
	var undo []func(context.Context)
	failed := true
	// releaseRootfs tells, once the pause task is made or undone, that the shared pause rootfs
	// may be unmounted as far as this call is concerned (pause_rootfs.go).
	releaseRootfs := func() {}
	defer func() {
		defer releaseRootfs()
		if !failed {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i](cctx)
		}
		r.sandboxes.release(name, id)
	}()
	log := logrus.WithFields(logrus.Fields{"sandbox": id, "pod": fullName})

	tStart := time.Now()
	var tImage, tFiles, tNetNS, tCNI, tContainer, tTask, tStartTask, tWaitNet time.Duration
	imageName, imgCfg, chainID, err := r.sandboxImage(ctx, handler)
	tImage = time.Since(tStart)
	if err != nil {
		result.Fail(fmt.Errorf("sandbox image %s: %w", r.opts.SandboxImage, err))
		return "", result
	}

	rawConfig, err := proto.Marshal(config)
	if err != nil {
		result.Fail(err)
		return "", result
	}
	sb := &podSandbox{
		config: config,
		meta: sandboxMetadata{
			ID: id, Config: rawConfig, RuntimeHandler: runtimeHandler, RuntimeType: handler.Type,
			Image: r.opts.SandboxImage, CreatedAt: time.Now(),
		},
	}
	hostIPC := config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetIpc() == runtime.NamespaceMode_NODE
	rootDir, stateDir := r.SandboxRootDir(id), r.SandboxStateDir(id)
	sb.files = sandbox.PodFiles(rootDir, stateDir, hostIPC)
	undo = append(undo, func(context.Context) {
		if err := sb.files.Cleanup(); err != nil {
			log.WithError(err).Warn("undo: unmount pod shm")
		}
		os.RemoveAll(rootDir)
		os.RemoveAll(stateDir)
	})
	// The pod's files are written while the network namespace and the container are made.
	files := inBackground(func() error {
		t := time.Now()
		err := sb.files.Write(config, r.opts.ShmSize)
		tFiles = time.Since(t)
		return err
	})
	// The undo of the files must not run before their writing is over.
	undo = append(undo, func(context.Context) { files.wait() })

	snapshotter := handler.Snapshotter
	if snapshotter == "" {
		snapshotter = defaults.DefaultSnapshotter
	}

	// The network: a pinned namespace, then CNI ADD, in the background. Without a user namespace
	// the namespace's path is known ahead, and it is made while the pause container's record is
	// (the task, made later, needs it); with one it is made first (it pins the user namespace).
	netResult := legacy.NewSyncResult(legacy.SetupNetwork, fullName)
	type netOutcome struct {
		res *sandbox.NetworkResult
		err error
	}
	network := ready(netOutcome{}) // the host's network
	netnsMade := ready(error(nil))
	if !hostNet {
		nsPath := r.podNetNSPath(id)
		makeNetNS := func() error {
			t := time.Now()
			_, err := r.newPodNetNS(id, userns, sb.files)
			tNetNS = time.Since(t)
			return err
		}
		if userns == nil {
			netnsMade = inBackground(makeNetNS)
		} else if err := makeNetNS(); err != nil {
			netResult.Fail(legacy.ErrSetupNetwork, err.Error())
			result.AddSyncResult(netResult)
			return "", result
		}
		sb.meta.NetNSPath = nsPath
		undo = append(undo, func(context.Context) {
			if netnsMade.wait() != nil {
				return
			}
			if err := sandbox.RemoveNetNS(nsPath); err != nil {
				log.WithError(err).Warn("undo: remove netns")
			}
		})
		network = inBackground(func() netOutcome {
			if err := netnsMade.wait(); err != nil {
				return netOutcome{err: err}
			}
			t := time.Now()
			res, err := r.setupPodNetwork(ctx, id, nsPath, rawConfig, config)
			tCNI = time.Since(t)
			return netOutcome{res, err}
		})
		// Whatever CNI ADD did, partly or wholly, DEL takes back (after the ADD has returned).
		undo = append(undo, func(cctx context.Context) {
			if netnsMade.wait() != nil {
				return // no ADD ran
			}
			if err := r.net.Teardown(cctx, id, nsPath, config); err != nil {
				log.WithError(err).Warn("undo: CNI DEL")
			}
		})
	}
	// The CNI goroutine must have returned before any undo runs.
	undo = append(undo, func(context.Context) { network.wait() })

	startResult := legacy.NewSyncResult(legacy.StartContainer, fullName)
	fail := func(err error) (string, legacy.PodSyncResult) {
		startResult.Fail(legacy.ErrRunContainer, err.Error())
		result.AddSyncResult(startResult)
		if o := network.wait(); o.err != nil {
			netResult.Fail(legacy.ErrSetupNetwork, o.err.Error())
		}
		result.AddSyncResult(netResult)
		return "", result
	}

	// The pause rootfs is shared by all pods but those with a user namespace (whose rootfs is
	// idmapped): pause_rootfs.go.
	var sharedRootfs string
	if userns == nil {
		var release func()
		if sharedRootfs, release, err = r.sharedPauseRootfs(ctx, snapshotter, chainID); err != nil {
			return fail(err)
		}
		releaseRootfs = release
	}
	specOpts, err := sandbox.SpecOpts(sandbox.SpecInput{
		ID: id, Config: config, Image: imgCfg, ImageName: r.opts.SandboxImage,
		NetNSPath: sb.meta.NetNSPath, Files: sb.files, OOMScoreAdj: sandbox.DefaultSandboxOOMScoreAdj,
		UsernsPath: usernsPinnedPath(userns, sb.files), RootfsPath: sharedRootfs,
	})
	if err != nil {
		return fail(fmt.Errorf("sandbox spec: %v: %w", err, errdefs.ErrInvalidArgument))
	}
	labels := map[string]string{
		LabelKind:         KindSandbox,
		LabelSandboxID:    id,
		LabelPodName:      md.GetName(),
		LabelPodNamespace: md.GetNamespace(),
		LabelPodUID:       md.GetUid(),
		LabelAttempt:      strconv.FormatUint(uint64(md.GetAttempt()), 10),
	}
	if groupsShims(handler.Type) {
		sb.meta.GroupedShim = true // shim_grouping.go
	}
	copyMeta := sb.meta
	t := time.Now()
	// The record first and then the snapshot (fast_create.go); the general path when the spec needs
	// the rootfs (a user looked up in the image's files) or an option failed (its error then).
	var container containerd.Container
	snapOpts := usernsSnapshotOpts(userns)
	newOpts := []containerd.NewContainerOpts{
		containerd.WithNewSpec(specOpts...),
		containerd.WithContainerLabels(labels),
		containerd.WithContainerExtension(sandboxExtensionID, &copyMeta),
		containerd.WithRuntime(handler.Type, handler.Options),
	}
	parent := chainID
	if sharedRootfs != "" {
		parent = "" // no snapshot of its own
	}
	rootfs, pauseSpec, err := r.newContainerRecordFirst(ctx, id, imageName, snapshotter, parent, snapOpts, newOpts...)
	var optsErr *recordOptsError
	if errors.As(err, &optsErr) && sharedRootfs == "" {
		log.WithError(err).Debug("pause container: general path")
		container, err = r.client.NewContainer(ctx, id, append([]containerd.NewContainerOpts{
			containerd.WithSnapshotter(snapshotter),
			withSnapshotFrom(id, imageName, snapshotter, chainID, snapOpts...),
		}, newOpts...)...)
	}
	if err != nil {
		return fail(fmt.Errorf("create pause container: %w", err))
	}
	undo = append(undo, func(cctx context.Context) {
		if err := r.deleteContainerRecord(cctx, id, snapshotter); err != nil {
			log.WithError(err).Warn("undo: delete pause container")
		}
	})
	tContainer = time.Since(t)
	// The record in containerd's sandbox store (shim_grouping.go), while the pause task is made
	// (not with the container record: containerd's metadata writes are serialized).
	var sbRecord *background[error]
	if sb.meta.GroupedShim {
		sbRecord = inBackground(func() error { return r.createSandboxRecord(ctx, id, handler.Type) })
		undo = append(undo, func(cctx context.Context) {
			if sbRecord.wait() == nil {
				if err := r.deleteSandboxRecord(cctx, id); err != nil {
					log.WithError(err).Warn("undo: delete the sandbox record")
				}
			}
		})
	}
	// The spec for the verbose status (spec_file.go).
	if container != nil {
		saveSpecFile(ctx, rootDir, container)
	} else {
		saveSpecJSON(rootDir, pauseSpec)
	}
	// The pod's network is recorded in the container's metadata as soon as CNI is done, while the
	// pause task is being created and started.
	netRecorded := inBackground(func() error {
		o := network.wait()
		if o.err != nil {
			return nil // reported below
		}
		m := copyMeta
		m.NetworkReady = true
		if !hostNet {
			m.IP, m.AdditionalIPs = o.res.IP, o.res.AdditionalIPs
		}
		return r.updateSandboxMetadata(ctx, id, &m)
	})
	undo = append(undo, func(context.Context) { netRecorded.wait() })
	// The task joins the network namespace: it must be there.
	if err := netnsMade.wait(); err != nil {
		netResult.Fail(legacy.ErrSetupNetwork, err.Error())
		result.AddSyncResult(netResult)
		return "", result
	}
	t = time.Now()
	if container == nil {
		nullIO, _ := cio.NullIO(id)
		_, err = r.createTask(ctx, id, rootfs, nullIO)
	} else {
		_, err = container.NewTask(ctx, cio.NullIO)
	}
	if err != nil {
		return fail(fmt.Errorf("create pause task: %w", err))
	}
	undo = append(undo, func(cctx context.Context) {
		if err := r.killDeleteTask(cctx, id); err != nil {
			log.WithError(err).Warn("undo: delete pause task")
		}
	})
	tTask = time.Since(t)
	t = time.Now()
	pausePid, err := r.startTask(ctx, id)
	if err != nil {
		return fail(fmt.Errorf("start pause task: %w", err))
	}
	result.AddSyncResult(startResult)

	tStartTask = time.Since(t)
	if err := files.wait(); err != nil {
		return fail(fmt.Errorf("sandbox files: %w", err))
	}
	t = time.Now()
	o := network.wait()
	tWaitNet = time.Since(t)
	if o.err != nil {
		netResult.Fail(legacy.ErrSetupNetwork, o.err.Error())
		result.AddSyncResult(netResult)
		return "", result
	}
	if !hostNet {
		sb.meta.IP, sb.meta.AdditionalIPs = o.res.IP, o.res.AdditionalIPs
		sb.cni = o.res
	}
	sb.meta.NetworkReady = true
	if err := netRecorded.wait(); err != nil {
		netResult.Fail(legacy.ErrSetupNetwork, fmt.Sprintf("record the pod network: %v", err))
		result.AddSyncResult(netResult)
		return "", result
	}
	result.AddSyncResult(netResult)

	if sbRecord != nil {
		if err := sbRecord.wait(); err != nil {
			startResult.Fail(legacy.ErrRunContainer, fmt.Sprintf("record the sandbox in containerd: %v", err))
			return "", result
		}
	}

	sb.state, sb.pid, sb.netUp = legacy.SandboxStateReady, pausePid, !hostNet
	// NRI plugins learn of the pod before it is listed; one that fails the hook fails the pod.
	defer r.nriBlockSync().Unblock()
	if err := r.nriRunPodSandboxBlocked(ctx, sb, pauseSpec); err != nil {
		startResult.Fail(legacy.ErrRunContainer, err.Error())
		return "", result
	}
	failed = false
	r.sandboxes.add(sb)
	r.podSandboxChanged(sb, time.Now())
	// As containerd's CRI: created and started, both once the sandbox is ready, before its exit
	// is watched (its stopped event comes after them).
	r.emitSandboxEvent(legacy.ContainerEventCreated, sb)
	r.emitSandboxEvent(legacy.ContainerEventStarted, sb)
	r.monitorExit(sb, nil) // its own Wait call: it returns the exit status even after the exit
	log.WithFields(logrus.Fields{"ip": sb.meta.IP, "pid": sb.pid, "total": time.Since(tStart), "image": tImage,
		"files": tFiles, "netns": tNetNS, "cni": tCNI, "container": tContainer, "task": tTask, "start": tStartTask,
		"wait_net": tWaitNet}).Debug("sandbox ready")
	return id, result
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
		sb.mu.RLock()
		pid := sb.pid
		sb.mu.RUnlock()
		r.exitMonitor().watch(sb.meta.ID, pid, func(_ uint32, at time.Time, _ bool) {
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
	r.imageMu.Lock()
	ci := r.imageCache[key]
	r.imageMu.Unlock()
	if ci == nil {
		spec, err := img.Spec(ctx)
		if err != nil {
			return "", imagespec.ImageConfig{}, "", fmt.Errorf("image config: %w", err)
		}
		diffIDs, err := img.RootFS(ctx)
		if err != nil {
			return "", imagespec.ImageConfig{}, "", fmt.Errorf("image rootfs: %w", err)
		}
		ci = &cachedImage{config: spec.Config, chainID: identity.ChainID(diffIDs).String(), unpacked: map[string]bool{}}
		r.imageMu.Lock()
		r.imageCache[key] = ci
		r.imageMu.Unlock()
	}
	r.imageMu.Lock()
	unpacked := ci.unpacked[snapshotterOr(h.Snapshotter)]
	r.imageMu.Unlock()
	if !unpacked {
		ok, err := img.IsUnpacked(ctx, snapshotterOr(h.Snapshotter))
		if err != nil {
			return "", imagespec.ImageConfig{}, "", fmt.Errorf("image unpacked: %w", err)
		}
		if !ok {
			if err := img.Unpack(ctx, snapshotterOr(h.Snapshotter)); err != nil {
				return "", imagespec.ImageConfig{}, "", fmt.Errorf("unpack: %w", err)
			}
		}
		r.imageMu.Lock()
		ci.unpacked[snapshotterOr(h.Snapshotter)] = true
		r.imageMu.Unlock()
	}
	return img.Name(), ci.config, ci.chainID, nil
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
