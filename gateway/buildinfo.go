package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cqgate/cqgate/internal/buildinfo"
	"github.com/cqgate/cqgate/internal/metrics"
)

// buildInfoCollector is cqgate_build_info{version,revision,goversion} 1,
// the usual way to put a version on dashboards and alerts.
func buildInfoCollector(in buildinfo.Info) prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metrics.Namespace,
		Name:      "build_info",
		Help:      "Always 1; the labels say which cqgate build is running.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(in.Version, in.Revision, in.GoVersion).Set(1)
	return g
}
