// Package standalone runs Kubernetes Pod manifests without a kubelet: each manifest of a watched
// directory becomes a legacy.PodSpec that the model's SyncPod keeps in its desired state
// (restarts with the crash-loop backoff, replacement of changed containers, probes, container GC),
// with an event history per pod that the `cri-shim pods` commands read.
package standalone

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
	"sigs.k8s.io/yaml"
)

// Labels and annotations standalone pods carry, besides the kubelet's own
// (io.kubernetes.pod.name, io.kubernetes.pod.namespace, io.kubernetes.pod.uid,
// io.kubernetes.container.name).
const (
	// LabelOwner marks the sandboxes and containers of standalone pods: OwnerValue.
	LabelOwner = "io.cri-shim.owner"
	OwnerValue = "standalone"
	// AnnotationManifest is the manifest file the pod comes from.
	AnnotationManifest = "io.cri-shim.manifest"

	labelPodName       = "io.kubernetes.pod.name"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	// annotationConfigSource is the kubelet's annotation of where a static pod came from.
	annotationConfigSource = "kubernetes.io/config.source"
	// annotationDNSPolicy is the pod's dnsPolicy when not the default (ClusterFirst): with the
	// dnsConfig in the sandbox config, it puts what decides the pod's DNS into the sandbox's spec
	// hash, so an edit of either replaces the sandbox.
	annotationDNSPolicy = "io.cri-shim.dns-policy"
)

// Defaults of the pod spec fields a manifest may leave out.
const (
	DefaultNamespace          = "default"
	DefaultGracePeriod        = 30 * time.Second
	DefaultPodLogRoot         = "/var/log/pods"
	defaultProbePeriod        = 10 * time.Second
	defaultProbeTimeout       = time.Second
	defaultProbeFailThreshold = 3
)

// ProbeKind is what a probe checks.
type ProbeKind string

const (
	ProbeLiveness  ProbeKind = "Liveness"
	ProbeReadiness ProbeKind = "Readiness"
)

// Probe is a container probe converted from the manifest: exactly one of Exec, TCPPort and
// HTTPPort is set.
type Probe struct {
	Kind             ProbeKind
	Exec             []string
	TCPPort          int
	HTTPPort         int
	HTTPPath         string
	HTTPScheme       string
	HTTPHost         string
	HTTPHeaders      map[string]string
	InitialDelay     time.Duration
	Period           time.Duration
	Timeout          time.Duration
	FailureThreshold int
	SuccessThreshold int
}

// Pod is a manifest converted: the spec SyncPod runs, the probes of each container, and the
// directories the pod's emptyDir volumes need.
type Pod struct {
	Name, Namespace string
	UID             legacy.UID
	// Source is the manifest file.
	Source string
	Spec   *legacy.PodSpec
	// Probes by container name.
	Probes map[string][]Probe
	// EmptyDirs are host directories to create before the containers start.
	EmptyDirs []string
	// SubPaths are the volumeMounts with a subPath, by container name: mounted by the manager's
	// RuntimeHelper before each start of the container (subpath.go).
	SubPaths map[string][]SubPath
	// HostNetwork tells whether the pod uses the node's network.
	HostNetwork bool
	// DNSPolicy and DNSConfig are the manifest's: the manager's RuntimeHelper makes the
	// sandbox's DNS config of them (dns.go).
	DNSPolicy corev1.DNSPolicy
	DNSConfig *corev1.PodDNSConfig
	// FSGroup is the pod's securityContext.fsGroup (nil: none): a supplemental group of every
	// container, and the group owning its emptyDirs (setgid), as the kubelet's volume
	// ownership makes them (volumes.go).
	FSGroup *int64
	// FSGroupChangePolicy is the pod's fsGroupChangePolicy: Always (the default) or
	// OnRootMismatch.
	FSGroupChangePolicy corev1.PodFSGroupChangePolicy
}

// Key is namespace/name.
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

