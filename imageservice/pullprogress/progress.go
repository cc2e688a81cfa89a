// Package pullprogress holds the snapshot of an image pull in progress: the vocabulary shared by
// the image service that produces it, the model's image puller that relays it and the CLI that
// draws it. It imports nothing of containerd, so that the model can name it.
package pullprogress

import (
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
)

// Progress is a snapshot of one pull.
type Progress struct {
	// Ref is the normalized reference being pulled.
	Ref string
	// Blobs are the manifests, config and layers known so far, in the order they were met.
	Blobs []BlobProgress
	// Done and Total sum Blobs; Total grows while manifests are read.
	Done, Total int64
	// BytesRead counts every byte read from registries (tokens and manifests included).
	BytesRead int64
	// ActiveRequests is the number of registry requests in flight.
	ActiveRequests int
	// Elapsed is the time since the pull started (after waiting for a pull slot).
	Elapsed time.Duration
	// Finished is set on the last snapshot of a successful pull.
	Finished bool
}

// BlobProgress is the transfer state of one blob.
type BlobProgress struct {
	Digest    digest.Digest
	MediaType string
	Done      int64
	Total     int64
}

// Complete tells whether the blob is all there.
func (b BlobProgress) Complete() bool { return b.Total > 0 && b.Done >= b.Total }

// IsLayer tells whether the blob is a layer (not a manifest, index or config): an OCI layer or a
// Docker rootfs diff, whatever its compression.
func (b BlobProgress) IsLayer() bool {
	base, _, _ := strings.Cut(b.MediaType, "+")
	return strings.HasPrefix(base, "application/vnd.oci.image.layer.") ||
		strings.HasPrefix(base, "application/vnd.docker.image.rootfs.")
}
