package standalone

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/cri-shim/cri-shim/legacy"
	"github.com/cri-shim/cri-shim/lsm"
	corev1 "k8s.io/api/core/v1"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// The security fields of a manifest. Each is either honoured as the kubelet honours it
// (kuberuntime's security_context.go and helpers: the CRI fields it sets) or refused by Convert
// with an error naming the field. None is dropped: a manifest asking for confinement the runtime
// would not apply (an SELinux label, an AppArmor profile on a host without AppArmor, a Windows
// option) does not run unconfined while its operator believes otherwise.
//
// Honoured: runAsUser, runAsGroup, runAsNonRoot, supplementalGroups, supplementalGroupsPolicy,
// fsGroup (+ fsGroupChangePolicy), sysctls (namespaced ones), seccompProfile (+ the deprecated
// seccomp annotations), appArmorProfile Unconfined, and RuntimeDefault and Localhost on a host
// with AppArmor (+ the deprecated annotations), capabilities, privileged, readOnlyRootFilesystem,
// allowPrivilegeEscalation, procMount, hostUsers; volumeMounts' mountPropagation,
// recursiveReadOnly, subPathExpr.
// Refused: seLinuxOptions and seLinuxChangePolicy (the runtime applies no SELinux label),
// windowsOptions (Windows only), appArmorProfile RuntimeDefault and Localhost on a host without
// AppArmor, volumeMounts' bindMountOptions (the runtime ignores CRI mount options).

// The masked and read-only paths of /proc and /sys the kubelet sends for procMount Default
// (k8s.io/kubernetes pkg/securitycontext, kept in sync with moby's defaults). The runtime adds
// none by itself: without them a container's root could write /proc/sys and /proc/sysrq-trigger.
var (
	defaultMaskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	defaultReadonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// appArmorEnabled tells whether the runtime confines containers with AppArmor on this host
// (replaceable by tests).
var appArmorEnabled = func() bool { ok, _ := lsm.AppArmorSupported(); return ok }

// The fields of the security structs Convert knows (honours or refuses by name). A field added to
// k8s.io/api later is refused by refuseUnknown until it is handled here.
var (
	knownPodSecurity = []string{"seLinuxOptions", "windowsOptions", "runAsUser", "runAsGroup", "runAsNonRoot",
		"supplementalGroups", "supplementalGroupsPolicy", "fsGroup", "sysctls", "fsGroupChangePolicy",
		"seccompProfile", "appArmorProfile", "seLinuxChangePolicy"}
	knownContainerSecurity = []string{"capabilities", "privileged", "seLinuxOptions", "windowsOptions", "runAsUser",
		"runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation", "procMount",
		"seccompProfile", "appArmorProfile"}
	knownVolumeMount = []string{"name", "readOnly", "recursiveReadOnly", "mountPath", "subPath",
		"mountPropagation", "subPathExpr", "bindMountOptions"}
)

// refuseUnknown returns an error naming the first set field of the struct v whose JSON name is
// not in known.
func refuseUnknown(path string, v any, known []string) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	for i := 0; i < rv.NumField(); i++ {
		name, _, _ := strings.Cut(rv.Type().Field(i).Tag.Get("json"), ",")
		if name == "" || name == "-" || slices.Contains(known, name) || rv.Field(i).IsZero() {
			continue
		}
		return fmt.Errorf("%s.%s: not supported by standalone pods", path, name)
	}
	return nil
}

// podSecurity is what the pod's security settings give each container.
type podSecurity struct {
	// groups are the supplemental groups: fsGroup first, then supplementalGroups (the kubelet's
	// order).
	groups       []int64
	groupsPolicy runtime.SupplementalGroupsPolicy
	// seccomp and appArmor are the pod's profiles (its field, else its annotation), for the
	// containers that set none.
	seccomp  *runtime.SecurityProfile
	appArmor *runtime.SecurityProfile
	// hostUsers is false for a pod in a user namespace of its own.
	hostUsers bool
	// idMap is the pod's user namespace mapping (nil: the host's).
	idMap []*runtime.IDMapping
	// rro: the runtime applies recursive read-only mounts (ConvertOptions.RecursiveReadOnly).
	rro bool
}