// ConvertOptions are the node paths a conversion uses.
type ConvertOptions struct {
	// PodLogRoot holds the pods' log directories (default /var/log/pods, as the kubelet's).
	PodLogRoot string
	// VolumeRoot holds the emptyDir volumes, one dir per pod UID.
	VolumeRoot string
	// SeccompRoot is the dir the Localhost seccomp profiles of a manifest are relative to (the
	// kubelet's <root-dir>/seccomp); empty: Localhost profiles are refused.
	SeccompRoot string
	// UsernsHostID returns the first host ID of the usernsLength IDs a pod with hostUsers:
	// false maps (the same for the same UID, distinct between pods: userns.go). Nil: a
	// placeholder, for a conversion that only validates (`pods apply`).
	UsernsHostID func(legacy.UID) (uint32, error)
	// RecursiveReadOnly tells whether the runtime applies recursive read-only mounts (its runc
	// has "rro"); nil: it does not, and recursiveReadOnly: IfPossible falls back to read-only.
	RecursiveReadOnly func() bool
}

// ParseManifest decodes a Pod manifest (YAML or JSON); unknown fields are errors.
func ParseManifest(data []byte) (*corev1.Pod, error) {
	var pod corev1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		return nil, fmt.Errorf("decode pod manifest: %w", err)
	}
	if pod.Kind != "" && pod.Kind != "Pod" {
		return nil, fmt.Errorf("kind %q: only Pod manifests are supported", pod.Kind)
	}
	if pod.APIVersion != "" && pod.APIVersion != "v1" {
		return nil, fmt.Errorf("apiVersion %q: want v1", pod.APIVersion)
	}
	if pod.Namespace == "" {
		pod.Namespace = DefaultNamespace
	}
	return &pod, nil
}

// PodUID is the UID of a standalone pod: the manifest's metadata.uid, or one derived from its
// namespace and name (stable across edits, so that an edit replaces containers, not the pod).
func PodUID(pod *corev1.Pod) legacy.UID {
	if pod.UID != "" {
		return legacy.UID(pod.UID)
	}
	sum := sha256.Sum256([]byte("cri-shim/standalone/" + pod.Namespace + "/" + pod.Name))
	h := hex.EncodeToString(sum[:16])
	return legacy.UID(h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32])
}

// Convert turns a pod manifest into the model's PodSpec and the probes. Fields it does not
// support are errors rather than silently ignored.
func Convert(pod *corev1.Pod, source string, opts ConvertOptions) (*Pod, error) {
	if err := validatePod(pod); err != nil {
		return nil, err
	}
	cv := newConversion(pod, source, opts)
	sandbox, err := cv.sandboxConfig(source)
	if err != nil {
		return nil, err
	}
	if cv.volumes, err = cv.podVolumes(); err != nil {
		return nil, err
	}
	ps, err := podSpec(&pod.Spec, sandbox)
	if err != nil {
		return nil, err
	}
	if err := cv.initContainers(ps); err != nil {
		return nil, err
	}
	if err := cv.containers(ps); err != nil {
		return nil, err
	}
	if err := validateForRuntime(ps); err != nil {
		return nil, err
	}
	cv.out.Spec = ps
	return cv.out, nil
}

// conversion is one manifest being converted: what its steps share.
type conversion struct {
	pod  *corev1.Pod
	spec *corev1.PodSpec
	uid  legacy.UID
	opts ConvertOptions
	out  *Pod
	// subRoot is the pod's dir of subPath mounts under the volume root ("" without one).
	subRoot string
	// nsOpts are the pod's namespaces, which its containers share.
	nsOpts *runtime.NamespaceOption
	// psec is what the containers inherit of the pod's security fields.
	psec *podSecurity
	// volumes are the host paths of the pod's volumes, by name.
	volumes map[string]string
	// seen are the names of the containers converted so far.
	seen map[string]bool
}

