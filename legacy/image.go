package legacy

import (
	"context"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ImageSpec names an image: the reference of a container's image field, with the annotations and
// runtime handler CRI passes along.
type ImageSpec struct {
	// Image is a reference ("busybox", "registry.k8s.io/pause:3.9", "repo@sha256:...") or an
	// image ID.
	Image string
	// Annotations of the image spec (CRI ImageSpec.annotations).
	Annotations map[string]string
	// RuntimeHandler selects the snapshotter the image is unpacked for.
	RuntimeHandler string
}

// Image is basic information about a local container image.
type Image struct {
	// ID of the image: the digest of its config ("sha256:...").
	ID string
	// RepoTags are the tagged names the image is known by.
	RepoTags []string
	// RepoDigests are the names by manifest digest.
	RepoDigests []string
	// Size is the image's size in bytes.
	Size int64
	// Pinned images are never garbage collected.
	Pinned bool
}

// ImageService is the image half of a Runtime: the images of the node, without the pull policy,
// backoff and events an ImagePuller adds.
type ImageService interface {
	// PullImage pulls the image with the credentials auth (nil: anonymous) and returns its ID.
	PullImage(ctx context.Context, image ImageSpec, auth *runtime.AuthConfig) (string, error)
	// IsImagePresent tells whether the image is local.
	IsImagePresent(ctx context.Context, image ImageSpec) (bool, error)
	// ListImages returns the local images.
	ListImages(ctx context.Context) ([]Image, error)
	// RemoveImage removes the image with all its names; an absent image is no error.
	RemoveImage(ctx context.Context, image ImageSpec) error
}

// BackendImages is the ImageService of an ImageBackend.
type BackendImages struct {
	Backend ImageBackend
}

var _ ImageService = BackendImages{}

// PullImage pulls through the backend, without progress reports.
func (b BackendImages) PullImage(ctx context.Context, image ImageSpec, auth *runtime.AuthConfig) (string, error) {
	return b.Backend.PullImage(ctx, image, auth, nil)
}

// IsImagePresent tells whether the backend has a local image for image.
func (b BackendImages) IsImagePresent(ctx context.Context, image ImageSpec) (bool, error) {
	id, err := b.Backend.ImageRef(ctx, image)
	return id != "", err
}

// ListImages returns the backend's images.
func (b BackendImages) ListImages(ctx context.Context) ([]Image, error) {
	return b.Backend.ListImages(ctx)
}

// RemoveImage removes the image from the backend.
func (b BackendImages) RemoveImage(ctx context.Context, image ImageSpec) error {
	return b.Backend.RemoveImage(ctx, image)
}
