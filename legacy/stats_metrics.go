package legacy

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// MetricType tells how a metric's value behaves.
type MetricType int

const (
	// MetricCounter only grows.
	MetricCounter MetricType = iota
	// MetricGauge goes up and down.
	MetricGauge
)

// MetricDescriptor describes a metric of ListPodSandboxMetrics: its cAdvisor name, help and
// label keys.
type MetricDescriptor struct {
	Name      string
	Help      string
	LabelKeys []string
}

// Metric is one value of a metric, with the values of its descriptor's labels.
type Metric struct {
	Name   string
	At     time.Time
	Type   MetricType
	Labels []string
	Value  uint64
}

// PodMetrics are the metrics of a pod (its network) and of its containers.
type PodMetrics struct {
	SandboxID  string
	Metrics    []Metric
	Containers []ContainerMetrics
}

// ContainerMetrics are the metrics of one container.
type ContainerMetrics struct {
	ContainerID string
	Metrics     []Metric
}

var (
	baseKeys  = []string{"id", "name"}
	ifaceKeys = []string{"id", "name", "interface"}
	devKeys   = []string{"id", "name", "device"}
)

// metricDescriptors are the cAdvisor metrics cri-shim reports (the kubelet's
// /metrics/cadvisor names). Those of block I/O are described but only reported where the
// kernel accounts them.
var MetricDescriptors = []MetricDescriptor{
	{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", baseKeys},
	{"container_cpu_user_seconds_total", "Cumulative user CPU time consumed in seconds.", baseKeys},
	{"container_cpu_system_seconds_total", "Cumulative system CPU time consumed in seconds.", baseKeys},
	{"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.", baseKeys},
	{"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.", baseKeys},
	{"container_cpu_cfs_throttled_seconds_total", "Total time duration the container has been throttled.", baseKeys},

	{"container_memory_cache", "Number of bytes of page cache memory.", baseKeys},
	{"container_memory_rss", "Size of RSS in bytes.", baseKeys},
	{"container_memory_kernel_usage", "Size of kernel memory allocated in bytes.", baseKeys},
	{"container_memory_mapped_file", "Size of memory mapped files in bytes.", baseKeys},
	{"container_memory_swap", "Container swap usage in bytes.", baseKeys},
	{"container_memory_failcnt", "Number of times container memory usage has hit its limit.", baseKeys},
	{"container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless of when it was accessed.", baseKeys},
	{"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes.", baseKeys},
	{"container_memory_working_set_bytes", "Current working set in bytes.", baseKeys},
	{"container_memory_failures_total", "Cumulative count of memory allocation failures.", []string{"id", "name", "failure_type", "scope"}},
	{"container_oom_events_total", "Count of out of memory events observed for the container.", baseKeys},

	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", ifaceKeys},
	{"container_network_receive_packets_total", "Cumulative count of packets received.", ifaceKeys},
	{"container_network_receive_packets_dropped_total", "Cumulative count of packets dropped while receiving.", ifaceKeys},
	{"container_network_receive_errors_total", "Cumulative count of errors encountered while receiving.", ifaceKeys},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", ifaceKeys},
	{"container_network_transmit_packets_total", "Cumulative count of packets transmitted.", ifaceKeys},
	{"container_network_transmit_packets_dropped_total", "Cumulative count of packets dropped while transmitting.", ifaceKeys},
	{"container_network_transmit_errors_total", "Cumulative count of errors encountered while transmitting.", ifaceKeys},

	{"container_fs_inodes_free", "Number of available Inodes.", devKeys},
	{"container_fs_inodes_total", "Number of Inodes.", devKeys},
	{"container_fs_limit_bytes", "Number of bytes that can be consumed by the container on this filesystem.", devKeys},
	{"container_fs_usage_bytes", "Number of bytes that are consumed by the container on this filesystem.", devKeys},
	{"container_fs_reads_bytes_total", "Cumulative count of bytes read.", devKeys},
	{"container_fs_reads_total", "Cumulative count of reads completed.", devKeys},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", devKeys},
	{"container_fs_writes_total", "Cumulative count of writes completed.", devKeys},
	{"container_blkio_device_usage_total", "Blkio device bytes usage.", []string{"id", "name", "device", "major", "minor", "operation"}},

	{"container_processes", "Number of processes running inside the container.", baseKeys},
	{"container_file_descriptors", "Number of open file descriptors for the container.", baseKeys},
	{"container_sockets", "Number of open sockets for the container.", baseKeys},
	{"container_threads", "Number of threads running inside the container.", baseKeys},
	{"container_threads_max", "Maximum number of threads allowed inside the container, infinity if value is zero.", baseKeys},

	{"container_last_seen", "Last time a container was seen by the exporter.", baseKeys},
	{"container_start_time_seconds", "Start time of the container since unix epoch in seconds.", baseKeys},

	{"container_spec_cpu_period", "CPU period of the container.", baseKeys},
	{"container_spec_cpu_shares", "CPU share of the container.", baseKeys},
	{"container_spec_memory_limit_bytes", "Memory limit for the container.", baseKeys},
	{"container_spec_memory_swap_limit_bytes", "Memory swap limit for the container.", baseKeys},
}

// metricSet collects the metrics of one object.
type MetricSet struct {
	At     time.Time
	Labels []string
	Out    []Metric
}

func (m *MetricSet) Add(name string, t MetricType, v uint64, extra ...string) {
	labels := m.Labels
	if len(extra) > 0 {
		labels = append(append([]string(nil), m.Labels...), extra...)
	}
	m.Out = append(m.Out, Metric{Name: name, At: m.At, Type: t, Labels: labels, Value: v})
}

// num reads a file holding one number ("max" reads as 0).
func Num(path string) (uint64, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, true
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}
