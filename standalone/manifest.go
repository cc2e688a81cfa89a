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
	// The names become paths, labels and CNI_ARGS: validated first (validate.go).
	if err := validateMeta(pod); err != nil {
		return nil, err
	}
	if err := validateVolumes(pod.Spec.Volumes); err != nil {
		return nil, err
	}
	// The sandbox's DNS is the manager's RuntimeHelper's, by the policy, at each sync (dns.go).
	if err := validatePodDNS(&pod.Spec); err != nil {
		return nil, err
	}
	if len(pod.Spec.Containers) == 0 {
		return nil, errors.New("spec.containers: at least one container is required")
	}
	if opts.PodLogRoot == "" {
		opts.PodLogRoot = DefaultPodLogRoot
	}
	uid := PodUID(pod)
	spec := &pod.Spec
	out := &Pod{Name: pod.Name, Namespace: pod.Namespace, UID: uid, Source: source, Probes: map[string][]Probe{},
		SubPaths: map[string][]SubPath{}, HostNetwork: spec.HostNetwork, DNSPolicy: spec.DNSPolicy, DNSConfig: spec.DNSConfig}
	subRoot := ""
	if opts.VolumeRoot != "" {
		subRoot = filepath.Join(opts.VolumeRoot, string(uid), subPathDir)
	}

	labels := map[string]string{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[labelPodName], labels[labelPodNamespace], labels[labelPodUID] = pod.Name, pod.Namespace, string(uid)
	labels[LabelOwner] = OwnerValue
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	annotations[annotationConfigSource] = "file"
	if source != "" {
		annotations[AnnotationManifest] = source
	}

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
	sbSec := &runtime.LinuxSandboxSecurityContext{NamespaceOptions: nsOpts}
	sysctls := map[string]string{}
	// The security fields: honoured or refused, never dropped (security.go).
	psec, err := convertPodSecurity(pod, uid, opts, sbSec, sysctls, out)
	if err != nil {
		return nil, err
	}
	for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			sbSec.Privileged = true
		}
	}
	hostname := spec.Hostname
	if hostname == "" && !spec.HostNetwork {
		hostname = pod.Name
	}
	sandbox := &runtime.PodSandboxConfig{
		Metadata:     &runtime.PodSandboxMetadata{Name: pod.Name, Namespace: pod.Namespace, Uid: string(uid)},
		Hostname:     hostname,
		LogDirectory: filepath.Join(opts.PodLogRoot, pod.Namespace+"_"+pod.Name+"_"+string(uid)),
		Labels:       labels,
		Annotations:  annotations,
		Linux:        &runtime.LinuxPodSandboxConfig{SecurityContext: sbSec, Sysctls: sysctls},
	}

	// Volumes: hostPath and emptyDir.
	volumes := map[string]string{}
	for _, v := range spec.Volumes {
		switch {
		case v.HostPath != nil:
			if !filepath.IsAbs(v.HostPath.Path) {
				return nil, fmt.Errorf("volume %q: hostPath.path must be absolute", v.Name)
			}
			volumes[v.Name] = filepath.Clean(v.HostPath.Path)
		case v.EmptyDir != nil:
			if opts.VolumeRoot == "" {
				return nil, fmt.Errorf("volume %q: emptyDir needs a volume root", v.Name)
			}
			dir := filepath.Join(opts.VolumeRoot, string(uid), "volumes", v.Name)
			volumes[v.Name] = dir
			out.EmptyDirs = append(out.EmptyDirs, dir)
		default:
			return nil, fmt.Errorf("volume %q: only hostPath and emptyDir volumes are supported", v.Name)
		}
	}

	policy := legacy.RestartPolicyAlways
	switch spec.RestartPolicy {
	case "", corev1.RestartPolicyAlways:
	case corev1.RestartPolicyOnFailure:
		policy = legacy.RestartPolicyOnFailure
	case corev1.RestartPolicyNever:
		policy = legacy.RestartPolicyNever
	default:
		return nil, fmt.Errorf("spec.restartPolicy %q: want Always, OnFailure or Never", spec.RestartPolicy)
	}
	grace := DefaultGracePeriod
	if spec.TerminationGracePeriodSeconds != nil {
		if *spec.TerminationGracePeriodSeconds < 0 {
			return nil, errors.New("spec.terminationGracePeriodSeconds: must be non-negative")
		}
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	ps := &legacy.PodSpec{Sandbox: sandbox, RestartPolicy: policy, StopTimeout: grace}
	if spec.RuntimeClassName != nil {
		ps.RuntimeHandler = *spec.RuntimeClassName
	}

	seen := map[string]bool{}
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		if c.LivenessProbe != nil || c.ReadinessProbe != nil {
			return nil, fmt.Errorf("init container %q: probes are not allowed on init containers", c.Name)
		}
		if c.Lifecycle != nil {
			return nil, fmt.Errorf("init container %q: lifecycle hooks are not allowed on init containers: %w", c.Name, errdefs.ErrInvalidArgument)
		}
		cs, _, subs, err := convertContainer(pod, uid, c, volumes, subRoot, nsOpts, psec, opts, seen)
		if err != nil {
			return nil, fmt.Errorf("init container %q: %w", c.Name, err)
		}
		if len(subs) > 0 {
			out.SubPaths[c.Name] = subs
		}
		ps.InitContainers = append(ps.InitContainers, cs)
	}
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cs, hostPorts, subs, err := convertContainer(pod, uid, c, volumes, subRoot, nsOpts, psec, opts, seen)
		if err != nil {
			return nil, fmt.Errorf("container %q: %w", c.Name, err)
		}
		if cs.Lifecycle, err = convertLifecycle(c, grace); err != nil {
			return nil, fmt.Errorf("container %q: %w", c.Name, err)
		}
		if len(subs) > 0 {
			out.SubPaths[c.Name] = subs
		}
		ps.Containers = append(ps.Containers, cs)
		sandbox.PortMappings = append(sandbox.PortMappings, hostPorts...)
		for _, p := range []struct {
			kind ProbeKind
			p    *corev1.Probe
		}{{ProbeLiveness, c.LivenessProbe}, {ProbeReadiness, c.ReadinessProbe}} {
			if p.p == nil {
				continue
			}
			probe, err := convertProbe(p.kind, p.p, c)
			if err != nil {
				return nil, fmt.Errorf("container %q: %s probe: %w", c.Name, strings.ToLower(string(p.kind)), err)
			}
			out.Probes[c.Name] = append(out.Probes[c.Name], probe)
		}
	}
	// What the runtime would refuse is refused here, where `pods apply` reports it, rather than
	// at every sync.
	if err := legacy.ValidateSandboxConfig(sandbox); err != nil {
		return nil, fmt.Errorf("pod: %w", err)
	}
	for _, cs := range append(append([]legacy.ContainerSpec{}, ps.InitContainers...), ps.Containers...) {
		if err := legacy.ValidateContainerConfig(cs.Config); err != nil {
			return nil, fmt.Errorf("container %q: %w", cs.Config.GetMetadata().GetName(), err)
		}
	}
	out.Spec = ps
	return out, nil
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