// convertPodSecurity checks the pod-level security fields, fills sbSec (whose NamespaceOptions the
// containers share) and out's fsGroup, and returns what the containers inherit.
func convertPodSecurity(pod *corev1.Pod, uid legacy.UID, opts ConvertOptions, sbSec *runtime.LinuxSandboxSecurityContext,
	sysctls map[string]string, out *Pod) (*podSecurity, error) {
	spec := &pod.Spec
	ps := &podSecurity{hostUsers: spec.HostUsers == nil || *spec.HostUsers, rro: opts.RecursiveReadOnly != nil && opts.RecursiveReadOnly()}
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	const path = "spec.securityContext"
	if err := refuseUnknown(path, psc, knownPodSecurity); err != nil {
		return nil, err
	}
	if psc.SELinuxOptions != nil {
		return nil, fmt.Errorf("%s.seLinuxOptions: %w", path, errNoSELinux)
	}
	if psc.SELinuxChangePolicy != nil {
		return nil, fmt.Errorf("%s.seLinuxChangePolicy: %w", path, errNoSELinux)
	}
	if psc.WindowsOptions != nil {
		return nil, fmt.Errorf("%s.windowsOptions: %w", path, errWindows)
	}
	if err := checkAnnotations(pod); err != nil {
		return nil, err
	}

	if psc.RunAsUser != nil {
		sbSec.RunAsUser = &runtime.Int64Value{Value: *psc.RunAsUser}
	}
	if psc.RunAsGroup != nil {
		sbSec.RunAsGroup = &runtime.Int64Value{Value: *psc.RunAsGroup}
	}
	if psc.FSGroup != nil {
		ps.groups = append(ps.groups, *psc.FSGroup)
		out.FSGroup = psc.FSGroup
	}
	ps.groups = append(ps.groups, psc.SupplementalGroups...)
	sbSec.SupplementalGroups = ps.groups
	if p := psc.FSGroupChangePolicy; p != nil {
		if *p != corev1.FSGroupChangeAlways && *p != corev1.FSGroupChangeOnRootMismatch {
			return nil, fmt.Errorf("%s.fsGroupChangePolicy %q: want Always or OnRootMismatch", path, *p)
		}
		out.FSGroupChangePolicy = *p
	}
	if p := psc.SupplementalGroupsPolicy; p != nil {
		switch *p {
		case corev1.SupplementalGroupsPolicyMerge:
			ps.groupsPolicy = runtime.SupplementalGroupsPolicy_Merge
		case corev1.SupplementalGroupsPolicyStrict:
			ps.groupsPolicy = runtime.SupplementalGroupsPolicy_Strict
		default:
			return nil, fmt.Errorf("%s.supplementalGroupsPolicy %q: want Merge or Strict", path, *p)
		}
		sbSec.SupplementalGroupsPolicy = ps.groupsPolicy
	}
	for _, s := range psc.Sysctls {
		if err := checkSysctl(s.Name, spec); err != nil {
			return nil, fmt.Errorf("%s.sysctls: %w", path, err)
		}
		sysctls[s.Name] = s.Value
	}

	// Seccomp: the field, else the deprecated annotation (as the API server syncs them).
	sp, err := withSeccompAnnotation(psc.SeccompProfile, pod.Annotations[corev1.SeccompPodAnnotationKey], corev1.SeccompPodAnnotationKey)
	if err != nil {
		return nil, err
	}
	if ps.seccomp, err = seccompProfile(sp, path+".seccompProfile", opts.SeccompRoot); err != nil {
		return nil, err
	}
	sbSec.Seccomp = ps.seccomp // the pause container's
	if ps.appArmor, err = appArmorProfile(psc.AppArmorProfile, path+".appArmorProfile"); err != nil {
		return nil, err
	}

	// A user namespace of the pod's own: 65536 IDs of the host, distinct from other pods'.
	if !ps.hostUsers {
		for _, ns := range []struct {
			name string
			host bool
		}{{"hostNetwork", spec.HostNetwork}, {"hostPID", spec.HostPID}, {"hostIPC", spec.HostIPC}} {
			if ns.host {
				return nil, fmt.Errorf("spec.hostUsers: false cannot be combined with %s (the API server's rule)", ns.name)
			}
		}
		hostID := uint32(usernsFirstID) // a placeholder: the conversion only validates
		if opts.UsernsHostID != nil {
			if hostID, err = opts.UsernsHostID(uid); err != nil {
				return nil, fmt.Errorf("spec.hostUsers: %w", err)
			}
		}
		ps.idMap = []*runtime.IDMapping{{ContainerId: 0, HostId: hostID, Length: usernsLength}}
		sbSec.NamespaceOptions.UsernsOptions = &runtime.UserNamespace{Mode: runtime.NamespaceMode_POD,
			Uids: ps.idMap, Gids: ps.idMap}
	}
	return ps, nil
}

