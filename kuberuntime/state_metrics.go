package kuberuntime

import (
	"github.com/cri-shim/cri-shim/legacy"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	podsDesc = prometheus.NewDesc("cri_shim_pod_sandboxes", "Pod sandboxes by state.",
		[]string{"state"}, nil)
	containersDesc = prometheus.NewDesc("cri_shim_containers", "Containers by state.",
		[]string{"state"}, nil)
)

// stateCollector reports the pods and containers of a runtime by state, read from the in-memory
// stores when scraped.
type stateCollector struct{ r *ContainerdRuntime }

// StateCollector returns a Prometheus collector of r's pod sandboxes and containers by state.
func (r *ContainerdRuntime) StateCollector() prometheus.Collector { return stateCollector{r} }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- podsDesc
	ch <- containersDesc
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	pods := map[legacy.SandboxState]int{legacy.SandboxStateReady: 0, legacy.SandboxStateNotReady: 0}
	for _, sb := range c.r.sandboxes.list() {
		pods[sb.status().State]++
	}
	for state, n := range pods {
		ch <- prometheus.MustNewConstMetric(podsDesc, prometheus.GaugeValue, float64(n), string(state))
	}
	ctrs := map[legacy.ContainerState]int{legacy.ContainerStateCreated: 0, legacy.ContainerStateRunning: 0, legacy.ContainerStateExited: 0, legacy.ContainerStateUnknown: 0}
	for _, ct := range c.r.ctrs().store.list() {
		state := ct.snapshot().state
		ctrs[state]++
	}
	for state, n := range ctrs {
		ch <- prometheus.MustNewConstMetric(containersDesc, prometheus.GaugeValue, float64(n), string(state))
	}
}
