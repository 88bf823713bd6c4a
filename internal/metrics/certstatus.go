package metrics

import "github.com/prometheus/client_golang/prometheus"

// Revocation statuses of cqgate's own signing certificates, as
// SetOwnCertificate takes them (revocation.Status values).
var ownStatuses = []string{"good", "revoked", "unknown"}

// ownCert are the gauges of cqgate's own signing certificates, per
// identity: revocation status, days to expiry and whether that is within
// keys.expiry_warning_days.
type ownCert struct {
	status   *prometheus.GaugeVec
	days     *prometheus.GaugeVec
	expiring *prometheus.GaugeVec
}

func newOwnCert() ownCert {
	return ownCert{
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "signing_certificate_revocation_status",
			Help:      "Revocation status of each identity's signing certificate chain (CRL/OCSP): 1 for the status found (good, revoked, unknown), 0 for the others.",
		}, []string{"identity", "status"}),
		days: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "signing_certificate_days_to_expiry",
			Help:      "Whole days until each identity's signing certificate expires (negative once expired).",
		}, []string{"identity"}),
		expiring: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace,
			Name:      "signing_certificate_expiring",
			Help:      "1 when an identity's signing certificate expires within keys.expiry_warning_days (or has expired), else 0.",
		}, []string{"identity"}),
	}
}

func (o ownCert) collectors() []prometheus.Collector {
	return []prometheus.Collector{o.status, o.days, o.expiring}
}

// SetOwnCertificate records what the last check of an identity's own
// signing certificate found: its revocation status ("good", "revoked" or
// "unknown"), the whole days to its expiry and whether that is within
// the warning window.
func (m *Metrics) SetOwnCertificate(identity, status string, daysToExpiry int, expiring bool) {
	if m == nil {
		return
	}
	for _, s := range ownStatuses {
		v := 0.0
		if s == status {
			v = 1
		}
		m.own.status.WithLabelValues(identity, s).Set(v)
	}
	m.own.days.WithLabelValues(identity).Set(float64(daysToExpiry))
	e := 0.0
	if expiring {
		e = 1
	}
	m.own.expiring.WithLabelValues(identity).Set(e)
}
