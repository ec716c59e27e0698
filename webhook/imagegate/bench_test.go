package imagegate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-containerregistry/pkg/name"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/tollgate-dev/tollgate/policy/images"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/webhook"
)

// stack is the webhook's real HTTP stack over the gate.
func (g *gate) stack(b *testing.B) http.Handler {
	s, err := webhook.New(webhook.Options{Addr: "127.0.0.1:0", CertFile: "x", KeyFile: "x"},
		webhook.Handlers{MutateWorkloads: g.handler.MutateHandler(), ValidateWorkloads: g.handler}, nil, logr.Discard())
	if err != nil {
		b.Fatal(err)
	}
	return s.Handler()
}

func reviewBody(pod []byte) []byte {
	body, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "bench", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: "prod", Name: "p", Operation: admissionv1.Create,
			Object: k8sruntime.RawExtension{Raw: pod},
		},
	})
	return body
}

func send(b *testing.B, h http.Handler, path string, body []byte) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || !out.Response.Allowed {
		b.Fatalf("not allowed: %s", rec.Body.String())
	}
}

func percentiles(b *testing.B, lat []time.Duration, unit string) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration { return lat[int(float64(len(lat)-1)*p)] }
	div := float64(time.Microsecond)
	if unit == "ms" {
		div = float64(time.Millisecond)
	}
	b.ReportMetric(float64(pct(0.50))/div, "p50-"+unit)
	b.ReportMetric(float64(pct(0.99))/div, "p99-"+unit)
}

// BenchmarkCacheHit: the validating path for a Pod whose pinned image was
// verified before, from AdmissionReview bytes to response bytes; signed in
// cosign's legacy layout and as sigstore bundles (cosign v3).
func BenchmarkCacheHit(b *testing.B) {
	for _, layout := range layouts {
		b.Run(layout.name, func(b *testing.B) {
			g := newGate(b)
			img := layout.sign(g, b, "bench/hit")
			h := g.stack(b)
			body := reviewBody(podJSON(img.Context().Tag("v1").String() + "@" + img.DigestStr()))
			send(b, h, webhook.PathValidateWorkloads, body) // verify once
			for warm := time.Now(); time.Since(warm) < time.Second; {
				send(b, h, webhook.PathValidateWorkloads, body)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				send(b, h, webhook.PathValidateWorkloads, body)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			percentiles(b, lat, "µs")
		})
	}
}

// layouts are the ways an image is signed: cosign's legacy tags (.sig,
// .att), and sigstore bundles attached as referrers (cosign v3).
var layouts = []struct {
	name string
	sign func(g *gate, t testing.TB, repo string) name.Digest
}{
	{"legacy", (*gate).signed},
	{"bundle", (*gate).signedBundles},
}

// BenchmarkCacheMiss: the mutating path for a Pod naming a tag never seen:
// resolve the tag, then verify a signature and one SLSA attestation against
// the loopback registry (legacy layout, or bundles found through the
// registry's referrers tag schema). Every iteration is a miss (a fresh
// cache each time the prepared images run out).
func BenchmarkCacheMiss(b *testing.B) {
	for _, layout := range layouts {
		b.Run(layout.name, func(b *testing.B) {
			g := newGate(b)
			const n = 100
			var bodies [][]byte
			for i := range n {
				img := layout.sign(g, b, fmt.Sprintf("bench/miss-%d", i))
				bodies = append(bodies, reviewBody(podJSON(img.Context().Tag("v1").String())))
			}
			h := g.stack(b)
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%n == 0 {
					b.StopTimer()
					c, _ := images.NewCache(images.DefaultCacheOptions())
					g.gate.Cache = c
					b.StartTimer()
				}
				start := time.Now()
				send(b, h, webhook.PathMutateWorkloads, bodies[i%n])
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			percentiles(b, lat, "ms")
		})
	}
}

// BenchmarkEightContainersOneImage: a Pod with 8 containers of one new image.
func BenchmarkEightContainersOneImage(b *testing.B) {
	g := newGate(b)
	h := g.stack(b)
	var lat []time.Duration
	var reads int64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		img := g.signed(b, fmt.Sprintf("bench/eight-%d", i))
		ref := img.Context().Tag("v1").String()
		body := reviewBody(podJSON(ref, ref, ref, ref, ref, ref, ref, ref))
		b.StartTimer()
		start := time.Now()
		send(b, h, webhook.PathMutateWorkloads, body)
		lat = append(lat, time.Since(start))
		reads += g.sigReads.Load()
	}
	b.ReportMetric(float64(reads)/float64(b.N), "verifications/pod")
	percentiles(b, lat, "ms")
}

// BenchmarkConcurrentAdmissions: 500 admissions of one new digest at once.
func BenchmarkConcurrentAdmissions(b *testing.B) {
	g := newGate(b)
	h := g.stack(b)
	var reads int64
	var lat []time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		img := g.signed(b, fmt.Sprintf("bench/rollout-%d", i))
		body := reviewBody(podJSON(img.Context().Tag("v1").String() + "@" + img.DigestStr()))
		b.StartTimer()
		start := time.Now()
		var wg sync.WaitGroup
		for range 500 {
			wg.Add(1)
			go func() { defer wg.Done(); send(b, h, webhook.PathValidateWorkloads, body) }()
		}
		wg.Wait()
		lat = append(lat, time.Since(start))
		reads += g.sigReads.Load()
	}
	b.ReportMetric(float64(reads)/float64(b.N), "upstream-verifications")
	percentiles(b, lat, "ms")
}

// BenchmarkCacheMemory fills the cache with 10,000 verified results, each
// holding its own 4 KiB provenance statement, and reports the heap they
// take and the process's RSS.
func BenchmarkCacheMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		opts := images.DefaultCacheOptions()
		c, _ := images.NewCache(opts)
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stmt := []byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","predicate":{"pad":"` + strings.Repeat("x", 4000) + `"}}`)
		for j := range 10000 {
			d := fmt.Sprintf("sha256:%064x", j)
			_, _, err := c.Do(b.Context(), images.Key{Digest: d, Fingerprint: "f"}, func(context.Context) (*images.Result, error) {
				return &images.Result{Digest: d, Policy: "release", Signatures: []images.VerifiedSignature{{Authority: "release"}},
					Attestations: []images.VerifiedAttestation{{Requirement: "slsa", Authority: "release", PredicateType: slsa.PredicateV1, Statement: bytes.Clone(stmt)}}}, nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/(1<<20), "cache-heap-MiB")
		b.ReportMetric(rssMiB(), "rss-MiB")
		b.ReportMetric(float64(c.Stats().Entries), "entries")
	}
}

func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
