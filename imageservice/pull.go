package imageservice

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/core/remotes/docker/config"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PullOptions are the options of Pull.
type PullOptions struct {
	// Auth are the registry credentials of the request (nil: anonymous).
	Auth *runtime.AuthConfig
	// RuntimeHandler selects the snapshotter (Config.RuntimeSnapshotters).
	RuntimeHandler string
	// Progress, when set, receives snapshots of the pull a few times a second and a last one
	// with Finished set. It is called from another goroutine and must not block.
	Progress func(Progress)
}

// PullImage pulls an image with the request's credentials and returns its ID.
func (s *Service) PullImage(ctx context.Context, req *runtime.PullImageRequest) (*runtime.PullImageResponse, error) {
	spec := req.GetImage()
	if spec == nil {
		return nil, status.Error(codes.InvalidArgument, "image spec is required")
	}
	handler := spec.GetRuntimeHandler()
	id, err := s.Pull(ctx, spec.GetImage(), PullOptions{Auth: req.GetAuth(), RuntimeHandler: handler})
	if err != nil {
		return nil, err
	}
	return &runtime.PullImageResponse{ImageRef: id}, nil
}

// Pull pulls ref for the node's platform, unpacks it and records it under its reference, its
// repo digest and its ID; it returns the image ID (the config digest). Concurrent pulls of one
// reference with the same credentials merge into one; a pull runs until every request waiting
// for it has ended. Errors are gRPC statuses (see pullStatus).
func (s *Service) Pull(ctx context.Context, ref string, opts PullOptions) (string, error) {
	named, err := NormalizeRef(ref)
	if err != nil {
		return "", err
	}
	if ctx.Err() != nil {
		return "", ctxStatus(ctx, fmt.Sprintf("pull image %s", describeRef(ref, named)))
	}
	snapshotter := s.snapshotterFor(opts.RuntimeHandler)
	key := pullKey(named.String(), snapshotter, opts.Auth)
	id, err := s.pulls.do(ctx, key, opts.Progress, func(fctx context.Context, f *flight) (string, error) {
		return s.pull(fctx, named, snapshotter, opts.Auth, f)
	})
	if err != nil {
		if ctx.Err() != nil {
			return "", ctxStatus(ctx, fmt.Sprintf("pull image %s", describeRef(ref, named)))
		}
		if _, ok := status.FromError(err); !ok {
			err = pullStatus(fmt.Sprintf("pull image %s", describeRef(ref, named)), err)
		}
		return "", err
	}
	return id, nil
}

func (s *Service) snapshotterFor(handler string) string {
	if sn, ok := s.cfg.RuntimeSnapshotters[handler]; ok && sn != "" {
		return sn
	}
	return s.cfg.Snapshotter
}

func pullKey(ref, snapshotter string, auth *runtime.AuthConfig) string {
	h := sha256.New()
	if auth != nil {
		for _, f := range []string{auth.Username, auth.Password, auth.Auth, auth.ServerAddress, auth.IdentityToken, auth.RegistryToken} {
			h.Write([]byte(f))
			h.Write([]byte{0})
		}
	}
	return ref + "\x00" + snapshotter + "\x00" + hex.EncodeToString(h.Sum(nil))
}

