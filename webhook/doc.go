// Package webhook serves Tollgate's admission webhooks over TLS: the run
// guard's /mutate-runs and /validate-runs (subpackage runguard), the probes
// /healthz and /readyz, and /metrics.
//
// It owns the HTTP server, TLS (certificates reloaded from disk when they
// change) and request metrics. It may import policy/...; it must not import
// signer/.
package webhook
