package signer

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the signer, served on the manager's /metrics with
// controller-runtime's own (workqueue_depth{name="taskruns"} is the queue depth).
type metrics struct {
	outcomes *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_signer_runs_total",
			Help: "Finished runs by kind and outcome (signed, failed, retry) and reason.",
		}, []string{"kind", "outcome", "reason"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_signer_sign_duration_seconds",
			Help:    "Time to build, sign and store what one run produced, by kind.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"kind"}),
	}
	m.outcomes = register(reg, m.outcomes)
	m.latency = register(reg, m.latency)
	return m
}

// register registers c, or returns the collector already registered under
// its name (a second controller in one process, as in tests).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func (m *metrics) observe(kind, outcome, reason string, took time.Duration) {
	if m == nil {
		return
	}
	m.outcomes.WithLabelValues(kind, outcome, reason).Inc()
	if outcome == "signed" {
		m.latency.WithLabelValues(kind).Observe(took.Seconds())
	}
}