// pull runs one pull; the caller merged the requests for it.
func (s *Service) pull(ctx context.Context, named reference.Named, snapshotter string, auth *runtime.AuthConfig, f *flight) (_ string, retErr error) {
	ctx = s.nsCtx(ctx)
	ref := named.String()
	what := fmt.Sprintf("pull image %q", ref)
	log := logrus.WithField("image", ref)
	refHost := reference.Domain(named)
	creds := newCredScope(auth, refHost)
	tr := newTracker(ref, creds)
	defer tr.closeIdle()

	hostDir := s.registryConfigPath()
	hostOpts := config.HostOptions{
		Credentials:  creds.credentials,
		UpdateClient: tr.updateClient,
	}
	if hostDir != "" {
		hostOpts.HostDir = config.HostDirFromRoot(hostDir)
	}
	hosts := creds.registryHosts(config.ConfigureHosts(ctx, hostOpts))

	// The lease holds everything the pull writes until the image records exist; deleting it
	// synchronously after a failure lets containerd's GC take what the pull left.
	ls := s.client.LeasesService()
	lease, err := ls.Create(ctx, leases.WithRandomID(), leases.WithExpiration(24*time.Hour))
	if err != nil {
		return "", internalStatus(what+": create lease", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		var opts []leases.DeleteOpt
		if retErr != nil {
			opts = append(opts, leases.SynchronousDelete)
		}
		if err := ls.Delete(dctx, lease, opts...); err != nil && !errdefs.IsNotFound(err) {
			log.WithError(err).Warn("delete pull lease")
		}
	}()
	lctx := leases.WithLease(ctx, lease.ID)

	pctx, cancel := context.WithCancelCause(lctx)
	defer cancel(nil)
	monitorDone := make(chan struct{})
	go s.monitor(pctx, cancel, tr, f, log, monitorDone)

	labels := s.recordLabels(ref)
	via := "client"
	if s.viaTransfer(auth) {
		via = "transfer"
	}
	log = log.WithField("via", via)
	log.WithField("snapshotter", snapshotter).Debug("pulling image")
	var target ocispec.Descriptor
	if via == "transfer" {
		target, err = s.fetchViaTransfer(pctx, ref, snapshotter, labels, hostDir, tr)
		if errors.Is(err, errNoTransferService) {
			s.warnNoTransfer.Do(func() {
				log.Warn("containerd serves no Transfer service (plugin io.containerd.grpc.v1.transfer off): pulling with the containerd client")
			})
			target, err = s.fetchViaClient(pctx, ref, snapshotter, labels, hosts, tr)
		}
	} else {
		target, err = s.fetchViaClient(pctx, ref, snapshotter, labels, hosts, tr)
	}
	fetched := time.Since(tr.start)
	cause := context.Cause(pctx)
	cancel(nil)
	<-monitorDone
	if err != nil {
		var np *NoProgressError
		if errors.As(cause, &np) {
			err = np
		} else if ctx.Err() != nil {
			err = ctx.Err()
		}
		log.WithError(err).WithField("duration", time.Since(tr.start).Round(time.Millisecond)).Info("image pull failed")
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			pullsTotal.WithLabelValues("canceled").Inc()
			return "", err
		}
		pullsTotal.WithLabelValues("failure").Inc()
		return "", pullStatus(what, err)
	}

	// The records: the reference (written by Pull), the repo digest, and the image ID. Done
	// whatever becomes of the request now that the content is all there.
	bctx, bcancel := context.WithTimeout(context.WithoutCancel(lctx), time.Minute)
	defer bcancel()
	img := containerd.NewImageWithPlatform(s.client, images.Image{Name: ref, Target: target, Labels: labels}, s.platform)
	cfgDesc, err := img.Config(bctx)
	if err != nil {
		return "", internalStatus(what+": image config", err)
	}
	id := cfgDesc.Digest.String()
	repoDigest, _ := repoDigestAndTag(named, img.Target().Digest)
	names := []string{ref}
	for _, name := range []string{repoDigest, id} {
		if name == "" || name == ref {
			continue
		}
		if err := s.createOrUpdateRecord(bctx, name, img.Target(), labels); err != nil {
			return "", internalStatus(fmt.Sprintf("%s: record %q", what, name), err)
		}
		names = append(names, name)
	}
	for _, name := range names {
		if err := s.refresh(bctx, name); err != nil {
			return "", internalStatus(fmt.Sprintf("%s: index %q", what, name), err)
		}
	}
	final := tr.snapshot(true)
	f.emit(final)
	size := int64(0)
	if im, ok := s.index.lookup(id); ok {
		size = im.Size
	}
	log.WithFields(logrus.Fields{
		"id":         id,
		"size":       size,
		"downloaded": final.BytesRead,
		"duration":   final.Elapsed.Round(time.Millisecond),
		"fetch":      fetched.Round(time.Millisecond),
	}).Info("pulled image")
	pullsTotal.WithLabelValues("success").Inc()
	pullBytes.Add(float64(final.BytesRead))
	pullDuration.Observe(time.Since(tr.start).Seconds())
	return id, nil
}