var (
	errNoSELinux = errors.New("not supported: the runtime applies no SELinux labels (no SELinux on its hosts), the pod would run unlabelled")
	errWindows   = errors.New("not supported: Windows only")
)

// convertContainerSecurity is the container's CRI security context: the container's fields over
// the pod's, as the kubelet's determineEffectiveSecurityContext.
func convertContainerSecurity(pod *corev1.Pod, c *corev1.Container, ps *podSecurity, opts ConvertOptions,
	nsOpts *runtime.NamespaceOption) (*runtime.LinuxContainerSecurityContext, error) {
	sc := &runtime.LinuxContainerSecurityContext{NamespaceOptions: nsOpts, SupplementalGroups: slices.Clone(ps.groups),
		SupplementalGroupsPolicy: ps.groupsPolicy}
	psc := pod.Spec.SecurityContext
	nonRoot := false
	if psc != nil {
		if psc.RunAsUser != nil {
			sc.RunAsUser = &runtime.Int64Value{Value: *psc.RunAsUser}
		}
		if psc.RunAsGroup != nil {
			sc.RunAsGroup = &runtime.Int64Value{Value: *psc.RunAsGroup}
		}
		if psc.RunAsNonRoot != nil {
			nonRoot = *psc.RunAsNonRoot
		}
	}
	csc := c.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	const path = "securityContext"
	if err := refuseUnknown(path, csc, knownContainerSecurity); err != nil {
		return nil, err
	}
	if csc.SELinuxOptions != nil {
		return nil, fmt.Errorf("%s.seLinuxOptions: %w", path, errNoSELinux)
	}
	if csc.WindowsOptions != nil {
		return nil, fmt.Errorf("%s.windowsOptions: %w", path, errWindows)
	}
	if csc.Privileged != nil {
		sc.Privileged = *csc.Privileged
	}
	if csc.RunAsUser != nil {
		sc.RunAsUser = &runtime.Int64Value{Value: *csc.RunAsUser}
	}
	if csc.RunAsGroup != nil {
		sc.RunAsGroup = &runtime.Int64Value{Value: *csc.RunAsGroup}
	}
	if csc.RunAsNonRoot != nil {
		nonRoot = *csc.RunAsNonRoot
	}
	if csc.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
	}
	if csc.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*csc.AllowPrivilegeEscalation
	}
	if caps := csc.Capabilities; caps != nil {
		sc.Capabilities = &runtime.Capability{}
		for _, a := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(a))
		}
		for _, d := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(d))
		}
	}
	if nonRoot && (sc.RunAsUser == nil || sc.RunAsUser.Value == 0) {
		// The image's user is not known before the pull: runAsNonRoot needs an explicit UID here.
		return nil, fmt.Errorf("runAsNonRoot: %w: set a non-zero runAsUser", legacy.ErrVerifyNonRoot)
	}
	if sc.RunAsGroup != nil && sc.RunAsUser == nil {
		// The kubelet would take the user from the image, not known before the pull; the runtime
		// refuses a group without a user.
		return nil, fmt.Errorf("%s.runAsGroup: needs runAsUser (the image's user is not known before the pull)", path)
	}

	// /proc: the kubelet's masked and read-only paths, none for Unmasked (which the API server
	// allows only in a user namespace: the pod's root is not the host's there).
	switch pm := csc.ProcMount; {
	case pm == nil || *pm == corev1.DefaultProcMount:
		sc.MaskedPaths = slices.Clone(defaultMaskedPaths)
		sc.ReadonlyPaths = slices.Clone(defaultReadonlyPaths)
	case *pm == corev1.UnmaskedProcMount:
		if ps.hostUsers {
			return nil, fmt.Errorf("%s.procMount: Unmasked needs hostUsers: false", path)
		}
		sc.MaskedPaths, sc.ReadonlyPaths = []string{}, []string{}
	default:
		return nil, fmt.Errorf("%s.procMount %q: want Default or Unmasked", path, *pm)
	}

	// Seccomp: the container's field, else its annotation, else the pod's.
	key := corev1.SeccompContainerAnnotationKeyPrefix + c.Name
	sp, err := withSeccompAnnotation(csc.SeccompProfile, pod.Annotations[key], key)
	if err != nil {
		return nil, err
	}
	if sc.Seccomp, err = seccompProfile(sp, path+".seccompProfile", opts.SeccompRoot); err != nil {
		return nil, err
	}
	if sc.Seccomp == nil {
		sc.Seccomp = ps.seccomp
	}
	// AppArmor: the container's field, else its annotation, else the pod's (apparmor.GetProfile).
	if sc.Apparmor, err = appArmorProfile(csc.AppArmorProfile, path+".appArmorProfile"); err != nil {
		return nil, err
	}
	if sc.Apparmor == nil {
		key := corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix + c.Name
		if v, ok := pod.Annotations[key]; ok {
			ap, err := appArmorFromAnnotation(v)
			if err == nil {
				sc.Apparmor, err = appArmorProfile(ap, "annotation "+key)
			}
			if err != nil {
				return nil, fmt.Errorf("annotation %s: %w", key, err)
			}
		}
	}
	if sc.Apparmor == nil {
		sc.Apparmor = ps.appArmor
	}
	return sc, nil
}

