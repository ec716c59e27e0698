package webhook

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/webhook/reply"
)

type metrics struct {
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	violations *prometheus.CounterVec
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
		violations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_admission_violations_total",
			Help: "Violations admission answered with, by path, rule and effect (deny, or warn: a rule in Warn mode or a namespace labelled warn).",
		}, []string{"path", "rule", "effect"}),
	}
	reg.MustRegister(m.requests, m.latency, m.violations)
	return m
}

func (m *metrics) instrument(path string, h admission.Handler) admission.Handler {
	observe := func(v policy.Violation, denied bool) {
		effect := "warn"
		if denied {
			effect = "deny"
		}
		m.violations.WithLabelValues(path, v.Rule, effect).Inc()
	}
	return admission.HandlerFunc(func(ctx context.Context, req admission.Request) admission.Response {
		ctx = reply.WithObserver(ctx, observe)
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

// registerCacheMetrics exposes the image verification cache's counters.
func registerCacheMetrics(reg prometheus.Registerer, stats func() images.Stats) {
	counter := func(name, help string, v func(images.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v(stats())) })
	}
	gauge := func(name, help string, v func(images.Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return v(stats()) })
	}
	reg.MustRegister(
		counter("tollgate_image_cache_hits_total", "Image checks answered from the verification cache.", func(s images.Stats) int64 { return s.Hits }),
		counter("tollgate_image_cache_misses_total", "Image checks not in the cache (they joined or started a verification).", func(s images.Stats) int64 { return s.Misses }),
		counter("tollgate_image_verifications_total", "Verifications run against registries (concurrent checks of one digest share one).", func(s images.Stats) int64 { return s.Verifications }),
		counter("tollgate_image_verification_errors_total", "Verifications that could not finish (registry errors, timeouts); they deny in Enforce.", func(s images.Stats) int64 { return s.Errors }),
		counter("tollgate_image_verification_panics_total", "Verifications that panicked inside third-party parsing of what a registry served; recovered, they deny as internal faults.", func(s images.Stats) int64 { return s.Panics }),
		gauge("tollgate_image_cache_entries", "Verified results held in the cache.", func(s images.Stats) float64 { return float64(s.Entries) }),
		gauge("tollgate_image_cache_bytes", "Estimated bytes of the results held in the cache.", func(s images.Stats) float64 { return float64(s.Bytes) }),
	)
}

// regoMetrics count user-rule evaluations, their findings by policy and
// rule, and their latency, per gate.
type regoMetrics struct {
	evaluations *prometheus.CounterVec
	findings    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
}

// newRegoMetrics makes the collectors; register them with the server's
// registry once it exists.
func newRegoMetrics() *regoMetrics {
	m := &regoMetrics{
		evaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_rego_evaluations_total",
			Help: "Admissions whose Rego rules were evaluated, by gate (runs or workloads).",
		}, []string{"gate"}),
		findings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_rego_findings_total",
			Help: "Messages of Rego rules at admission, by gate, policy, rule and effect (deny or warn); rule \"rego\" counts rules that failed to evaluate.",
		}, []string{"gate", "policy", "rule", "effect"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tollgate_rego_evaluation_duration_seconds",
			Help:    "Time to evaluate every Rego rule that applies to one admission, by gate.",
			Buckets: []float64{0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1},
		}, []string{"gate"}),
	}
	return m
}

func (m *regoMetrics) register(reg prometheus.Registerer) {
	reg.MustRegister(m.evaluations, m.findings, m.latency)
}

// observer returns the function a gate calls after evaluating Rego.
func (m *regoMetrics) observer(gate string) func(time.Duration, []policy.Violation, []policy.Violation) {
	return func(d time.Duration, denials, warnings []policy.Violation) {
		m.evaluations.WithLabelValues(gate).Inc()
		m.latency.WithLabelValues(gate).Observe(d.Seconds())
		for _, v := range denials {
			m.findings.WithLabelValues(gate, v.Policy, v.Rule, "deny").Inc()
		}
		for _, v := range warnings {
			m.findings.WithLabelValues(gate, v.Policy, v.Rule, "warn").Inc()
		}
	}
}
