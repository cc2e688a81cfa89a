package legacy

import (
	"fmt"
	"path/filepath"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	crierrors "k8s.io/cri-api/pkg/errors"
)

// validateImageMount checks the fields of a mount with an image that need no image at hand.
func ValidateImageMount(m *runtime.Mount) error {
	if m.GetImage() == nil || m.GetImage().GetImage() == "" {
		if m.GetImageSubPath() != "" {
			return fmt.Errorf("mount %s: image_sub_path without an image: %w", m.GetContainerPath(), ErrInvalidArgument)
		}
		return nil
	}
	dst := m.GetContainerPath()
	switch {
	case m.GetHostPath() != "":
		return fmt.Errorf("%w: mount %s: an image volume has no host_path: %w", crierrors.ErrImageVolumeMountFailed, dst, ErrInvalidArgument)
	case !m.GetReadonly():
		return fmt.Errorf("%w: mount %s: image volumes must be read-only: %w", crierrors.ErrImageVolumeMountFailed, dst, ErrInvalidArgument)
	}
	if sub := m.GetImageSubPath(); sub != "" && !filepath.IsLocal(sub) {
		return fmt.Errorf("%w: mount %s: image_sub_path %q must be a relative path inside the image: %w",
			crierrors.ErrImageVolumeMountFailed, dst, sub, ErrInvalidArgument)
	}
	return nil
}
