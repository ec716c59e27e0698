#!/usr/bin/env bash
# make bench-compare: OPA Gatekeeper v3.20.1 (a ConstraintTemplate requiring
# step limits and forbidding privileged steps) and `tollgate webhook` (every
# default check), each as a process against the harness's API server,
# driven by the same HTTP/2 keep-alive client with the same PipelineRun
# reviews, at 1 and 8 requests in flight; then the ratios.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "machine: $(nproc) cores,$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(go version | cut -d' ' -f3-)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
echo
echo "== OPA Gatekeeper v3.20.1, /v1/admit (5000 reviews per row)"
go test ./testing/e2e -run '^$' -bench BenchmarkGatekeeperProcess -benchtime 5000x -timeout 30m | tee -a "$out" | grep Benchmark
echo "== tollgate webhook, /validate-runs (5000 reviews per row)"
go test ./testing/e2e -run '^$' -bench 'BenchmarkWebhookProcess/validate' -benchtime 5000x -timeout 30m | tee -a "$out" | grep Benchmark
echo
awk '
/^Benchmark(Gatekeeper|Webhook)Process\/validate-/ {
  split($1, parts, "/"); c = parts[3]; sub(/-[0-9]+$/, "", c); sub(/C=/, "", c)
  who = ($1 ~ /Gatekeeper/) ? "gatekeeper" : "tollgate"
  for (i = 1; i <= NF; i++) { m[$(i+1)] = $i }
  k = parts[2] " " c
  rps[who, k] = m["req/s"]; p99[who, k] = m["p99-ms"]; cpu[who, k] = m["cpu-ms/review"]
  keys[k] = 1
}
END {
  printf "%-16s %3s  %20s  %20s  %20s\n", "review", "C", "req/s (GK / TG / x)", "p99 ms (GK / TG / x)", "CPU ms (GK / TG / x)"
  n = split("validate-allow 1,validate-deny 1,validate-allow 8,validate-deny 8", order, ",")
  for (j = 1; j <= n; j++) {
    k = order[j]; if (!(k in keys)) continue
    split(k, kc, " ")
    printf "%-16s %3s  %6.0f / %6.0f / %4.1f  %6.2f / %5.2f / %4.2f  %6.3f / %5.3f / %4.2f\n", kc[1], kc[2],
      rps["gatekeeper", k], rps["tollgate", k], rps["tollgate", k] / rps["gatekeeper", k],
      p99["gatekeeper", k], p99["tollgate", k], p99["tollgate", k] / p99["gatekeeper", k],
      cpu["gatekeeper", k], cpu["tollgate", k], cpu["tollgate", k] / cpu["gatekeeper", k]
  }
  print "(x: req/s Tollgate over Gatekeeper, target >= 5; p99 and CPU Tollgate as a fraction of Gatekeeper, target p99 <= 0.2)"
}' "$out"