// convertContainer converts one container; its subPath mounts name targets under subRoot.
func convertContainer(pod *corev1.Pod, uid legacy.UID, c *corev1.Container, volumes map[string]string, subRoot string,
	nsOpts *runtime.NamespaceOption, ps *podSecurity, opts ConvertOptions, seen map[string]bool) (_ legacy.ContainerSpec, _ []*runtime.PortMapping, subs []SubPath, err error) {
	if err := dnsErr(c.Name, validation.IsDNS1123Label(c.Name)); err != nil {
		return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("name: %w", err)
	}
	if seen[c.Name] {
		return legacy.ContainerSpec{}, nil, nil, errors.New("duplicate container name")
	}
	seen[c.Name] = true
	if c.Image == "" {
		return legacy.ContainerSpec{}, nil, nil, errors.New("image is required")
	}
	if _, err := reference.ParseNormalizedNamed(c.Image); err != nil {
		return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("image %q: %w", c.Image, err)
	}
	policy, err := pullPolicy(c)
	if err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	if len(c.EnvFrom) > 0 {
		return legacy.ContainerSpec{}, nil, nil, errors.New("envFrom is not supported (no API server)")
	}
	var envs []legacy.EnvVar
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			fr := e.ValueFrom.FieldRef
			if fr == nil {
				return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("env %s: only valueFrom.fieldRef is supported", e.Name)
			}
			switch fr.FieldPath {
			case "metadata.name":
				v = pod.Name
			case "metadata.namespace":
				v = pod.Namespace
			case "metadata.uid":
				v = string(uid)
			default:
				return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("env %s: fieldRef %q is not supported (metadata.name, metadata.namespace, metadata.uid are)", e.Name, fr.FieldPath)
			}
		} else {
			// $(VAR) references to earlier variables expand, as the kubelet does.
			m := legacy.EnvVarsToMap(envs)
			v = legacy.Expand(v, m)
		}
		envs = append(envs, legacy.EnvVar{Name: e.Name, Value: v})
	}
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
	for i, vm := range c.VolumeMounts {
		host, ok := volumes[vm.Name]
		if !ok {
			return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("volumeMount %q: no such volume", vm.Name)
		}
		if !filepath.IsAbs(vm.MountPath) {
			return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("volumeMount %q: mountPath must be absolute", vm.Name)
		}
		subPath := vm.SubPath
		if vm.SubPathExpr != "" {
			if subPath != "" {
				return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("volumeMount %q: subPath and subPathExpr are mutually exclusive", vm.Name)
			}
			// Expanded with the container's env, as the kubelet does, then checked as a subPath.
			subPath = legacy.Expand(vm.SubPathExpr, legacy.EnvVarsToMap(envs))
			if err := validateSubPath(subPath); err != nil {
				return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("volumeMount %q: subPathExpr %q expands to %q, which %v", vm.Name, vm.SubPathExpr, subPath, err)
			}
		}
		if subPath != "" {
			if err := validateSubPath(subPath); err != nil {
				return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("volumeMount %q: subPath %q must be a relative path inside the volume: %v", vm.Name, subPath, err)
			}
			if subRoot == "" {
				return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("volumeMount %q: subPath needs a volume root", vm.Name)
			}
			// Not <volume>/<subPath>, which the runtime would resolve on the host: the manager
			// mounts the subPath, resolved inside the volume, at the target (subpath.go).
			sp := SubPath{Volume: host, Path: subPath, Target: filepath.Join(subRoot, vm.Name, c.Name, strconv.Itoa(i))}
			subs = append(subs, sp)
			host = sp.Target
		}
		m := &runtime.Mount{ContainerPath: vm.MountPath, HostPath: host, Readonly: vm.ReadOnly}
		if err := convertMountOptions(&vm, m, c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged, ps); err != nil {
			return legacy.ContainerSpec{}, nil, nil, err
		}
		cfg.Mounts = append(cfg.Mounts, m)
	}
	var hostPorts []*runtime.PortMapping
	for _, p := range c.Ports {
		if p.ContainerPort <= 0 || p.ContainerPort > 65535 {
			return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("port %d: out of range", p.ContainerPort)
		}
		if p.HostPort == 0 {
			continue
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("hostPort %d: out of range", p.HostPort)
		}
		proto := runtime.Protocol_TCP
		switch p.Protocol {
		case "", corev1.ProtocolTCP:
		case corev1.ProtocolUDP:
			proto = runtime.Protocol_UDP
		case corev1.ProtocolSCTP:
			proto = runtime.Protocol_SCTP
		default:
			return legacy.ContainerSpec{}, nil, nil, fmt.Errorf("port %d: protocol %q", p.ContainerPort, p.Protocol)
		}
		hostPorts = append(hostPorts, &runtime.PortMapping{Protocol: proto, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP})
	}
	res, err := convertResources(c.Resources)
	if err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	cfg.Linux.Resources = res
	sc, err := convertContainerSecurity(pod, c, ps, opts, nsOpts)
	if err != nil {
		return legacy.ContainerSpec{}, nil, nil, err
	}
	cfg.Linux.SecurityContext = sc
	return legacy.ContainerSpec{Config: cfg, PullPolicy: policy}, hostPorts, subs, nil
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
