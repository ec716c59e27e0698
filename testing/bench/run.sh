#!/usr/bin/env bash
# make bench: the run guard's performance figures (see BENCHMARKS.md).
#   1. the spec digest alone;
#   2. the validating path in-process, one core, every check on, cluster state
#      answered by real informer caches of a real API server;
#   3. TaskRun creates through the real API server: without webhooks, with two
#      no-op webhooks (the API server's own floor), and with Tollgate.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo),$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), $(go version | cut -d' ' -f3-)"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
echo

echo "== spec digest"
go test ./policy/specdigest -run '^$' -bench BenchmarkOfObject -benchmem | tee -a "$out" | grep Benchmark
echo
echo "== run guard, validating path in-process, 1 core (PipelineRun 5 tasks x 3 steps + a hub ref; target p99 < 1 ms, >= 2000 reviews/s)"
go test ./webhook/runguard -run '^$' -bench BenchmarkValidatePipelineRun -cpu 1 -benchtime 5s -count 3 | tee -a "$out" | grep Benchmark
echo
echo "== TaskRun create through the API server (1000 sequential creates each; target: webhook adds < 5 ms p99)"
go test ./testing/e2e -run '^$' -bench BenchmarkCreateThroughAPIServer -benchtime 1000x | tee -a "$out" | grep Benchmark
echo

# Summary: medians of the in-process runs, and the create latency deltas.
awk '
/BenchmarkValidatePipelineRun/ {
  for (i = 1; i <= NF; i++) { if ($(i+1) == "p99-µs") p99[n] = $i; if ($(i+1) == "reviews/s") rps[n] = $i }
  n++
}
/BenchmarkCreateThroughAPIServer\/no-webhook/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "p50-ms") b50 = $i; if ($(i+1) == "p99-ms") b99 = $i } }
/BenchmarkCreateThroughAPIServer\/noop-webhooks/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "p50-ms") f50 = $i; if ($(i+1) == "p99-ms") f99 = $i } }
/BenchmarkCreateThroughAPIServer\/tollgate/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "p50-ms") t50 = $i; if ($(i+1) == "p99-ms") t99 = $i } }
END {
  asort(p99); asort(rps); m = int((n + 1) / 2)
  printf "summary: in-process p99 %s µs (target < 1000), %s reviews/s per core (target >= 2000)\n", p99[m], rps[m]
  printf "summary: through the API server, Tollgate adds %.1f ms p50 / %.1f ms p99 to a create (no-op webhooks alone add %.1f / %.1f)\n", t50 - b50, t99 - b99, f50 - b50, f99 - b99
}' "$out"