// validatePod checks, before anything is converted, what becomes paths, labels and CNI_ARGS
// (validate.go), the DNS fields (the sandbox's DNS is the manager's RuntimeHelper's, by the
// policy, at each sync: dns.go) and that there is a container.
func validatePod(pod *corev1.Pod) error {
	if err := validateMeta(pod); err != nil {
		return err
	}
	if err := validateVolumes(pod.Spec.Volumes); err != nil {
		return err
	}
	if err := validatePodDNS(&pod.Spec); err != nil {
		return err
	}
	if len(pod.Spec.Containers) == 0 {
		return errors.New("spec.containers: at least one container is required")
	}
	return nil
}

func newConversion(pod *corev1.Pod, source string, opts ConvertOptions) *conversion {
	if opts.PodLogRoot == "" {
		opts.PodLogRoot = DefaultPodLogRoot
	}
	uid := PodUID(pod)
	spec := &pod.Spec
	cv := &conversion{pod: pod, spec: spec, uid: uid, opts: opts, seen: map[string]bool{},
		out: &Pod{Name: pod.Name, Namespace: pod.Namespace, UID: uid, Source: source, Probes: map[string][]Probe{},
			SubPaths: map[string][]SubPath{}, HostNetwork: spec.HostNetwork, DNSPolicy: spec.DNSPolicy, DNSConfig: spec.DNSConfig}}
	if opts.VolumeRoot != "" {
		cv.subRoot = filepath.Join(opts.VolumeRoot, string(uid), subPathDir)
	}
	return cv
}

// sandboxConfig is the pod's sandbox config: its metadata, labels and annotations, log dir,
// hostname, namespaces and security (security.go).
func (cv *conversion) sandboxConfig(source string) (*runtime.PodSandboxConfig, error) {
	pod, spec := cv.pod, cv.spec
	cv.nsOpts = namespaceOptions(spec)
	sbSec := &runtime.LinuxSandboxSecurityContext{NamespaceOptions: cv.nsOpts}
	sysctls := map[string]string{}
	// The security fields: honoured or refused, never dropped (security.go).
	psec, err := convertPodSecurity(pod, cv.uid, cv.opts, sbSec, sysctls, cv.out)
	if err != nil {
		return nil, err
	}
	cv.psec = psec
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			sbSec.Privileged = true
		}
	}
	hostname := spec.Hostname
	if hostname == "" && !spec.HostNetwork {
		hostname = pod.Name
	}
	// The manifest's own DNS: the manager's RuntimeHelper gives a new sandbox the DNS made of it
	// and the host's resolv.conf (dns.go); this one is what the spec hash covers.
	return &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(cv.uid)},
		Hostname:     hostname,
		LogDirectory: filepath.Join(cv.opts.PodLogRoot, pod.Namespace+"_"+pod.Name+"_"+string(cv.uid)),
		DnsConfig:    specDNSConfig(spec.DNSConfig),
		Labels:       podLabels(pod, cv.uid),
		Annotations:  podAnnotations(pod, source),
		Linux:        &runtime.LinuxPodSandboxConfig{SecurityContext: sbSec, Sysctls: sysctls},
	}, nil
}

