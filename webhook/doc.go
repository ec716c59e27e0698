// Package webhook serves Tollgate's admission webhooks over TLS: the run
// guard's /mutate-runs and /validate-runs (subpackage runguard), the image
// gate's /mutate-workloads and /validate-workloads (subpackage imagegate),
// the probes /healthz and /readyz, and /metrics.
//
// It owns the HTTP server, TLS (a certificate from files, reloaded when they
// change, or one it manages in a Secret and patches into its webhook
// configurations), the stamp keys, the policy stores' wiring and request
// metrics. It may import policy/...; it must not import signer/.
package webhook
