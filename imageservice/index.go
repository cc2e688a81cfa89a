package imageservice

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/images/usage"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/identity"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Containerd image record labels, the same the CRI plugin of containerd uses, so that images
// pulled by one are understood by the other.
const (
	// LabelManaged marks an image record written by a CRI image service.
	LabelManaged      = "io.cri-containerd.image"
	labelManagedValue = "managed"
	// LabelPinned marks an image record that must never be garbage collected by the kubelet.
	LabelPinned      = "io.cri-containerd.pinned"
	labelPinnedValue = "pinned"
)

// Image is a local image as the image service knows it: one image ID (the digest of its config)
// with every name containerd has a record for.
type Image struct {
	// ID is the digest of the image config, "sha256:...".
	ID string
	// RepoTags are the tagged names ("registry.k8s.io/pause:3.9"), sorted.
	RepoTags []string
	// RepoDigests are the names by manifest digest ("registry.k8s.io/pause@sha256:..."), sorted.
	RepoDigests []string
	// Names are all containerd image record names of the image, the ID record included, sorted.
	Names []string
	// Target is the descriptor the image records point to (a manifest or an index).
	Target ocispec.Descriptor
	// Size is the compressed size of the manifest, config and layers for the node's platform.
	Size int64
	// ChainID identifies the unpacked root filesystem (the snapshot the image unpacks to).
	ChainID string
	// Config is the image configuration (entrypoint, env, user, ...).
	Config ocispec.Image
	// ConfigDescriptor is the descriptor of the config blob.
	ConfigDescriptor ocispec.Descriptor
	// Pinned images are never garbage collected by the kubelet (the sandbox image).
	Pinned bool
}

// imageMeta is what a target descriptor resolves to for the node platform; it never changes for
// a given target digest, so it is cached by that digest.
type imageMeta struct {
	id      string
	config  ocispec.Image
	cfgDesc ocispec.Descriptor
	chainID string
	size    int64
}

type nameInfo struct {
	target ocispec.Descriptor
	pinned bool // the record carries the pinned label
}

type imageEntry struct {
	meta  *imageMeta
	names map[string]nameInfo
	img   Image // built from the above on every change: List and Status only copy it
}

// index is the in-memory view of the namespace's image records: name -> image ID, image ID ->
// names and metadata. containerd stays the truth; refresh re-reads one record.
type index struct {
	mu     sync.RWMutex
	byName map[string]string
	byID   map[string]*imageEntry
	metas  map[digest.Digest]*imageMeta // target digest -> metadata
	pinned map[string]bool              // names pinned by configuration
}

func newIndex(pinned map[string]bool) *index {
	return &index{
		byName: map[string]string{},
		byID:   map[string]*imageEntry{},
		metas:  map[digest.Digest]*imageMeta{},
		pinned: pinned,
	}
}

// set points name at the image meta describes.
func (ix *index) set(name string, meta *imageMeta, target ocispec.Descriptor, pinnedLabel bool) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.metas[target.Digest] = meta
	if old, ok := ix.byName[name]; ok && old != meta.id {
		ix.removeLocked(name)
	}
	e := ix.byID[meta.id]
	if e == nil {
		e = &imageEntry{meta: meta, names: map[string]nameInfo{}}
		ix.byID[meta.id] = e
	}
	e.names[name] = nameInfo{target: target, pinned: pinnedLabel}
	ix.byName[name] = meta.id
	e.img = ix.build(e)
}

// remove forgets the record name.
func (ix *index) remove(name string) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.removeLocked(name)
}

func (ix *index) removeLocked(name string) {
	id, ok := ix.byName[name]
	if !ok {
		return
	}
	delete(ix.byName, name)
	e := ix.byID[id]
	if e == nil {
		return
	}
	delete(e.names, name)
	if len(e.names) == 0 {
		delete(ix.byID, id)
		return
	}
	e.img = ix.build(e)
}

