package kuberuntime

import (
	"context"
	"fmt"
	"sync"

	imagespec "github.com/opencontainers/image-spec/specs-go/v1"
)

// imageCache remembers what containerd would otherwise be asked on every pod and container
// created: an image's config and layer chain (read from its manifest and config blobs), and the
// layer chains already unpacked for each snapshotter. The zero value is ready to use.
//
// Entries are never dropped: an image's config does not change under its digest.
type imageCache struct {
	mu       sync.Mutex
	images   map[string]imageRecord // by image target digest
	unpacked map[string]bool        // snapshotter + "/" + chainID
}

// imageRecord is what a container's snapshot and process need of its image.
type imageRecord struct {
	config  imagespec.ImageConfig
	chainID string
}

// image returns the record of the image with target digest, when cached.
func (c *imageCache) image(digest string) (imageRecord, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec, ok := c.images[digest]
	return rec, ok
}

// addImage caches the record of the image with target digest.
func (c *imageCache) addImage(digest string, rec imageRecord) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.images == nil {
		c.images = map[string]imageRecord{}
	}
	c.images[digest] = rec
}

// isUnpacked tells whether chainID was found unpacked for snapshotter.
func (c *imageCache) isUnpacked(snapshotter, chainID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unpacked[snapshotter+"/"+chainID]
}

// setUnpacked records chainID as unpacked for snapshotter.
func (c *imageCache) setUnpacked(snapshotter, chainID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.unpacked == nil {
		c.unpacked = map[string]bool{}
	}
	c.unpacked[snapshotter+"/"+chainID] = true
}

// ensureUnpacked unpacks the image for the snapshotter unless its layers are there.
func (r *ContainerdRuntime) ensureUnpacked(ctx context.Context, img *containerImage, snapshotter string) error {
	if r.imgCache.isUnpacked(snapshotter, img.ChainID) {
		return nil
	}
	if _, err := r.client.SnapshotService(snapshotter).Stat(ctx, img.ChainID); err == nil {
		r.imgCache.setUnpacked(snapshotter, img.ChainID)
		return nil
	}
	cimg, err := r.client.GetImage(ctx, img.Name)
	if err != nil {
		return fmt.Errorf("image %s: %w", img.Name, err)
	}
	if err := cimg.Unpack(ctx, snapshotter); err != nil {
		return fmt.Errorf("unpack %s: %w", img.Name, err)
	}
	r.imgCache.setUnpacked(snapshotter, img.ChainID)
	return nil
}
