#!/usr/bin/env bash
# make bench: the run guard's performance figures (see BENCHMARKS.md).
#   1. the spec digest alone;
#   2. the validating path in-process, one core, every check on, cluster state
#      answered by real informer caches of a real API server;
#   3. TaskRun creates through the real API server: without webhooks, with two
#      no-op webhooks (the API server's own floor), and with Tollgate;
#   3b. the `tollgate webhook` process, driven over TLS by an HTTP/2 keep-alive
#      client at 1 and 8 requests in flight: latency, req/s, server CPU per
#      review (from /proc) and RSS;
#   4. the signer's throughput, tekton and oci storage;
#   5. the image gate in-process: cache hit, cache miss against a loopback
#      registry, 8 containers of one image, 500 concurrent admissions of one
#      digest, and the memory of 10,000 cached verifications.
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
echo "== run guard, validating path in-process, 1 core (PipelineRun 5 tasks x 3 steps + a hub ref; with 0, 3 and 20 Rego modules; targets p99 < 1 ms and >= 2000 reviews/s with 3, p99 < 3 ms with 20)"
go test ./webhook/runguard -run '^$' -bench BenchmarkValidatePipelineRun -cpu 1 -benchtime 5s -count 3 | tee -a "$out" | grep Benchmark
echo
echo "== TaskRun create through the API server: 3000 rounds of three creates in turn (no webhooks, two no-op webhooks, Tollgate); target: Tollgate <= 0.5 ms p99 over the no-op webhooks"
go test ./testing/e2e -run '^$' -bench BenchmarkCreateThroughAPIServer -benchtime 3000x -timeout 30m | tee -a "$out" | grep Benchmark
echo

echo "== tollgate webhook as a process: 5000 byte-identical reviews per row over one HTTP/2 keep-alive connection (targets at C=1: validate <= 0.4 ms CPU, p99 <= 2 ms; mutate <= 0.25 ms CPU; at C=8 >= 2000 req/s)"
go test ./testing/e2e -run '^$' -bench BenchmarkWebhookProcess -benchtime 5000x -timeout 30m | tee -a "$out" | grep Benchmark
awk 'BEGIN { printf "%-22s %5s %9s %9s %9s %9s %14s %8s\n", "review", "C", "req/s", "p50 ms", "p90 ms", "p99 ms", "CPU ms/review", "RSS MiB" }
/^BenchmarkWebhookProcess\// {
  split($1, parts, "/"); c = parts[3]; sub(/-[0-9]+$/, "", c); sub(/C=/, "", c)
  for (i = 1; i <= NF; i++) { m[$(i+1)] = $i }
  printf "%-22s %5s %9.0f %9.2f %9.2f %9.2f %14.3f %8.0f\n", parts[2], c, m["req/s"], m["p50-ms"], m["p90-ms"], m["p99-ms"], m["cpu-ms/review"], m["rss-MiB"]
}' "$out"
echo

echo "== provenance + signature of one TaskRun, in-process (slsa/v2alpha4, ECDSA P-256)"
go test ./signer -run '^$' -bench BenchmarkProvenanceAndSign -benchmem | tee -a "$out" | grep Benchmark
echo
echo "== signer throughput: a backlog of 200 finished TaskRuns, the tollgate signer process started, until a watch saw all signed (targets: tekton >= 100/s, oci >= 50/s)"
go test ./testing/e2e -run '^$' -bench BenchmarkSignerThroughput -benchtime 200x -timeout 30m | tee -a "$out" | grep Benchmark
echo "== signer memory: RSS of the tollgate signer process with 10,000 finished, signed TaskRuns in the cluster (target <= 150 MiB)"
go test ./testing/e2e -run '^$' -bench BenchmarkSignerMemory -benchtime 10000x -timeout 30m | tee -a "$out" | grep Benchmark
echo

echo "== signer latency: the tollgate signer process, runs finishing at a steady 10/s and 20/s, finish -> signed (target p99 < 500 ms at 20/s)"
go test ./testing/e2e -run '^$' -bench BenchmarkSignerLatency -benchtime 200x -timeout 30m | tee -a "$out" | grep Benchmark
echo

