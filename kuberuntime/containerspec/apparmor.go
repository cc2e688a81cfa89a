package containerspec

import (
	"context"
	"fmt"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/lsm"
	runtimespec "github.com/opencontainers/runtime-spec/specs-go"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// apparmorOpt is the container's AppArmor profile, as containerd's CRI chooses it. On a host with
// AppArmor: none set or RuntimeDefault is the runtime's default profile (loaded when first
// needed), except for a privileged container, which runs unconfined unless it names a profile;
// Localhost is that profile, which must be loaded; Unconfined is none. On a host without AppArmor
// no profile is set, and asking for a Localhost one is refused rather than run unconfined.
func apparmorOpt(sc *runtime.LinuxContainerSecurityContext, aa *lsm.AppArmor) (oci.SpecOpts, error) {
	p, err := apparmorProfile(sc)
	if err != nil {
		return nil, err
	}
	if !aa.Enabled() {
		if p.GetProfileType() == runtime.SecurityProfile_Localhost {
			return nil, fmt.Errorf("apparmor profile %q requested but AppArmor is not enabled on the host: %w", p.GetLocalhostRef(), errdefs.ErrInvalidArgument)
		}
		return nil, nil
	}
	if p == nil {
		p = &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}
	}
	if p.GetProfileType() != runtime.SecurityProfile_Localhost && p.GetLocalhostRef() != "" {
		return nil, fmt.Errorf("apparmor: localhost_ref %q is set on a %s profile: %w", p.GetLocalhostRef(), p.GetProfileType(), errdefs.ErrInvalidArgument)
	}
	switch p.GetProfileType() {
	case runtime.SecurityProfile_Unconfined:
		return nil, nil
	case runtime.SecurityProfile_RuntimeDefault:
		if sc.GetPrivileged() {
			return nil, nil
		}
		return withDefaultAppArmorProfile(aa), nil
	case runtime.SecurityProfile_Localhost:
		name := strings.TrimPrefix(p.GetLocalhostRef(), "localhost/")
		if name == "" {
			return nil, fmt.Errorf("apparmor: a Localhost profile needs a name: %w", errdefs.ErrInvalidArgument)
		}
		loaded, err := aa.ProfileLoaded(name)
		if err != nil {
			return nil, fmt.Errorf("apparmor profile %q: %w: %w", name, err, errdefs.ErrFailedPrecondition)
		}
		if !loaded {
			return nil, fmt.Errorf("apparmor profile %q is not loaded on this host: %w", name, errdefs.ErrFailedPrecondition)
		}
		return oci.WithApparmorProfile(name), nil
	}
	return nil, fmt.Errorf("apparmor: unknown profile type %v: %w", p.GetProfileType(), errdefs.ErrInvalidArgument)
}

// apparmorProfile is the container's profile: its field, else its deprecated string (the form
// older kubelets send), else nil.
func apparmorProfile(sc *runtime.LinuxContainerSecurityContext) (*runtime.SecurityProfile, error) {
	if p := sc.GetApparmor(); p != nil {
		return p, nil
	}
	//nolint:staticcheck // the deprecated field is still sent by older kubelets
	switch pp := sc.GetApparmorProfile(); {
	case pp == "":
		return nil, nil
	case pp == "unconfined":
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, nil
	case pp == "runtime/default" || pp == "docker/default":
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, nil
	case strings.HasPrefix(pp, "localhost/"):
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: strings.TrimPrefix(pp, "localhost/")}, nil
	default:
		return nil, fmt.Errorf("apparmor: unknown profile %q: %w", pp, errdefs.ErrInvalidArgument)
	}
}

// withDefaultAppArmorProfile gives the container the runtime's default profile, loading it into
// the kernel when it is not there yet (when the container is created, as containerd does).
func withDefaultAppArmorProfile(aa *lsm.AppArmor) oci.SpecOpts {
	return func(ctx context.Context, _ oci.Client, _ *containers.Container, s *runtimespec.Spec) error {
		name, err := aa.EnsureDefault(ctx)
		if err != nil {
			return err
		}
		if s.Process == nil {
			s.Process = &runtimespec.Process{}
		}
		s.Process.ApparmorProfile = name
		return nil
	}
}