// podLabels are the manifest's labels with the kubelet's pod labels and the owner's.
func podLabels(pod *corev1.Pod, uid legacy.UID) map[string]string {
	labels := map[string]string{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[labelPodName], labels[labelPodNamespace], labels[labelPodUID] = pod.Name, pod.Namespace, string(uid)
	labels[LabelOwner] = OwnerValue
	return labels
}

// podAnnotations are the manifest's annotations with where the pod comes from.
func podAnnotations(pod *corev1.Pod, source string) map[string]string {
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	annotations[annotationConfigSource] = "file"
	if p := pod.Spec.DNSPolicy; p != "" && p != corev1.DNSClusterFirst {
		annotations[annotationDNSPolicy] = string(p)
	}
	if source != "" {
		annotations[AnnotationManifest] = source
	}
	return annotations
}

// namespaceOptions are the pod's namespaces: its own network and IPC, the containers' own PIDs,
// or the node's (hostNetwork, hostPID, hostIPC), or one PID namespace for the pod
// (shareProcessNamespace).
func namespaceOptions(spec *corev1.PodSpec) *runtime.NamespaceOption {
	nsOpts := &runtime.NamespaceOption{Network: runtime.NamespaceMode_POD, Pid: runtime.NamespaceMode_CONTAINER, Ipc: runtime.NamespaceMode_POD}
	if spec.HostNetwork {
		nsOpts.Network = runtime.NamespaceMode_NODE
	}
	if spec.HostPID {
		nsOpts.Pid = runtime.NamespaceMode_NODE
	} else if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace {
		nsOpts.Pid = runtime.NamespaceMode_POD
	}
	if spec.HostIPC {
		nsOpts.Ipc = runtime.NamespaceMode_NODE
	}
	return nsOpts
}

// podVolumes are the host paths of the pod's volumes by name: a hostPath's path, an emptyDir's
// dir under the volume root (made before the containers start: out.EmptyDirs).
func (cv *conversion) podVolumes() (map[string]string, error) {
	volumes := map[string]string{}
	for _, v := range cv.spec.Volumes {
		switch {
		case v.HostPath != nil:
			if !filepath.IsAbs(v.HostPath.Path) {
				return nil, fmt.Errorf("volume %q: hostPath.path must be absolute", v.Name)
			}
			volumes[v.Name] = filepath.Clean(v.HostPath.Path)
		case v.EmptyDir != nil:
			if cv.opts.VolumeRoot == "" {
				return nil, fmt.Errorf("volume %q: emptyDir needs a volume root", v.Name)
			}
			dir := filepath.Join(cv.opts.VolumeRoot, string(cv.uid), "volumes", v.Name)
			volumes[v.Name] = dir
			cv.out.EmptyDirs = append(cv.out.EmptyDirs, dir)
		default:
			return nil, fmt.Errorf("volume %q: only hostPath and emptyDir volumes are supported", v.Name)
		}
	}
	return volumes, nil
}

// podSpec is the PodSpec of the sandbox, without its containers: restart policy, grace period,
// runtime handler.
func podSpec(spec *corev1.PodSpec, sandbox *runtime.PodSandboxConfig) (*legacy.PodSpec, error) {
	policy, err := restartPolicy(spec.RestartPolicy)
	if err != nil {
		return nil, err
	}
	grace, err := gracePeriod(spec.TerminationGracePeriodSeconds)
	if err != nil {
		return nil, err
	}
	ps := &legacy.PodSpec{Sandbox: sandbox, RestartPolicy: policy, StopTimeout: grace}
	if spec.RuntimeClassName != nil {
		ps.RuntimeHandler = *spec.RuntimeClassName
	}
	return ps, nil
}

func restartPolicy(p corev1.RestartPolicy) (legacy.RestartPolicy, error) {
	switch p {
	case "", corev1.RestartPolicyAlways:
		return legacy.RestartPolicyAlways, nil
	case corev1.RestartPolicyOnFailure:
		return legacy.RestartPolicyOnFailure, nil
	case corev1.RestartPolicyNever:
		return legacy.RestartPolicyNever, nil
	default:
		return "", fmt.Errorf("spec.restartPolicy %q: want Always, OnFailure or Never", p)
	}
}

// gracePeriod is terminationGracePeriodSeconds, DefaultGracePeriod when unset.
func gracePeriod(seconds *int64) (time.Duration, error) {
	if seconds == nil {
		return DefaultGracePeriod, nil
	}
	if *seconds < 0 {
		return 0, errors.New("spec.terminationGracePeriodSeconds: must be non-negative")
	}
	return time.Duration(*seconds) * time.Second, nil
}

// initContainers converts the init containers, which have neither probes nor hooks.
func (cv *conversion) initContainers(ps *legacy.PodSpec) error {
	for i := range cv.spec.InitContainers {
		c := &cv.spec.InitContainers[i]
		if c.LivenessProbe != nil || c.ReadinessProbe != nil {
			return fmt.Errorf("init container %q: probes are not allowed on init containers", c.Name)
		}
		if c.Lifecycle != nil {
			return fmt.Errorf("init container %q: lifecycle hooks are not allowed on init containers: %w", c.Name, errdefs.ErrInvalidArgument)
		}
		cs, _, subs, err := cv.convertContainer(c)
		if err != nil {
			return fmt.Errorf("init container %q: %w", c.Name, err)
		}
		if len(subs) > 0 {
			cv.out.SubPaths[c.Name] = subs
		}
		ps.InitContainers = append(ps.InitContainers, cs)
	}
	return nil
}

// containers converts the containers with their hooks and probes; their host ports become the
// sandbox's port mappings.
func (cv *conversion) containers(ps *legacy.PodSpec) error {
	for i := range cv.spec.Containers {
		c := &cv.spec.Containers[i]
		cs, hostPorts, subs, err := cv.convertContainer(c)
		if err != nil {
			return fmt.Errorf("container %q: %w", c.Name, err)
		}
		if cs.Lifecycle, err = convertLifecycle(c, ps.StopTimeout); err != nil {
			return fmt.Errorf("container %q: %w", c.Name, err)
		}
		if len(subs) > 0 {
			cv.out.SubPaths[c.Name] = subs
		}
		ps.Containers = append(ps.Containers, cs)
		ps.Sandbox.PortMappings = append(ps.Sandbox.PortMappings, hostPorts...)
		if err := cv.containerProbes(c); err != nil {
			return err
		}
	}
	return nil
}

// containerProbes converts the container's liveness and readiness probes into out.Probes.
func (cv *conversion) containerProbes(c *corev1.Container) error {
	for _, p := range []struct {
		kind ProbeKind
		p    *corev1.Probe
	}{{ProbeLiveness, c.LivenessProbe}, {ProbeReadiness, c.ReadinessProbe}} {
		if p.p == nil {
			continue
		}
		probe, err := convertProbe(p.kind, p.p, c)
		if err != nil {
			return fmt.Errorf("container %q: %s probe: %w", c.Name, strings.ToLower(string(p.kind)), err)
		}
		cv.out.Probes[c.Name] = append(cv.out.Probes[c.Name], probe)
	}
	return nil
}

// validateForRuntime refuses what the runtime would refuse, here, where `pods apply` reports it,
// rather than at every sync.
func validateForRuntime(ps *legacy.PodSpec) error {
	if err := legacy.ValidateSandboxConfig(ps.Sandbox); err != nil {
		return fmt.Errorf("pod: %w", err)
	}
	for _, cs := range append(append([]legacy.ContainerSpec{}, ps.InitContainers...), ps.Containers...) {
		if err := legacy.ValidateContainerConfig(cs.Config); err != nil {
			return fmt.Errorf("container %q: %w", cs.Config.GetMetadata().GetName(), err)
		}
	}
	return nil
}

// pullPolicy is the container's pull policy, defaulted as the API server does: Always for
// :latest or untagged images, IfNotPresent otherwise.
func pullPolicy(c *corev1.Container) (legacy.PullPolicy, error) {
	switch c.ImagePullPolicy {
	case corev1.PullAlways:
		return legacy.PullAlways, nil
	case corev1.PullIfNotPresent:
		return legacy.PullIfNotPresent, nil
	case corev1.PullNever:
		return legacy.PullNever, nil
	case "":
	default:
		return "", fmt.Errorf("imagePullPolicy %q: want Always, IfNotPresent or Never", c.ImagePullPolicy)
	}
	named, err := reference.ParseNormalizedNamed(c.Image)
	if err != nil {
		return "", fmt.Errorf("image %q: %w", c.Image, err)
	}
	if _, digested := named.(reference.Digested); digested {
		return legacy.PullIfNotPresent, nil
	}
	if t, tagged := named.(reference.Tagged); !tagged || t.Tag() == "latest" {
		return legacy.PullAlways, nil
	}
	return legacy.PullIfNotPresent, nil
}

// convertContainer converts one container; its subPath mounts name targets under the pod's
// subRoot.
func (cv *conversion) convertContainer(c *corev1.Container) (_ legacy.ContainerSpec, _ []*runtime.PortMapping, subs []SubPath, err error) {
	if err := cv.validateContainer(c); err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	policy, err := pullPolicy(c)
	if err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	envs, err := containerEnv(cv.pod, cv.uid, c)
	if err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	cfg := newContainerConfig(cv.pod, cv.uid, c, envs)
	if cfg.Mounts, subs, err = cv.containerMounts(c, envs); err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	hostPorts, err := containerHostPorts(c)
	if err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	if cfg.Linux.Resources, err = convertResources(c.Resources); err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	if cfg.Linux.SecurityContext, err = convertContainerSecurity(cv.pod, c, cv.psec, cv.opts, cv.nsOpts); err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	return legacy.ContainerSpec{Config: cfg, PullPolicy: policy}, hostPorts, subs, nil
}

// validateContainer checks the container's name (a DNS-1123 label, unique in the pod) and image.
func (cv *conversion) validateContainer(c *corev1.Container) error {
	if err := dnsErr(c.Name, validation.IsDNS1123Label(c.Name)); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	if cv.seen[c.Name] {
		return errors.New("duplicate container name")
	}
	cv.seen[c.Name] = true
	if c.Image == "" {
		return errors.New("image is required")
	}
	if _, err := reference.ParseNormalizedNamed(c.Image); err != nil {
		return fmt.Errorf("image %q: %w", c.Image, err)
	}
	return nil
}

// containerEnv is the container's environment: values with their $(VAR) references to earlier
// variables expanded, as the kubelet does, and the pod's name, namespace and UID by fieldRef.
func containerEnv(pod *corev1.Pod, uid legacy.UID, c *corev1.Container) ([]legacy.EnvVar, error) {
	if len(c.EnvFrom) > 0 {
		return nil, errors.New("envFrom is not supported (no API server)")
	}
	var envs []legacy.EnvVar
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			var err error
			if v, err = fieldRefValue(pod, uid, e); err != nil {
				return nil, err
			}
		} else {
			v = legacy.Expand(v, legacy.EnvVarsToMap(envs))
		}
		envs = append(envs, legacy.EnvVar{Name: e.Name, Value: v})
	}
	return envs, nil
}