echo "== audit at scale: 5,000 Pods over 200 images in an audited namespace, tollgate audit --watch as a process (pass time, peak RSS, registry requests, admission p99 before/during)"
go test ./testing/e2e -run '^$' -bench BenchmarkAuditScale -benchtime 5000x -timeout 30m | tee -a "$out" | grep Benchmark
echo

echo "== image gate, in-process through the webhook's HTTP stack (targets: hit p99 < 1 ms; miss p99 < 50 ms; one verification per digest)"
go test ./webhook/imagegate -run '^$' -bench 'BenchmarkCacheHit|BenchmarkCacheMiss|BenchmarkEightContainersOneImage' -benchtime 500x -benchmem | tee -a "$out" | grep Benchmark
go test ./webhook/imagegate -run '^$' -bench 'BenchmarkConcurrentAdmissions|BenchmarkCacheMemory' -benchtime 20x | tee -a "$out" | grep Benchmark
echo

# Summary: the median of the in-process runs, and what the webhooks add.
awk 'BEGIN { n = 0 }
/BenchmarkValidatePipelineRun\/rego-/ && /reviews\/s/ {
  split($1, parts, "/"); k = parts[2]; if (k ~ /^rego-[0-9]+-[0-9]+$/) sub(/-[0-9]+$/, "", k)
  for (i = 1; i <= NF; i++) { if ($(i+1) == "p99-µs") { p99[k, cnt[k]+0] = $i + 0 } if ($(i+1) == "reviews/s") { rps[k, cnt[k]+0] = $i + 0 } }
  cnt[k]++
}
/BenchmarkCreateThroughAPIServer\/interleaved/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "noop-added-p50-ms") f50 = $i; if ($(i+1) == "noop-added-p99-ms") f99 = $i; if ($(i+1) == "added-p50-ms") t50 = $i; if ($(i+1) == "added-p99-ms") t99 = $i; if ($(i+1) == "over-noop-p50-ms") o50 = $i; if ($(i+1) == "over-noop-p99-ms") o99 = $i } }
/BenchmarkCacheHit/ { for (i = 1; i <= NF; i++) if ($(i+1) == "p99-µs") hit = $i }
/BenchmarkCacheMiss/ { for (i = 1; i <= NF; i++) if ($(i+1) == "p99-ms") miss = $i }
/BenchmarkEightContainersOneImage/ { for (i = 1; i <= NF; i++) if ($(i+1) == "verifications/pod") eight = $i }
/BenchmarkConcurrentAdmissions/ { for (i = 1; i <= NF; i++) if ($(i+1) == "upstream-verifications") conc = $i }
/BenchmarkCacheMemory/ { for (i = 1; i <= NF; i++) { if ($(i+1) == "cache-heap-MiB") mem = $i; if ($(i+1) == "rss-MiB") rss = $i } }
END {
  split("rego-0 rego-3 rego-20", ks, " ")
  for (x = 1; x <= 3; x++) {
    k = ks[x]; m = cnt[k]
    for (i = 1; i < m; i++) for (j = i; j > 0 && p99[k, j-1] > p99[k, j]; j--) { t = p99[k, j]; p99[k, j] = p99[k, j-1]; p99[k, j-1] = t }
    for (i = 1; i < m; i++) for (j = i; j > 0 && rps[k, j-1] > rps[k, j]; j--) { t = rps[k, j]; rps[k, j] = rps[k, j-1]; rps[k, j-1] = t }
    printf "summary: run guard in-process with %s: p99 %s µs, %s reviews/s per core (median of %d runs)\n", k, p99[k, int(m/2)], rps[k, int(m/2)], m
  }
  printf "summary: through the API server, Tollgate adds %s ms p50 / %s ms p99 to a create; two no-op webhooks add %s / %s; Tollgate over the no-op webhooks %s / %s (target <= 0.5 ms p99)\n", t50, t99, f50, f99, o50, o99
  printf "summary: image gate hit p99 %s µs (target < 1000), miss p99 %s ms (target < 50), %s verifications for 8 containers of one image, %s upstream verifications for 500 concurrent admissions, 10k cached results %s MiB heap (process RSS %s MiB)\n", hit, miss, eight, conc, mem, rss
}' "$out"
