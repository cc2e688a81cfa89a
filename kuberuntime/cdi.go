package kuberuntime

import (
	"context"
	"fmt"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/cri-shim/cri-shim/kuberuntime/cdi"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/sirupsen/logrus"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// CDI (Container Device Interface) devices in containers: the ones a container config asks for
// are resolved before anything of the container is made, and injected last into its spec, before
// the NRI plugins see it; the ones a plugin adds are injected with its adjustments.

// startCDI loads the CDI spec dirs and watches them (Options.EnableCDI).
func (r *ContainerdRuntime) startCDI() {
	if !r.opts.EnableCDI {
		return
	}
	dirs := r.opts.CDISpecDirs
	if len(dirs) == 0 {
		dirs = cdi.DefaultSpecDirs
	}
	r.cdi = cdi.New(dirs)
}

func (r *ContainerdRuntime) stopCDI() {
	if r.cdi != nil {
		r.cdi.Close()
	}
}

// cdiSpecOpts is the spec option injecting the CDI devices config asks for, none when it asks for
// none. A malformed or unknown device is InvalidArgument. With CDI off the devices are ignored.
func (r *ContainerdRuntime) cdiSpecOpts(config *runtime.ContainerConfig, log *logrus.Entry) ([]oci.SpecOpts, error) {
	devices, err := cdi.Requested(config)
	if r.cdi == nil {
		if len(devices) > 0 || err != nil {
			log.WithField("devices", devices).Debug("CDI devices ignored: enable_cdi is off")
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(devices) == 0 {
		return nil, nil
	}
	if err := r.cdi.Resolve(devices); err != nil {
		return nil, err
	}
	log.WithField("devices", devices).Debug("CDI devices")
	return []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		return r.cdi.Inject(s, devices...)
	}}, nil
}

// nriCDIInjector injects the CDI devices an NRI plugin adds to a container.
func (r *ContainerdRuntime) nriCDIInjector(spec *runtimespec.Spec, devices []string) error {
	if r.cdi == nil {
		return fmt.Errorf("CDI devices %v: enable_cdi is off", devices)
	}
	return r.cdi.Inject(spec, devices...)
}
