package kuberuntime

import (
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/prometheus/client_golang/prometheus"
)

// The runtime's Prometheus metrics: the pods and containers by state (state_metrics.go, one
// collector per runtime) and the process-wide ones below. ListPodSandboxMetrics
// (pod_metrics_cri.go) is the CRI's metrics call, not Prometheus.

// EventsGCAndContainerdCollectors are the process-wide Prometheus collectors of the runtime, for
// the daemon's registry: the container events the hub dropped, the containers the GC removed, and
// the latency of the daemon's calls to containerd (containerd_request_metrics.go).
func EventsGCAndContainerdCollectors() []prometheus.Collector {
	return []prometheus.Collector{legacy.EventsDropped, legacy.ContainersGarbageCollected, containerdRequestDuration}
}
