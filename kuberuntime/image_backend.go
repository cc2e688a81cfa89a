package kuberuntime

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/cri-shim/cri-shim/imageservice"
	"github.com/cri-shim/cri-shim/legacy"
)

// ImageServiceBackend is the ImageBackend (and the image half of the Runtime) over the CRI image
// service on containerd.
type ImageServiceBackend struct {
	svc *imageservice.Service
}

var _ legacy.ImageBackend = (*ImageServiceBackend)(nil)

// NewImageServiceBackend returns the backend of svc.
func NewImageServiceBackend(svc *imageservice.Service) *ImageServiceBackend {
	return &ImageServiceBackend{svc: svc}
}

// ImageRef returns the ID of the local image spec names, "" when there is none.
func (b *ImageServiceBackend) ImageRef(ctx context.Context, spec legacy.ImageSpec) (string, error) {
	if img, ok := b.svc.Image(spec.Image); ok {
		return img.ID, nil
	}
	return "", nil
}

// IsImagePresent tells whether the image spec names is local.
func (b *ImageServiceBackend) IsImagePresent(ctx context.Context, spec legacy.ImageSpec) (bool, error) {
	id, err := b.ImageRef(ctx, spec)
	return id != "", err
}

// PullImage pulls through the image service; an Unavailable failure wraps RegistryUnavailable.
func (b *ImageServiceBackend) PullImage(ctx context.Context, spec legacy.ImageSpec, auth *runtime.AuthConfig, progress func(legacy.PullProgress)) (string, error) {
	id, err := b.svc.Pull(ctx, spec.Image, imageservice.PullOptions{
		Auth:           auth,
		RuntimeHandler: spec.RuntimeHandler,
		Progress:       progress,
	})
	if err != nil {
		if status.Code(err) == codes.Unavailable {
			return "", fmt.Errorf("%w: %w", legacy.RegistryUnavailable, err)
		}
		return "", err
	}
	return id, nil
}

// ListImages returns the local images.
func (b *ImageServiceBackend) ListImages(ctx context.Context) ([]legacy.Image, error) {
	imgs := b.svc.Images()
	out := make([]legacy.Image, len(imgs))
	for i, img := range imgs {
		out[i] = toImage(img)
	}
	return out, nil
}

// GetImage returns the local image spec names; ok is false when there is none.
func (b *ImageServiceBackend) GetImage(ctx context.Context, spec legacy.ImageSpec) (legacy.Image, bool) {
	img, ok := b.svc.Image(spec.Image)
	if !ok {
		return legacy.Image{}, false
	}
	return toImage(img), true
}

// RemoveImage removes the image spec names with all its names; an absent image is no error.
func (b *ImageServiceBackend) RemoveImage(ctx context.Context, spec legacy.ImageSpec) error {
	return b.svc.Remove(ctx, spec.Image)
}

func toImage(img imageservice.Image) legacy.Image {
	return legacy.Image{ID: img.ID, RepoTags: img.RepoTags, RepoDigests: img.RepoDigests, Size: img.Size, Pinned: img.Pinned}
}