// reset drops everything but the metadata cache.
func (ix *index) reset() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.byName = map[string]string{}
	ix.byID = map[string]*imageEntry{}
}

func (ix *index) cachedMeta(d digest.Digest) *imageMeta {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.metas[d]
}

// lookup resolves an image ID (full or a unique prefix), a name, or a reference that normalizes to
// a name.
func (ix *index) lookup(refOrID string) (Image, bool) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	for _, n := range candidateNames(refOrID) {
		if e := ix.byID[n]; e != nil {
			return ix.imageLocked(e), true
		}
		if id, ok := ix.byName[n]; ok {
			return ix.imageLocked(ix.byID[id]), true
		}
	}
	if id, ok := ix.byName[refOrID]; ok {
		return ix.imageLocked(ix.byID[id]), true
	}
	// A truncated ID: unique prefix of at least 3 hex digits.
	if hex, ok := idPrefix(refOrID); ok && len(hex) >= 3 && len(hex) < 64 {
		var found *imageEntry
		for id, e := range ix.byID {
			if strings.HasPrefix(strings.TrimPrefix(id, "sha256:"), hex) {
				if found != nil {
					return Image{}, false // ambiguous
				}
				found = e
			}
		}
		if found != nil {
			return ix.imageLocked(found), true
		}
	}
	return Image{}, false
}

func (ix *index) list() []Image {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]Image, 0, len(ix.byID))
	for _, e := range ix.byID {
		out = append(out, ix.imageLocked(e))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// imageLocked returns a copy of e's image that callers may modify.
func (ix *index) imageLocked(e *imageEntry) Image {
	img := e.img
	img.RepoTags = slices.Clone(img.RepoTags)
	img.RepoDigests = slices.Clone(img.RepoDigests)
	img.Names = slices.Clone(img.Names)
	return img
}

func (ix *index) build(e *imageEntry) Image {
	names := make([]string, 0, len(e.names))
	pinned := false
	var target ocispec.Descriptor
	for n, info := range e.names {
		names = append(names, n)
		if info.pinned || ix.pinned[n] {
			pinned = true
		}
	}
	sort.Strings(names)
	// The target of the ID record if any (the newest pull wrote it), else of the first name.
	if info, ok := e.names[e.meta.id]; ok {
		target = info.target
	} else {
		target = e.names[names[0]].target
	}
	tags, digests := splitNames(names)
	return Image{
		ID:               e.meta.id,
		RepoTags:         tags,
		RepoDigests:      digests,
		Names:            names,
		Target:           target,
		Size:             e.meta.size,
		ChainID:          e.meta.chainID,
		Config:           e.meta.config,
		ConfigDescriptor: e.meta.cfgDesc,
		Pinned:           pinned,
	}
}

// loadMeta reads what the image record img points to for the node platform.
func loadMeta(ctx context.Context, provider content.InfoReaderProvider, img images.Image, platform platforms.MatchComparer) (*imageMeta, error) {
	cfgDesc, err := img.Config(ctx, provider, platform)
	if err != nil {
		return nil, fmt.Errorf("image config of %s: %w", img.Name, err)
	}
	blob, err := content.ReadBlob(ctx, provider, cfgDesc)
	if err != nil {
		return nil, fmt.Errorf("read image config %s: %w", cfgDesc.Digest, err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(blob, &cfg); err != nil {
		return nil, fmt.Errorf("image config %s: %w", cfgDesc.Digest, errdefs.ErrInvalidArgument)
	}
	size, err := usage.CalculateImageUsage(ctx, img, provider, usage.WithManifestLimit(platform, 1), usage.WithManifestUsage())
	if err != nil {
		return nil, fmt.Errorf("image size of %s: %w", img.Name, err)
	}
	return &imageMeta{
		id:      cfgDesc.Digest.String(),
		config:  cfg,
		cfgDesc: cfgDesc,
		chainID: identity.ChainID(cfg.RootFS.DiffIDs).String(),
		size:    size,
	}, nil
}