// fieldRefValue is the value of an env var from a fieldRef: the pod's name, namespace or UID.
func fieldRefValue(pod *corev1.Pod, uid legacy.UID, e corev1.EnvVar) (string, error) {
	fr := e.ValueFrom.FieldRef
	if fr == nil {
		return "", fmt.Errorf("env %s: only valueFrom.fieldRef is supported", e.Name)
	}
	switch fr.FieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(uid), nil
	default:
		return "", fmt.Errorf("env %s: fieldRef %q is not supported (metadata.name, metadata.namespace, metadata.uid are)", e.Name, fr.FieldPath)
	}
}

// newContainerConfig is the container's CRI config without its mounts, resources and security:
// metadata, image, command and args expanded with its env, labels, stdio.
func newContainerConfig(pod *corev1.Pod, uid legacy.UID, c *corev1.Container, envs []legacy.EnvVar) *runtime.ContainerConfig {
	cmd, args := legacy.ExpandContainerCommandAndArgs(c.Command, c.Args, envs)
	cfg := &runtime.ContainerConfig{
		Metadata:   &runtime.ContainerMetadata{Name: c.Name},
		Image:      &runtime.ImageSpec{Image: c.Image},
		Command:    cmd,
		Args:       args,
		WorkingDir: c.WorkingDir,
		Labels: map[string]string{
			labelPodName: pod.Name, labelPodNamespace: pod.Namespace, labelPodUID: string(uid),
			labelContainerName: c.Name, LabelOwner: OwnerValue,
		},
		Stdin:     c.Stdin,
		StdinOnce: c.StdinOnce,
		Tty:       c.TTY,
		Linux:     &runtime.LinuxContainerConfig{},
	}
	for _, e := range envs {
		cfg.Envs = append(cfg.Envs, &runtime.KeyValue{Key: e.Name, Value: []byte(e.Value)})
	}
	return cfg
}

