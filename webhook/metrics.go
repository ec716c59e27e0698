package webhook

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_admission_requests_total",
			Help: "Admission requests by path and outcome (allowed, denied, error: an internal fault that denied the request).",
		}, []string{"path", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_admission_duration_seconds",
			Help:    "Time to decide an admission request, by path.",
			Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}, []string{"path"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

func (m *metrics) instrument(path string, h admission.Handler) admission.Handler {
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		start := time.Now()
		resp := h.Handle(ctx, req)
		m.latency.WithLabelValues(path).Observe(time.Since(start).Seconds())
		outcome := "allowed"
		switch {
		case resp.Allowed:
		case resp.Result != nil && resp.Result.Code >= 500:
			outcome = "error"
		default:
			outcome = "denied"
		}
		m.requests.WithLabelValues(path, outcome).Inc()
		return resp
	})
}
