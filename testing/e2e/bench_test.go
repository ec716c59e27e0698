package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// BenchmarkCreateThroughAPIServer measures what the run guard adds to a
// TaskRun create through the real API server. Each iteration creates the
// same TaskRun three times, in turn: in a namespace no webhook sees
// (tollgate-system), in one where two no-op webhooks (a mutating and a
// validating one, over TLS, answering "allowed" at once) see it
// (kube-system, which Tollgate skips), and in a guarded one (team-a:
// Tollgate's mutating and validating webhooks). Interleaving the three puts
// the machine's noise on each alike, so Tollgate's cost over the no-op
// webhooks is measured in the same seconds, not in a later phase.
func BenchmarkCreateThroughAPIServer(b *testing.B) {
	env := prepareGuarded(b,
		namespace("tollgate-system", nil),
		serviceAccount("tollgate-system", "tekton-builder"),
		serviceAccount("kube-system", "tekton-builder"),
	)
	alice := env.As(b, Alice)
	env.StartWebhook(b)
	noop := registerNoop(b, env, "kube-system")
	create := func(b *testing.B, ns string) time.Duration {
		tr := taskRun(ns, "", "tekton-builder", safeStep("a"), safeStep("b"), safeStep("c"))
		tr.GenerateName = "bench-"
		start := time.Now()
		if err := alice.Create(b.Context(), tr); err != nil {
			b.Fatalf("create in %s: %v", ns, err)
		}
		return time.Since(start)
	}
	// The API server learns of webhook configurations through a watch:
	// create until both no-op webhooks have been called.
	for deadline := time.Now().Add(time.Minute); noop.Load() < 2; {
		if time.Now().After(deadline) {
			b.Fatal("the no-op webhooks were never called")
		}
		create(b, "kube-system")
		time.Sleep(50 * time.Millisecond)
	}
	b.Run("interleaved", func(b *testing.B) {
		namespaces := []string{"tollgate-system", "kube-system", "team-a"}
		lat := map[string][]time.Duration{}
		for i := 0; i < b.N; i++ {
			for k := range namespaces {
				ns := namespaces[(i+k)%len(namespaces)] // each goes first in turn
				lat[ns] = append(lat[ns], create(b, ns))
			}
		}
		b.StopTimer()
		b50, b99 := percentiles(lat["tollgate-system"])
		n50, n99 := percentiles(lat["kube-system"])
		t50, t99 := percentiles(lat["team-a"])
		b.ReportMetric(b50, "base-p50-ms")
		b.ReportMetric(b99, "base-p99-ms")
		b.ReportMetric(n50-b50, "noop-added-p50-ms")
		b.ReportMetric(n99-b99, "noop-added-p99-ms")
		b.ReportMetric(t50-b50, "added-p50-ms")
		b.ReportMetric(t99-b99, "added-p99-ms")
		b.ReportMetric(t50-n50, "over-noop-p50-ms")
		b.ReportMetric(t99-n99, "over-noop-p99-ms")
		for path, mean := range webhookMeans(b, env.WebhookAddr, env.CAData) {
			b.ReportMetric(mean*1e6, path+"-mean-µs")
		}
	})
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

// registerNoop serves webhooks that answer every admission review with
// "allowed" at once, on a port of their own with the harness's certificate,
// and registers a mutating and a validating one for TaskRun creates in
// namespace: what two webhook calls cost the API server by themselves. It
// returns the count of reviews answered.
func registerNoop(b *testing.B, env *envtest.Env, namespace string) *atomic.Int64 {
	cert, err := tls.LoadX509KeyPair(filepath.Join(env.CertDir, "tls.crt"), filepath.Join(env.CertDir, "tls.key"))
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		b.Fatal(err)
	}
	calls := new(atomic.Int64)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
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
	b.Cleanup(func() { _ = srv.Close() })
	url := "https://" + ln.Addr().String() + "/noop"
	none := admissionregistrationv1.SideEffectClassNone
	fail := admissionregistrationv1.Fail
	rules := []admissionregistrationv1.RuleWithOperations{{
		Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
		Rule:       admissionregistrationv1.Rule{APIGroups: []string{"tekton.dev"}, APIVersions: []string{"v1"}, Resources: []string{"taskruns"}},
	}}
	selector := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": namespace}}
	cc := admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: env.CAData}
	versions := []string{"v1"}
	objs := []client.Object{
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "bench-noop"},
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "mutate.noop.bench", ClientConfig: cc, Rules: rules,
				NamespaceSelector: selector, SideEffects: &none, FailurePolicy: &fail, AdmissionReviewVersions: versions}}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "bench-noop"},
			Webhooks: []admissionregistrationv1.ValidatingWebhook{{Name: "validate.noop.bench", ClientConfig: cc, Rules: rules,
				NamespaceSelector: selector, SideEffects: &none, FailurePolicy: &fail, AdmissionReviewVersions: versions}}},
	}
	for _, o := range objs {
		if err := env.Client.Create(b.Context(), o); err != nil {
			b.Fatal(err)
		}
	}
	return calls
}