// fetchViaClient pulls ref with the containerd client: the registry traffic runs in this
// process, through the pull's own resolver (credential scope, progress tracking, download
// limiter); containerd stores the content and unpacks it.
func (s *Service) fetchViaClient(ctx context.Context, ref, snapshotter string, labels map[string]string, hosts docker.RegistryHosts, tr *tracker) (ocispec.Descriptor, error) {
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts:   hosts,
		Headers: http.Header{"User-Agent": []string{userAgent}},
	})
	pullOpts := []containerd.RemoteOpt{
		containerd.WithResolver(resolver),
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(snapshotter),
		containerd.WithPlatformMatcher(s.platform),
		containerd.WithPullLabels(labels),
		containerd.WithImageHandler(tr.handler(s.client.ContentStore())),
	}
	if n := s.cfg.MaxConcurrentDownloads; n > 0 {
		// A limiter of this pull's own: the bound is per image, as containerd documents its
		// max_concurrent_downloads. (The client's WithMaxConcurrentDownloads is the parallelism of
		// ranged fetches within one blob, not a bound on blobs.)
		pullOpts = append(pullOpts, containerd.WithDownloadLimiter(semaphore.NewWeighted(int64(n))))
	}
	img, err := s.client.Pull(ctx, ref, pullOpts...)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return img.Target(), nil
}

// userAgent is what pulls send registries.
const userAgent = "cri-shim"

func (s *Service) recordLabels(ref string) map[string]string {
	labels := map[string]string{LabelManaged: labelManagedValue}
	if s.index.pinned[ref] {
		labels[LabelPinned] = labelPinnedValue
	}
	return labels
}

// createOrUpdateRecord points the image record name at target; it keeps a pinned label it has.
func (s *Service) createOrUpdateRecord(ctx context.Context, name string, target ocispec.Descriptor, labels map[string]string) error {
	is := s.client.ImageService()
	img := images.Image{Name: name, Target: target, Labels: labels}
	for attempt := 0; attempt < 3; attempt++ {
		if _, err := is.Create(ctx, img); err == nil || !errdefs.IsAlreadyExists(err) {
			return err
		}
		old, err := is.Get(ctx, name)
		if errdefs.IsNotFound(err) {
			continue // removed meanwhile: create again
		} else if err != nil {
			return err
		}
		paths := []string{}
		if old.Target.Digest != target.Digest || old.Target.MediaType != target.MediaType {
			paths = append(paths, "target")
		}
		for k, v := range labels {
			if old.Labels[k] != v {
				paths = append(paths, "labels."+k)
			}
		}
		if len(paths) == 0 {
			return nil
		}
		if _, err := is.Update(ctx, img, paths...); err == nil || !errdefs.IsNotFound(err) {
			return err
		}
	}
	return fmt.Errorf("image record %q keeps changing", name)
}

// monitor reports the pull's progress and cancels it when it transfers nothing for the
// progress timeout while requests are in flight (a stalled registry). Waiting for an answer
// with no request in flight (unpacking, say) is not a stall.
func (s *Service) monitor(ctx context.Context, cancel context.CancelCauseFunc, tr *tracker, f *flight, log *logrus.Entry, done chan<- struct{}) {
	defer close(done)
	timeout := s.cfg.PullProgressTimeout
	interval := 200 * time.Millisecond
	if timeout > 0 && timeout/4 < interval {
		interval = timeout / 4
	}
	const logEvery = 5 * time.Second
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	var (
		lastBytes  int64
		lastChange = time.Now()
		lastLog    = time.Now()
	)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-ticker.C:
			p := tr.snapshot(false)
			f.emit(p)
			if now.Sub(lastLog) >= logEvery && log.Logger.IsLevelEnabled(logrus.DebugLevel) {
				lastLog = now
				logProgress(log, p)
			}
			if p.ActiveRequests == 0 || p.BytesRead > lastBytes {
				lastBytes, lastChange = p.BytesRead, now
				continue
			}
			if timeout > 0 && now.Sub(lastChange) >= timeout {
				log.WithFields(logrus.Fields{"timeout": timeout, "bytes": p.BytesRead, "requests": p.ActiveRequests}).
					Warn("image pull makes no progress; cancelling it")
				cancel(&NoProgressError{Timeout: timeout})
				return
			}
		}
	}
}

