// Package imageservice is the CRI ImageService on containerd: pulls through containerd registry
// hosts dirs with the request's credentials, and lists, inspects and removes the images of one
// containerd namespace. All state lives in containerd (image records, content, snapshots); the
// service keeps an in-memory index of the image records, rebuilt at start and kept current from
// its own writes and containerd's image events.
package imageservice

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	"github.com/containerd/typeurl/v2"
	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Config configures a Service.
type Config struct {
	// Namespace is the containerd namespace holding the images (required).
	Namespace string
	// Snapshotter is the snapshotter images are unpacked into; default "overlayfs".
	Snapshotter string
	// RuntimeSnapshotters maps a runtime handler to the snapshotter it uses, when it is not
	// Snapshotter.
	RuntimeSnapshotters map[string]string
	// RegistryConfigPath is a registry hosts dir in containerd's format (<host>/hosts.toml and
	// certificates, as /etc/containerd/certs.d); "" means the registries' defaults.
	RegistryConfigPath string
	// MaxConcurrentPulls bounds the pulls running at once; 0 means unlimited, 1 serializes them.
	MaxConcurrentPulls int
	// MaxConcurrentDownloads bounds the blobs (layers, configs) one pull fetches at once; 0 means
	// unlimited. Operators lower it on slow links so one image's layers do not starve the others.
	MaxConcurrentDownloads int
	// PullProgressTimeout cancels a pull that transfers nothing for this long; default 5 min,
	// negative disables it.
	PullProgressTimeout time.Duration
	// PullViaTransfer pulls anonymous images through containerd's Transfer service (containerd
	// talks to the registry, under its transfer config: max_concurrent_downloads across pulls,
	// unpack_config, image verifiers) instead of the containerd client in this process; pulls
	// with credentials, and every pull when containerd serves no Transfer service, take the client
	// path. MaxConcurrentDownloads does not apply to it, and its progress (and so the no-progress
	// timeout) moves in containerd's 1 MiB steps.
	PullViaTransfer bool
	// PinnedImages are references reported as pinned (the sandbox image).
	PinnedImages []string
	// ContainerdRoot is containerd's root dir, used for ImageFsInfo's mountpoints when containerd
	// does not report its plugins' roots.
	ContainerdRoot string
	// Platform is the platform images are pulled for (such as "linux/amd64"); default the node's.
	Platform string
}

// Service implements the CRI ImageService (runtime.ImageServiceServer) on containerd.
type Service struct {
	runtime.UnimplementedImageServiceServer

	client   *containerd.Client
	cfg      Config
	platform platforms.MatchComparer
	index    *index

	refreshMu sync.Mutex // serializes re-reads of image records, so none goes back in time
	removeMu  sync.Mutex // one RemoveImage at a time

	pulls *pullGroup
	// warnNoTransfer: the warning that containerd has no Transfer service, once.
	warnNoTransfer sync.Once

	// hostsDir is the registry hosts dir pulls use; it starts as cfg.RegistryConfigPath and changes
	// with SetRegistryConfigPath.
	hostsDir atomic.Pointer[string]

	fsMu     sync.Mutex
	fsCache  *fsInfo
	fsRoots  map[string]string
	stop     context.CancelFunc
	watchers sync.WaitGroup
}

var _ runtime.ImageServiceServer = (*Service)(nil)

// DefaultPullProgressTimeout is the default of Config.PullProgressTimeout.
const DefaultPullProgressTimeout = 5 * time.Minute

// New returns the image service of client's cfg.Namespace. It indexes the images already there
// and follows containerd's image events until Close.
func New(client *containerd.Client, cfg Config) (*Service, error) {
	if client == nil {
		return nil, errors.New("imageservice: nil containerd client")
	}
	if cfg.Namespace == "" {
		return nil, errors.New("imageservice: empty containerd namespace")
	}
	if err := identifiers.Validate(cfg.Namespace); err != nil {
		return nil, fmt.Errorf("imageservice: namespace: %w", err)
	}
	if cfg.Snapshotter == "" {
		cfg.Snapshotter = "overlayfs"
	}
	if cfg.MaxConcurrentPulls < 0 {
		return nil, fmt.Errorf("imageservice: max concurrent pulls %d < 0", cfg.MaxConcurrentPulls)
	}
	if cfg.MaxConcurrentDownloads < 0 {
		return nil, fmt.Errorf("imageservice: max concurrent downloads %d < 0", cfg.MaxConcurrentDownloads)
	}
	if cfg.PullProgressTimeout == 0 {
		cfg.PullProgressTimeout = DefaultPullProgressTimeout
	}
	platform := platforms.Default()
	if cfg.Platform != "" {
		p, err := platforms.Parse(cfg.Platform)
		if err != nil {
			return nil, fmt.Errorf("imageservice: platform: %w", err)
		}
		platform = platforms.Only(p)
	}
	pinned := map[string]bool{}
	for _, ref := range cfg.PinnedImages {
		named, err := NormalizeRef(ref)
		if err != nil {
			return nil, fmt.Errorf("imageservice: pinned image %q: %w", ref, err)
		}
		pinned[named.String()] = true
	}
	s := &Service{
		client:   client,
		cfg:      cfg,
		platform: platform,
		index:    newIndex(pinned),
		pulls:    newPullGroup(cfg.MaxConcurrentPulls),
	}
	s.hostsDir.Store(&cfg.RegistryConfigPath)

	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	ctx = s.nsCtx(ctx)
	// Subscribe before indexing, so that no change falls between the two.
	evCh, errCh := client.Subscribe(ctx, fmt.Sprintf(`namespace==%s,topic~="^/images/"`, cfg.Namespace))
	if err := s.resync(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("imageservice: index images: %w", err)
	}
	s.watchers.Add(1)
	go s.watch(ctx, evCh, errCh)
	return s, nil
}