// checkAnnotations refuses the deprecated seccomp and AppArmor annotations that name no container
// of the pod: the container they meant would run unconfined.
func checkAnnotations(pod *corev1.Pod) error {
	names := map[string]bool{}
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		names[c.Name] = true
	}
	for k := range pod.Annotations {
		for _, prefix := range []string{corev1.SeccompContainerAnnotationKeyPrefix, corev1.DeprecatedAppArmorBetaContainerAnnotationKeyPrefix} {
			if name, ok := strings.CutPrefix(k, prefix); ok && !names[name] {
				return fmt.Errorf("metadata.annotations[%s]: no container %q in the pod", k, name)
			}
		}
	}
	return nil
}

// withSeccompAnnotation is the seccomp profile of a field and its deprecated annotation (value
// v of key): the annotation's when the field is unset, as the API server syncs them; an
// annotation that disagrees with the field is an error, as there.
func withSeccompAnnotation(field *corev1.SeccompProfile, v, key string) (*corev1.SeccompProfile, error) {
	if v == "" {
		return field, nil
	}
	var ann *corev1.SeccompProfile
	switch {
	case v == corev1.SeccompProfileRuntimeDefault || v == corev1.DeprecatedSeccompProfileDockerDefault:
		ann = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	case v == corev1.SeccompProfileNameUnconfined:
		ann = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
	case strings.HasPrefix(v, corev1.SeccompLocalhostProfileNamePrefix):
		p := strings.TrimPrefix(v, corev1.SeccompLocalhostProfileNamePrefix)
		ann = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeLocalhost, LocalhostProfile: &p}
	default:
		return nil, fmt.Errorf("annotation %s: seccomp profile %q: want runtime/default, docker/default, unconfined or localhost/<path>", key, v)
	}
	if field == nil {
		return ann, nil
	}
	if field.Type != ann.Type || ptrValue(field.LocalhostProfile) != ptrValue(ann.LocalhostProfile) {
		return nil, fmt.Errorf("annotation %s: seccomp profile %q disagrees with the seccompProfile field (%s)", key, v, field.Type)
	}
	return field, nil
}

