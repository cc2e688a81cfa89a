package legacy

import (
	"fmt"
	"path/filepath"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// ValidateContainerConfig checks what CreateContainer needs of a container config.
func ValidateContainerConfig(config *runtime.ContainerConfig) error {
	if config == nil {
		return fmt.Errorf("container config is required: %w", ErrInvalidArgument)
	}
	md := config.GetMetadata()
	if md == nil {
		return fmt.Errorf("container config must include metadata: %w", ErrInvalidArgument)
	}
	if md.GetName() == "" {
		return fmt.Errorf("container metadata.name is required: %w", ErrInvalidArgument)
	}
	if config.GetImage().GetImage() == "" {
		return fmt.Errorf("container image is required: %w", ErrInvalidArgument)
	}
	if p := config.GetLogPath(); p != "" && !filepath.IsLocal(p) {
		return fmt.Errorf("log_path %q must be a relative path inside the sandbox's log directory: %w", p, ErrInvalidArgument)
	}
	for _, m := range config.GetMounts() {
		if m.GetContainerPath() == "" {
			return fmt.Errorf("mount without container_path: %w", ErrInvalidArgument)
		}
		if err := ValidateImageMount(m); err != nil {
			return err
		}
	}
	return validateContainerFields(config) // request_validate.go
}
