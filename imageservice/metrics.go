package imageservice

import "github.com/prometheus/client_golang/prometheus"

var (
	pullsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "cri_shim",
		Name:      "image_pulls_total",
		Help:      "Image pulls from registries by result (success, failure, canceled).",
	}, []string{"result"})
	pullBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "cri_shim",
		Name:      "image_pull_bytes_total",
		Help:      "Bytes downloaded from registries by image pulls.",
	})
	pullDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "cri_shim",
		Name:      "image_pull_duration_seconds",
		Help:      "Duration of successful image pulls (fetch, unpack and records).",
		Buckets:   prometheus.ExponentialBuckets(0.05, 2, 12),
	})
)

// Collectors are the Prometheus collectors of this package, for the daemon's registry.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{pullsTotal, pullBytes, pullDuration}
}

func init() {
	// Export every result from the start, at zero.
	for _, r := range []string{"success", "failure", "canceled"} {
		pullsTotal.WithLabelValues(r)
	}
}