// containerMounts are the container's volumeMounts on the pod's volumes, and its subPaths.
func (cv *conversion) containerMounts(c *corev1.Container, envs []legacy.EnvVar) (mounts []*runtime.Mount, subs []SubPath, _ error) {
	privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
	for i, vm := range c.VolumeMounts {
		host, ok := cv.volumes[vm.Name]
		if !ok {
			return nil, nil, fmt.Errorf("volumeMount %q: no such volume", vm.Name)
		}
		if !filepath.IsAbs(vm.MountPath) {
			return nil, nil, fmt.Errorf("volumeMount %q: mountPath must be absolute", vm.Name)
		}
		subPath, err := mountSubPath(vm, envs)
		if err != nil {
			return nil, nil, err
		}
		if subPath != "" {
			if cv.subRoot == "" {
				return nil, nil, fmt.Errorf("volumeMount %q: subPath needs a volume root", vm.Name)
			}
			// Not <volume>/<subPath>, which the runtime would resolve on the host: the manager
			// mounts the subPath, resolved inside the volume, at the target (subpath.go).
			sp := SubPath{Volume: host, Path: subPath, Target: filepath.Join(cv.subRoot, vm.Name, c.Name, strconv.Itoa(i))}
			subs = append(subs, sp)
			host = sp.Target
		}
		m := &runtime.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: vm.ReadOnly}
		if err := convertMountOptions(&vm, m, privileged, cv.psec); err != nil {
			return nil, nil, err
		}
		mounts = append(mounts, m)
	}
	return mounts, subs, nil
}

