package kuberuntime

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/kuberuntime/containerspec"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// HandlerSpec is what a runtime handler does to the OCI specs of its pods, beside the shim and
// options it runs them with (legacy.RuntimeHandler).
type HandlerSpec struct {
	// PodAnnotations are patterns (path.Match) of the pod annotations passed into the specs of the
	// pod's sandbox and containers, as containerd's pod_annotations.
	PodAnnotations []string
	// PrivilegedWithoutHostDevices gives privileged containers none of the host's devices, only
	// those they request (VM-based runtimes, whose guest has devices of its own).
	PrivilegedWithoutHostDevices bool
	// BaseSpec is the spec the sandbox and container specs start from instead of containerd's
	// default; nil: the default.
	BaseSpec *runtimespec.Spec
}

// handlerNames are the handlers pods may name, the default first.
func (r *ContainerdRuntime) handlerNames() []string {
	names := make([]string, 0, len(r.opts.RuntimeHandlers))
	for _, h := range r.opts.RuntimeHandlers {
		names = append(names, h.Name)
	}
	return names
}

// unknownHandler is the error for a pod naming a handler that is not configured.
func (r *ContainerdRuntime) unknownHandler(name string) error {
	return fmt.Errorf("unknown runtime handler %q (configured: %s): %w", name, strings.Join(r.handlerNames(), ", "), errdefs.ErrInvalidArgument)
}

// handlerSpec is the HandlerSpec of the handler named name ("" the default).
func (r *ContainerdRuntime) handlerSpec(name string) HandlerSpec {
	if h, ok := r.handlers[name]; ok {
		name = h.Name
	}
	return r.opts.HandlerSpecs[name]
}

// sandboxSpecOpts wraps the pause container's spec options with the handler's: its base spec
// first, the pod's passed-through annotations last.
func (hs HandlerSpec) sandboxSpecOpts(config *runtime.PodSandboxConfig, opts []oci.SpecOpts) []oci.SpecOpts {
	out := make([]oci.SpecOpts, 0, len(opts)+2)
	if hs.BaseSpec != nil {
		out = append(out, withBaseSpec(hs.BaseSpec))
	}
	out = append(out, opts...)
	return append(out, withPassthroughAnnotations(hs.PodAnnotations, config.GetAnnotations()))
}

// containerSpecOpts wraps a container's spec options with the handler's: its base spec first, the
// pod's passed-through annotations and, for a privileged container of a handler without host
// devices, the requested devices alone last.
func (hs HandlerSpec) containerSpecOpts(config *runtime.ContainerConfig, sandboxConfig *runtime.PodSandboxConfig, opts []oci.SpecOpts) []oci.SpecOpts {
	out := make([]oci.SpecOpts, 0, len(opts)+3)
	if hs.BaseSpec != nil {
		out = append(out, withBaseSpec(hs.BaseSpec))
	}
	out = append(out, opts...)
	out = append(out, withPassthroughAnnotations(hs.PodAnnotations, sandboxConfig.GetAnnotations()))
	if hs.PrivilegedWithoutHostDevices && config.GetLinux().GetSecurityContext().GetPrivileged() {
		out = append(out, withRequestedDevicesOnly(config, hs.BaseSpec))
	}
	return out
}

// withBaseSpec replaces the generator's default spec with a copy of base; the cgroups path is the
// default's (the options set the pod's), so no two containers share the base's.
func withBaseSpec(base *runtimespec.Spec) oci.SpecOpts {
	return func(ctx context.Context, _ oci.Client, c *containers.Container, s *runtimespec.Spec) error {
		cp, err := copySpec(base)
		if err != nil {
			return fmt.Errorf("base runtime spec: %w", err)
		}
		cp.Linux.CgroupsPath = ""
		if ns, ok := namespaces.Namespace(ctx); ok {
			cp.Linux.CgroupsPath = filepath.Join("/", ns, c.ID)
		}
		*s = *cp
		return nil
	}
}

func copySpec(s *runtimespec.Spec) (*runtimespec.Spec, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var cp runtimespec.Spec
	if err := json.Unmarshal(data, &cp); err != nil {
		return nil, err
	}
	return &cp, nil
}

// withPassthroughAnnotations copies the pod annotations whose key matches one of patterns into the
// spec; the annotations cri-shim sets itself are kept.
func withPassthroughAnnotations(patterns []string, podAnnotations map[string]string) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		for k, v := range podAnnotations {
			if !matchesAny(patterns, k) {
				continue
			}
			if s.Annotations == nil {
				s.Annotations = map[string]string{}
			}
			if _, set := s.Annotations[k]; !set {
				s.Annotations[k] = v
			}
		}
		return nil
	}
}

func matchesAny(patterns []string, key string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool {
		ok, _ := path.Match(p, key)
		return ok
	})
}

// withRequestedDevicesOnly takes the host's devices back from a privileged container: the device
// nodes and cgroup rules are the base's (deny all, without a base spec) plus the devices the
// container requested.
func withRequestedDevicesOnly(config *runtime.ContainerConfig, base *runtimespec.Spec) oci.SpecOpts {
	return func(ctx context.Context, client oci.Client, c *containers.Container, s *runtimespec.Spec) error {
		if s.Linux == nil {
			s.Linux = &runtimespec.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &runtimespec.LinuxResources{}
		}
		s.Linux.Devices = nil
		s.Linux.Resources.Devices = []runtimespec.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
		if base != nil && base.Linux != nil {
			s.Linux.Devices = slices.Clone(base.Linux.Devices)
			if base.Linux.Resources != nil {
				s.Linux.Resources.Devices = slices.Clone(base.Linux.Resources.Devices)
			}
		}
		// The requested devices, as the spec builder adds them.
		if err := containerspec.WithDevices(config)(ctx, client, c, s); err != nil {
			return err
		}
		return nil
	}
}

// DefaultBaseSpec is containerd's default spec (what `ctr oci spec` prints), the usual start of a
// base_runtime_spec, with ociVersion set to version when not empty: an OCI runtime that knows only
// older specs, such as Debian 12's crun 1.8.1 (ociVersion 1.0.x alone), runs containers from a
// base with its version.
func DefaultBaseSpec(version string) (*runtimespec.Spec, error) {
	ctx := namespaces.WithNamespace(context.Background(), "default")
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "base"})
	if err != nil {
		return nil, err
	}
	s.Linux.CgroupsPath = ""
	if version != "" {
		s.Version = version
	}
	return s, nil
}