func logProgress(log *logrus.Entry, p Progress) {
	complete := 0
	for _, b := range p.Blobs {
		if b.Complete() {
			complete++
		}
	}
	log.WithFields(logrus.Fields{
		"done": p.Done, "total": p.Total, "blobs": fmt.Sprintf("%d/%d", complete, len(p.Blobs)),
		"requests": p.ActiveRequests, "elapsed": p.Elapsed.Round(time.Millisecond),
	}).Debug("image pull progress")
	for _, b := range p.Blobs {
		if b.IsLayer() && !b.Complete() {
			log.WithFields(logrus.Fields{"layer": b.Digest.String(), "done": b.Done, "total": b.Total}).Debug("layer progress")
		}
	}
}

// pullGroup merges concurrent pulls of one key and bounds how many run at once.
type pullGroup struct {
	mu      sync.Mutex
	flights map[string]*flight
	slots   chan struct{} // nil: unlimited
}

type flight struct {
	ctx     context.Context
	cancel  context.CancelFunc
	waiters int
	done    chan struct{}
	id      string
	err     error

	subMu   sync.Mutex
	subs    map[int]func(Progress)
	nextSub int
}

func newPullGroup(max int) *pullGroup {
	g := &pullGroup{flights: map[string]*flight{}}
	if max > 0 {
		g.slots = make(chan struct{}, max)
	}
	return g
}

// do runs fn once for all concurrent callers of key. A caller whose ctx ends leaves with its
// ctx's error; when the last caller leaves, the pull is cancelled.
func (g *pullGroup) do(ctx context.Context, key string, progress func(Progress), fn func(context.Context, *flight) (string, error)) (string, error) {
	g.mu.Lock()
	f := g.flights[key]
	if f == nil {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{ctx: fctx, cancel: cancel, done: make(chan struct{}), subs: map[int]func(Progress){}}
		g.flights[key] = f
		go g.run(key, f, fn)
	}
	f.waiters++
	sub := f.subscribe(progress)
	g.mu.Unlock()
	defer f.unsubscribe(sub)

	select {
	case <-f.done:
		return f.id, f.err
	case <-ctx.Done():
		g.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			f.cancel()
			if g.flights[key] == f {
				delete(g.flights, key)
			}
		}
		g.mu.Unlock()
		return "", ctx.Err()
	}
}

func (g *pullGroup) run(key string, f *flight, fn func(context.Context, *flight) (string, error)) {
	defer func() {
		g.mu.Lock()
		if g.flights[key] == f {
			delete(g.flights, key)
		}
		g.mu.Unlock()
		f.cancel()
		close(f.done)
	}()
	if g.slots != nil {
		select {
		case g.slots <- struct{}{}:
			defer func() { <-g.slots }()
		case <-f.ctx.Done():
			f.err = f.ctx.Err()
			return
		}
	}
	f.id, f.err = fn(f.ctx, f)
}

// inFlight returns the number of distinct pulls running or waiting for a slot.
func (g *pullGroup) inFlight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.flights)
}

func (f *flight) subscribe(fn func(Progress)) int {
	if fn == nil {
		return -1
	}
	f.subMu.Lock()
	defer f.subMu.Unlock()
	f.nextSub++
	f.subs[f.nextSub] = fn
	return f.nextSub
}

func (f *flight) unsubscribe(id int) {
	if id < 0 {
		return
	}
	f.subMu.Lock()
	defer f.subMu.Unlock()
	delete(f.subs, id)
}

func (f *flight) emit(p Progress) {
	if f == nil {
		return
	}
	f.subMu.Lock()
	subs := make([]func(Progress), 0, len(f.subs))
	for _, fn := range f.subs {
		subs = append(subs, fn)
	}
	f.subMu.Unlock()
	for _, fn := range subs {
		fn(p)
	}
}
