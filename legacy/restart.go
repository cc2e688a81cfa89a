package legacy

import runtime "k8s.io/cri-api/pkg/apis/runtime/v1"

// RestartPolicy is a pod's restart policy.
type RestartPolicy string

const (
	RestartPolicyAlways    RestartPolicy = "Always"
	RestartPolicyOnFailure RestartPolicy = "OnFailure"
	RestartPolicyNever     RestartPolicy = "Never"
)

// ShouldContainerBeRestarted tells whether the container must be (re)started, from its newest
// status in podStatus (statuses are newest first): no status → start it; running → no; unknown →
// restart; policy Never → no; OnFailure with exit code 0 → no; otherwise restart.
func ShouldContainerBeRestarted(container *runtime.ContainerConfig, policy RestartPolicy, podStatus *PodStatus) bool {
	if podStatus == nil {
		return true
	}
	status := podStatus.FindContainerStatusByName(container.GetMetadata().GetName())
	if status == nil {
		return true
	}
	switch status.State {
	case ContainerStateRunning:
		return false
	case ContainerStateUnknown, ContainerStateCreated:
		return true
	}
	switch policy {
	case RestartPolicyNever:
		return false
	case RestartPolicyOnFailure:
		return status.ExitCode != 0
	}
	return true
}
