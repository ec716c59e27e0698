package e2e

import (
	"bufio"
	"encoding/json"
	"path/filepath"

	admissionv1 "k8s.io/api/admission/v1"

	"crypto/tls"
	"crypto/x509"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// BenchmarkCreateThroughAPIServer measures what the run guard adds to a
// TaskRun create through the real API server: the same create in a namespace
// the webhooks skip (tollgate-system) and in a guarded one (both the mutating
// and the validating webhook are called over TLS there).
func BenchmarkCreateThroughAPIServer(b *testing.B) {
	env := prepareGuarded(b,
		namespace("tollgate-system", nil),
		serviceAccount("tollgate-system", "tekton-builder"),
	)
	alice := env.As(b, Alice)
	stopNoop := serveNoop(b, env)
	create := func(b *testing.B, ns string) time.Duration {
		tr := taskRun(ns, "", "tekton-builder", safeStep("a"), safeStep("b"), safeStep("c"))
		tr.GenerateName = "bench-"
		start := time.Now()
		if err := alice.Create(b.Context(), tr); err != nil {
			b.Fatalf("create in %s: %v", ns, err)
		}
		return time.Since(start)
	}
	// Each phase alternates a create the webhooks skip (tollgate-system) with
	// a guarded one (team-a), so machine noise hits both alike; the delta is
	// what the webhooks add.
	for _, phase := range []string{"noop-webhooks", "tollgate"} {
		if phase == "tollgate" {
			stopNoop()
			env.StartWebhook(b)
		}
		b.Run(phase, func(b *testing.B) {
			base := make([]time.Duration, 0, b.N)
			guarded := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				base = append(base, create(b, "tollgate-system"))
				guarded = append(guarded, create(b, "team-a"))
			}
			b.StopTimer()
			b50, b99 := percentiles(base)
			g50, g99 := percentiles(guarded)
			b.ReportMetric(b50, "base-p50-ms")
			b.ReportMetric(b99, "base-p99-ms")
			b.ReportMetric(g50, "p50-ms")
			b.ReportMetric(g99, "p99-ms")
			b.ReportMetric(g50-b50, "added-p50-ms")
			b.ReportMetric(g99-b99, "added-p99-ms")
			if phase == "tollgate" {
				for path, mean := range webhookMeans(b, env.WebhookAddr, env.CAData) {
					b.ReportMetric(mean*1e6, path+"-mean-µs")
				}
			}
		})
	}
}

func percentiles(lat []time.Duration) (p50, p99 float64) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q float64) float64 { return float64(lat[int(float64(len(lat)-1)*q)].Microseconds()) / 1000 }
	return p(0.5), p(0.99)
}

// webhookMeans reads the webhook's own latency histogram from /metrics:
// mean seconds per admission path, as the server measured it.
func webhookMeans(b *testing.B, addr string, ca []byte) map[string]float64 {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := c.Get("https://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sums, counts := map[string]float64{}, map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, kind := range []string{"_sum", "_count"} {
			prefix := "tollgate_admission_duration_seconds" + kind + `{path="/`
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			rest := strings.TrimPrefix(line, prefix)
			path, val, _ := strings.Cut(rest, `"} `)
			v, _ := strconv.ParseFloat(val, 64)
			if kind == "_sum" {
				sums[path] = v
			} else {
				counts[path] = v
			}
		}
	}
	out := map[string]float64{}
	for p, s := range sums {
		if counts[p] > 0 {
			out[p] = s / counts[p]
		}
	}
	return out
}

// serveNoop answers every admission review with "allowed" at the webhook's
// address, to measure what two webhook calls cost the API server by
// themselves. It returns a function that stops it.
func serveNoop(b *testing.B, env *envtest.Env) func() {
	cert, err := tls.LoadX509KeyPair(filepath.Join(env.CertDir, "tls.crt"), filepath.Join(env.CertDir, "tls.key"))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", env.WebhookAddr, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})}
	go func() { _ = srv.Serve(ln) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = srv.Close()
		}
	}
	b.Cleanup(stop)
	return stop
}
