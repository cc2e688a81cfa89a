package legacy

import (
	"fmt"
	"strings"
	"time"

	runtime "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// UID is a pod's unique ID (the Kubernetes object UID).
type UID string

// Pod is a group of containers as the runtime sees it: the pod's sandboxes and containers.
type Pod struct {
	// ID is the pod's UID; it finds the pod in the list GetPods returns.
	ID UID
	// Name and Namespace are the pod's human-readable name.
	Name      string
	Namespace string
	// Containers of the pod: only running ones, or all of them with GetPods(all=true).
	Containers []*Container
	// Sandboxes of the pod (its pause containers), newest first.
	Sandboxes []*Container
}

// FullName returns the pod's full name, name_namespace.
func (p *Pod) FullName() string { return BuildPodFullName(p.Name, p.Namespace) }

// FindContainerByName returns the pod's first container with that name, or nil.
func (p *Pod) FindContainerByName(containerName string) *Container {
	for _, c := range p.Containers {
		if c.Name == containerName {
			return c
		}
	}
	return nil
}

// FindContainerByID returns the pod's container with that ID, or nil.
func (p *Pod) FindContainerByID(id ContainerID) *Container {
	for _, c := range p.Containers {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// FindSandboxByID returns the pod's sandbox with that ID, or nil.
func (p *Pod) FindSandboxByID(id ContainerID) *Container {
	for _, c := range p.Sandboxes {
		if c.ID == id {
			return c
		}
	}
	return nil
}

// IsEmpty tells whether p is the zero Pod.
func (p *Pod) IsEmpty() bool {
	return p.ID == "" && p.Name == "" && p.Namespace == "" && len(p.Containers) == 0 && len(p.Sandboxes) == 0
}

// Pods is a list of pods.
type Pods []*Pod

// FindPodByID returns the pod with that UID, or an empty Pod.
func (p Pods) FindPodByID(podUID UID) Pod {
	for _, pod := range p {
		if pod.ID == podUID {
			return *pod
		}
	}
	return Pod{}
}

// FindPodByFullName returns the pod with that full name (name_namespace), or an empty Pod.
func (p Pods) FindPodByFullName(podFullName string) Pod {
	for _, pod := range p {
		if BuildPodFullName(pod.Name, pod.Namespace) == podFullName {
			return *pod
		}
	}
	return Pod{}
}

// FindPod finds a pod by full name when one is given, and otherwise by UID.
func (p Pods) FindPod(podFullName string, podUID UID) Pod {
	if podFullName == "" {
		return p.FindPodByID(podUID)
	}
	return p.FindPodByFullName(podFullName)
}

// Container is the runtime's information about a container: ID, name, image, hash, state.
type Container struct {
	// ID is the runtime's ID of the container.
	ID ContainerID
	// Name is the container's name in its pod.
	Name string
	// Image is the image reference the container runs.
	Image string
	// ImageID is the ID of that image.
	ImageID string
	// Hash of the container's spec (HashContainer), to compare with the desired spec.
	Hash uint64
	// Created is when the container was created.
	Created time.Time
	// State is the container's state.
	State ContainerState
}

// ContainerState is the state of a container (or of a sandbox, seen as its pause container).
type ContainerState string

const (
	// ContainerStateCreated: created, not started yet.
	ContainerStateCreated ContainerState = "created"
	// ContainerStateRunning: its process runs.
	ContainerStateRunning ContainerState = "running"
	// ContainerStateExited: it ran and its process is gone.
	ContainerStateExited ContainerState = "exited"
	// ContainerStateUnknown encompasses every other state.
	ContainerStateUnknown ContainerState = "unknown"
)

// ContainerStatus is the status of one container.
type ContainerStatus struct {
	// ID of the container.
	ID ContainerID
	// Name of the container.
	Name string
	// State of the container.
	State ContainerState
	// CreatedAt, StartedAt and FinishedAt are the times of creation, start and exit.
	CreatedAt  time.Time
	StartedAt  time.Time
	FinishedAt time.Time
	// ExitCode of the container's process, when exited.
	ExitCode int
	// Image is the image's reference; ImageID its ID; ImageRef the digest reference it ran.
	Image    string
	ImageID  string
	ImageRef string
	// Hash of the container's spec.
	Hash uint64
	// RestartCount is the number of times the container was restarted (its attempt).
	RestartCount int
	// Reason is a brief explanation of the state (Completed, Error, OOMKilled).
	Reason string
	// Message the container wrote before exiting (its termination message).
	Message string
	// LogPath is where the container's CRI log is.
	LogPath string
}

// SandboxState is the state of a pod sandbox.
type SandboxState string

const (
	// SandboxStateReady: the pause container runs and the network is set up.
	SandboxStateReady SandboxState = "ready"
	// SandboxStateNotReady: stopped, or half made.
	SandboxStateNotReady SandboxState = "notready"
)

// SandboxStatus is the status of one pod sandbox.
type SandboxStatus struct {
	// ID of the sandbox.
	ID string
	// Name, Namespace, UID and Attempt are the sandbox's metadata.
	Name, Namespace string
	UID             UID
	Attempt         uint32
	// State of the sandbox.
	State SandboxState
	// CreatedAt is when the sandbox was created.
	CreatedAt time.Time
	// IP is the pod's primary IP; AdditionalIPs the others (e.g. IPv6).
	IP            string
	AdditionalIPs []string
	// HostNetwork tells whether the pod uses the node's network namespace.
	HostNetwork bool
	// NetNSPath is the pinned network namespace (empty with the host network).
	NetNSPath string
	// Pid of the pause process, 0 when not running.
	Pid uint32
	// RuntimeHandler the sandbox runs with.
	RuntimeHandler string
	// Labels and Annotations of the sandbox, as given.
	Labels      map[string]string
	Annotations map[string]string
	// Config is the CRI config the sandbox was created with.
	Config *runtime.PodSandboxConfig
	// Info is the verbose information (JSON values by key), filled only when asked for.
	Info map[string]string
}

// PodStatus is the status of a pod: its sandboxes and containers as the runtime sees them.
type PodStatus struct {
	// ID is the pod's UID.
	ID UID
	// Name and Namespace of the pod.
	Name      string
	Namespace string
	// IPs of the pod, the primary one first.
	IPs []string
	// ContainerStatuses of the pod's containers.
	ContainerStatuses []*ContainerStatus
	// SandboxStatuses of the pod's sandboxes, newest first.
	SandboxStatuses []*SandboxStatus
}

// FindContainerStatusByName returns the first status of a container with that name, or nil.
func (s *PodStatus) FindContainerStatusByName(containerName string) *ContainerStatus {
	for _, cs := range s.ContainerStatuses {
		if cs.Name == containerName {
			return cs
		}
	}
	return nil
}

// GetRunningContainerStatuses returns the statuses of the running containers.
func (s *PodStatus) GetRunningContainerStatuses() []*ContainerStatus {
	var out []*ContainerStatus
	for _, cs := range s.ContainerStatuses {
		if cs.State == ContainerStateRunning {
			out = append(out, cs)
		}
	}
	return out
}

// ConvertPodStatusToRunningPod turns a PodStatus into the running Pod it describes: its running
// containers and ready sandboxes.
func ConvertPodStatusToRunningPod(runtimeType string, podStatus *PodStatus) Pod {
	pod := Pod{ID: podStatus.ID, Name: podStatus.Name, Namespace: podStatus.Namespace}
	for _, cs := range podStatus.ContainerStatuses {
		if cs.State != ContainerStateRunning {
			continue
		}
		pod.Containers = append(pod.Containers, &Container{
			ID: cs.ID, Name: cs.Name, Image: cs.Image, ImageID: cs.ImageID, Hash: cs.Hash,
			Created: cs.CreatedAt, State: cs.State,
		})
	}
	for _, ss := range podStatus.SandboxStatuses {
		state := ContainerStateExited
		if ss.State == SandboxStateReady {
			state = ContainerStateRunning
		} else {
			continue
		}
		pod.Sandboxes = append(pod.Sandboxes, &Container{
			ID: BuildContainerID(runtimeType, ss.ID), Created: ss.CreatedAt, State: state,
		})
	}
	return pod
}

// BuildPodFullName returns the full name of a pod, name_namespace.
func BuildPodFullName(name, namespace string) string {
	return name + "_" + namespace
}

// GetPodFullName returns the full name of pod.
func GetPodFullName(pod *Pod) string {
	return BuildPodFullName(pod.Name, pod.Namespace)
}

// ParsePodFullName splits name_namespace; anything else (no '_', more than one, an empty part) is
// an error.
func ParsePodFullName(podFullName string) (name, namespace string, err error) {
	parts := strings.Split(podFullName, "_")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", fmt.Errorf("failed to parse the pod full name %q", podFullName)
	}
	return parts[0], parts[1], nil
}

// EnvVar is an environment variable of a container.
type EnvVar struct {
	Name  string
	Value string
}

// EnvVarsToMap returns the variables as a map of name to value; a later duplicate wins.
func EnvVarsToMap(envs []EnvVar) map[string]string {
	m := make(map[string]string, len(envs))
	for _, e := range envs {
		m[e.Name] = e.Value
	}
	return m
}