func ptrValue(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// seccompProfile is the CRI profile of a manifest's seccompProfile (nil: none set), as the
// kubelet's: a Localhost profile is a file under the seccomp root (the kubelet's
// <root-dir>/seccomp), named by a relative path without "..".
func seccompProfile(p *corev1.SeccompProfile, field, root string) (*runtime.SecurityProfile, error) {
	if p == nil {
		return nil, nil
	}
	if p.Type != corev1.SeccompProfileTypeLocalhost && p.LocalhostProfile != nil {
		return nil, fmt.Errorf("%s: localhostProfile is only for type Localhost", field)
	}
	switch p.Type {
	case corev1.SeccompProfileTypeUnconfined:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, nil
	case corev1.SeccompProfileTypeRuntimeDefault:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, nil
	case corev1.SeccompProfileTypeLocalhost:
		lp := ptrValue(p.LocalhostProfile)
		if lp == "" {
			return nil, fmt.Errorf("%s: type Localhost needs localhostProfile", field)
		}
		if err := validateSubPath(lp); err != nil {
			return nil, fmt.Errorf("%s: localhostProfile %q %v (it is relative to the seccomp profile root)", field, lp, err)
		}
		if root == "" {
			return nil, fmt.Errorf("%s: Localhost profiles need a seccomp profile root", field)
		}
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: filepath.Join(root, lp)}, nil
	}
	return nil, fmt.Errorf("%s: type %q: want RuntimeDefault, Localhost or Unconfined", field, p.Type)
}

// appArmorFromAnnotation is the profile of a deprecated AppArmor annotation's value.
func appArmorFromAnnotation(v string) (*corev1.AppArmorProfile, error) {
	switch {
	case v == corev1.DeprecatedAppArmorBetaProfileRuntimeDefault:
		return &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeRuntimeDefault}, nil
	case v == corev1.DeprecatedAppArmorBetaProfileNameUnconfined:
		return &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeUnconfined}, nil
	case strings.HasPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix):
		p := strings.TrimPrefix(v, corev1.DeprecatedAppArmorBetaProfileNamePrefix)
		return &corev1.AppArmorProfile{Type: corev1.AppArmorProfileTypeLocalhost, LocalhostProfile: &p}, nil
	}
	return nil, fmt.Errorf("apparmor profile %q: want runtime/default, unconfined or localhost/<name>", v)
}

// appArmorProfile is the CRI profile of a manifest's appArmorProfile (nil: none set). On a host
// with AppArmor the runtime applies a Localhost profile (which must be loaded) and its default
// profile for RuntimeDefault; on a host without, both are refused rather than run unconfined (the
// kubelet also refuses a pod that needs AppArmor on a host without it).
func appArmorProfile(p *corev1.AppArmorProfile, field string) (*runtime.SecurityProfile, error) {
	if p == nil {
		return nil, nil
	}
	if p.Type != corev1.AppArmorProfileTypeLocalhost && p.LocalhostProfile != nil {
		return nil, fmt.Errorf("%s: localhostProfile is only for type Localhost", field)
	}
	switch p.Type {
	case corev1.AppArmorProfileTypeUnconfined:
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Unconfined}, nil
	case corev1.AppArmorProfileTypeRuntimeDefault:
		if !appArmorEnabled() {
			return nil, fmt.Errorf("%s: RuntimeDefault: AppArmor is not enabled on this host", field)
		}
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_RuntimeDefault}, nil
	case corev1.AppArmorProfileTypeLocalhost:
		lp := strings.TrimSpace(ptrValue(p.LocalhostProfile))
		if lp == "" {
			return nil, fmt.Errorf("%s: type Localhost needs localhostProfile", field)
		}
		if !appArmorEnabled() {
			return nil, fmt.Errorf("%s: Localhost profile %q: AppArmor is not enabled on this host", field, lp)
		}
		return &runtime.SecurityProfile{ProfileType: runtime.SecurityProfile_Localhost, LocalhostRef: lp}, nil
	}
	return nil, fmt.Errorf("%s: type %q: want RuntimeDefault, Localhost or Unconfined", field, p.Type)
}