// mountSubPath is the volumeMount's subPath, or its subPathExpr expanded with the container's env
// as the kubelet does; either must be a relative path inside the volume.
func mountSubPath(vm corev1.VolumeMount, envs []legacy.EnvVar) (string, error) {
	subPath := vm.SubPath
	if vm.SubPathExpr != "" {
		if subPath != "" {
			return "", fmt.Errorf("volumeMount %q: subPath and subPathExpr are mutually exclusive", vm.Name)
		}
		subPath = legacy.Expand(vm.SubPathExpr, legacy.EnvVarsToMap(envs))
		if err := validateSubPath(subPath); err != nil {
			return "", fmt.Errorf("volumeMount %q: subPathExpr %q expands to %q, which %v", vm.Name, vm.SubPathExpr, subPath, err)
		}
	}
	if subPath != "" {
		if err := validateSubPath(subPath); err != nil {
			return "", fmt.Errorf("volumeMount %q: subPath %q must be a relative path inside the volume: %v", vm.Name, subPath, err)
		}
	}
	return subPath, nil
}

// containerHostPorts are the port mappings of the container's ports that have a hostPort.
func containerHostPorts(c *corev1.Container) ([]*runtime.PortMapping, error) {
	var hostPorts []*runtime.PortMapping
	for _, p := range c.Ports {
		if p.ContainerPort <= 0 || p.ContainerPort > 65535 {
			return nil, fmt.Errorf("port %d: out of range", p.ContainerPort)
		}
		if p.HostPort == 0 {
			continue
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			return nil, fmt.Errorf("hostPort %d: out of range", p.HostPort)
		}
		proto := runtime.Protocol_TCP
		switch p.Protocol {
		case "", corev1.ProtocolTCP:
		case corev1.ProtocolUDP:
			proto = runtime.Protocol_UDP
		case corev1.ProtocolSCTP:
			proto = runtime.Protocol_SCTP
		default:
			return nil, fmt.Errorf("port %d: protocol %q", p.ContainerPort, p.Protocol)
		}
		hostPorts = append(hostPorts, &runtime.PortMapping{Protocol: proto, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
	}
	return hostPorts, nil
}

// convertResources maps requests and limits onto the CRI's Linux resources as the kubelet does:
// CPU request → shares, CPU limit → quota over a 100 ms period, memory limit → limit in bytes.
func convertResources(r corev1.ResourceRequirements) (*runtime.LinuxContainerResources, error) {
	for name := range r.Limits {
		if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
			return nil, fmt.Errorf("resource %q: only cpu and memory are supported", name)
		}
	}
	out := &runtime.LinuxContainerResources{}
	cpuReq, hasReq := r.Requests[corev1.ResourceCPU]
	cpuLim, hasLim := r.Limits[corev1.ResourceCPU]
	if !hasReq && hasLim {
		cpuReq, hasReq = cpuLim, true
	}
	if hasReq {
		shares := cpuReq.MilliValue() * 1024 / 1000
		out.CpuShares = max(shares, 2)
	}
	if hasLim {
		const period = 100000
		out.CpuPeriod = period
		out.CpuQuota = max(cpuLim.MilliValue()*period/1000, 1000)
	}
	if mem, ok := r.Limits[corev1.ResourceMemory]; ok {
		out.MemoryLimitInBytes = mem.Value()
	}
	return out, nil
}

func convertProbe(kind ProbeKind, p *corev1.Probe, c *corev1.Container) (Probe, error) {
	out := Probe{
		Kind:             kind,
		InitialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:           time.Duration(p.PeriodSeconds) * time.Second,
		Timeout:          time.Duration(p.TimeoutSeconds) * time.Second,
		FailureThreshold: int(p.FailureThreshold),
		SuccessThreshold: int(p.SuccessThreshold),
	}
	if out.Period <= 0 {
		out.Period = defaultProbePeriod
	}
	if out.Timeout <= 0 {
		out.Timeout = defaultProbeTimeout
	}
	if out.FailureThreshold <= 0 {
		out.FailureThreshold = defaultProbeFailThreshold
	}
	if out.SuccessThreshold <= 0 {
		out.SuccessThreshold = 1
	}
	n := 0
	if p.Exec != nil {
		n++
		if len(p.Exec.Command) == 0 {
			return out, errors.New("exec.command is empty")
		}
		out.Exec = p.Exec.Command
	}
	if p.TCPSocket != nil {
		n++
		port, err := resolvePort(p.TCPSocket.Port, c)
		if err != nil {
			return out, err
		}
		out.TCPPort = port
	}
	if p.HTTPGet != nil {
		n++
		port, err := resolvePort(p.HTTPGet.Port, c)
		if err != nil {
			return out, err
		}
		out.HTTPPort, out.HTTPPath, out.HTTPHost = port, p.HTTPGet.Path, p.HTTPGet.Host
		out.HTTPScheme = strings.ToLower(string(p.HTTPGet.Scheme))
		if out.HTTPScheme == "" {
			out.HTTPScheme = "http"
		}
		if out.HTTPScheme != "http" && out.HTTPScheme != "https" {
			return out, fmt.Errorf("httpGet.scheme %q", p.HTTPGet.Scheme)
		}
		if out.HTTPPath == "" {
			out.HTTPPath = "/"
		}
		if len(p.HTTPGet.HTTPHeaders) > 0 {
			out.HTTPHeaders = map[string]string{}
			for _, h := range p.HTTPGet.HTTPHeaders {
				out.HTTPHeaders[h.Name] = h.Value
			}
		}
	}
	if p.GRPC != nil {
		return out, errors.New("grpc probes are not supported (exec, tcpSocket and httpGet are)")
	}
	if n != 1 {
		return out, errors.New("exactly one of exec, tcpSocket and httpGet is required")
	}
	return out, nil
}

func resolvePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	if p.Type == intstr.Int {
		if p.IntVal <= 0 || p.IntVal > 65535 {
			return 0, fmt.Errorf("port %d out of range", p.IntVal)
		}
		return int(p.IntVal), nil
	}
	if n, err := strconv.Atoi(p.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("port %q: no container port of that name", p.StrVal)
}