// Close stops following containerd's events. Pulls in flight go on until their requests end.
func (s *Service) Close() error {
	s.stop()
	s.watchers.Wait()
	return nil
}

// Config returns the service's configuration, defaults applied.
func (s *Service) Config() Config {
	cfg := s.cfg
	cfg.RegistryConfigPath = s.registryConfigPath()
	return cfg
}

// SetRegistryConfigPath makes the pulls that start from now on use the registry hosts dir path
// ("" for the registries' defaults). The dir's files are read at each pull anyway: this is for a
// new dir.
func (s *Service) SetRegistryConfigPath(path string) { s.hostsDir.Store(&path) }

func (s *Service) registryConfigPath() string {
	if p := s.hostsDir.Load(); p != nil {
		return *p
	}
	return s.cfg.RegistryConfigPath
}

func (s *Service) nsCtx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, s.cfg.Namespace)
}

// Image returns the local image an image ID (full or a unique prefix), a name or a reference
// means; ok is false when there is none.
func (s *Service) Image(refOrID string) (img Image, ok bool) {
	return s.index.lookup(refOrID)
}

// Images returns every local image, sorted by ID.
func (s *Service) Images() []Image {
	return s.index.list()
}

// refresh re-reads the image record name from containerd into the index.
func (s *Service) refresh(ctx context.Context, name string) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	return s.refreshLocked(s.nsCtx(ctx), name)
}

func (s *Service) refreshLocked(ctx context.Context, name string) error {
	s.imagesChanged()
	img, err := s.client.ImageService().Get(ctx, name)
	if err != nil {
		if errdefs.IsNotFound(err) {
			s.index.remove(name)
			return nil
		}
		return err
	}
	return s.indexRecord(ctx, img)
}

// forgetLocked drops the record name, known to be gone, from the index (refreshMu held).
func (s *Service) forgetLocked(name string) {
	s.imagesChanged()
	s.index.remove(name)
}

// imagesChanged: so does their disk usage, and the next ImageFsInfo measures again.
func (s *Service) imagesChanged() {
	s.fsMu.Lock()
	s.fsCache = nil
	s.fsMu.Unlock()
}

func (s *Service) indexRecord(ctx context.Context, img images.Image) error {
	meta := s.index.cachedMeta(img.Target.Digest)
	if meta == nil {
		m, err := loadMeta(ctx, s.client.ContentStore(), img, s.platform)
		if err != nil {
			s.index.remove(img.Name)
			return err
		}
		meta = m
	}
	s.index.set(img.Name, meta, img.Target, img.Labels[LabelPinned] == labelPinnedValue)
	return nil
}

// resync rebuilds the index from all image records of the namespace.
func (s *Service) resync(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	ctx = s.nsCtx(ctx)
	imgs, err := s.client.ImageService().List(ctx)
	if err != nil {
		return err
	}
	s.index.reset()
	for _, img := range imgs {
		if err := s.indexRecord(ctx, img); err != nil {
			// Records of other platforms or with missing content are not images we can run.
			logrus.WithError(err).WithField("image", img.Name).Debug("image record not indexed")
		}
	}
	logrus.WithFields(logrus.Fields{"namespace": s.cfg.Namespace, "images": len(s.index.list()), "records": len(imgs)}).
		Debug("image index rebuilt")
	return nil
}

// watch applies containerd's image events to the index, resubscribing (and re-indexing
// everything) when the event stream breaks.
func (s *Service) watch(ctx context.Context, evCh <-chan *events.Envelope, errCh <-chan error) {
	defer s.watchers.Done()
	filter := fmt.Sprintf(`namespace==%s,topic~="^/images/"`, s.cfg.Namespace)
	for {
		select {
		case <-ctx.Done():
			return
		case env := <-evCh:
			if env == nil || env.Event == nil {
				continue
			}
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				continue
			}
			var name string
			switch e := v.(type) {
			case *eventstypes.ImageCreate:
				name = e.Name
			case *eventstypes.ImageUpdate:
				name = e.Name
			case *eventstypes.ImageDelete:
				name = e.Name
			default:
				continue
			}
			if err := s.refresh(ctx, name); err != nil && ctx.Err() == nil {
				logrus.WithError(err).WithField("image", name).Debug("image event not applied")
			}
		case err := <-errCh:
			if ctx.Err() != nil {
				return
			}
			logrus.WithError(err).Warn("containerd image events interrupted; resubscribing")
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			evCh, errCh = s.client.Subscribe(ctx, filter)
			if err := s.resync(ctx); err != nil && ctx.Err() == nil {
				logrus.WithError(err).Warn("re-index images")
			}
		}
	}
}