// checkSysctl refuses, as the kubelet does, a sysctl no namespace of the pod holds: one of the
// node (it would change the host for everyone), a net.* one with hostNetwork, an IPC one with
// hostIPC. Namespaced sysctls are allowed, unsafe ones included (the manifests dir is root's;
// the kubelet would need --allowed-unsafe-sysctls for those).
func checkSysctl(name string, spec *corev1.PodSpec) error {
	n := name
	if i := strings.IndexAny(n, "./"); i >= 0 && n[i] == '/' {
		// "net/ipv4/ip_forward" is "net.ipv4.ip_forward" (the kubelet swaps the separators).
		n = strings.Map(func(r rune) rune {
			switch r {
			case '/':
				return '.'
			case '.':
				return '/'
			}
			return r
		}, n)
	}
	switch {
	case n == "kernel.sem" || strings.HasPrefix(n, "kernel.shm") || strings.HasPrefix(n, "kernel.msg") || strings.HasPrefix(n, "fs.mqueue."):
		if spec.HostIPC {
			return fmt.Errorf("sysctl %s is of the IPC namespace: not with hostIPC", name)
		}
	case strings.HasPrefix(n, "net."):
		if spec.HostNetwork {
			return fmt.Errorf("sysctl %s is of the network namespace: not with hostNetwork", name)
		}
	default:
		return fmt.Errorf("sysctl %s is not namespaced: it would change the node", name)
	}
	return nil
}

// convertMountOptions sets the CRI mount's propagation, recursive read-only and ID mappings from
// the volumeMount, as the kubelet does (and as the API server validates them).
func convertMountOptions(vm *corev1.VolumeMount, m *runtime.Mount, privileged bool, ps *podSecurity) error {
	if err := refuseUnknown(fmt.Sprintf("volumeMount %q", vm.Name), vm, knownVolumeMount); err != nil {
		return err
	}
	if len(vm.BindMountOptions) > 0 {
		return fmt.Errorf("volumeMount %q: bindMountOptions: not supported (the runtime applies no CRI mount options)", vm.Name)
	}
	m.Propagation = runtime.MountPropagation_PROPAGATION_PRIVATE
	if p := vm.MountPropagation; p != nil {
		switch *p {
		case corev1.MountPropagationNone:
		case corev1.MountPropagationHostToContainer:
			m.Propagation = runtime.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
		case corev1.MountPropagationBidirectional:
			if !privileged {
				return fmt.Errorf("volumeMount %q: mountPropagation Bidirectional is only for privileged containers", vm.Name)
			}
			m.Propagation = runtime.MountPropagation_PROPAGATION_BIDIRECTIONAL
		default:
			return fmt.Errorf("volumeMount %q: mountPropagation %q: want None, HostToContainer or Bidirectional", vm.Name, *p)
		}
	}
	if r := vm.RecursiveReadOnly; r != nil && *r != corev1.RecursiveReadOnlyDisabled {
		if *r != corev1.RecursiveReadOnlyEnabled && *r != corev1.RecursiveReadOnlyIfPossible {
			return fmt.Errorf("volumeMount %q: recursiveReadOnly %q: want Disabled, IfPossible or Enabled", vm.Name, *r)
		}
		if !vm.ReadOnly {
			return fmt.Errorf("volumeMount %q: recursiveReadOnly needs readOnly: true", vm.Name)
		}
		if m.Propagation != runtime.MountPropagation_PROPAGATION_PRIVATE {
			return fmt.Errorf("volumeMount %q: recursiveReadOnly needs mountPropagation None", vm.Name)
		}
		// Enabled is refused by the runtime where runc cannot; IfPossible falls back there.
		m.RecursiveReadOnly = *r == corev1.RecursiveReadOnlyEnabled || ps.rro
	}
	// In a user namespace, the volumes are idmapped with the pod's mapping (what the runtime does
	// for the CRI mounts that carry one): IDs on the disk are the IDs inside, so fsGroup and the
	// files' owners mean the same in the container as on the host.
	if ps.idMap != nil {
		m.UidMappings, m.GidMappings = ps.idMap, ps.idMap
	}
	return nil
}
