package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/testing/proc"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/webhook/audit"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

// BenchmarkAuditScale: a namespace labelled tollgate.dev/gate=audit with
// b.N Pods (as pinned by the gate: by digest) over 200 distinct images,
// half of them signed, in a loopback registry; `tollgate audit --watch`
// started as a process. It reports the first pass's duration (from its
// log), the process's peak RSS, the registry requests the pass made, and
// the p99 of TaskRun creates through the webhook before and during the
// pass (the webhook and the audit are separate processes in the chart;
// here they share the machine's 2 cores with the API server).
func BenchmarkAuditScale(b *testing.B) {
	const images = 200
	reg := registry.Start(b)
	key := signing.NewKey(b)
	env := startGuarded(b,
		namespace(signerNS, nil),
		namespace("keys", nil),
		namespace("fleet", map[string]string{imagegate.LabelGate: imagegate.GateAudit}),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "keys", Name: "release-key"}, Data: map[string][]byte{"cosign.pub": key.PublicPEM}},
	)
	admin := env.Client
	ctx := b.Context()
	p := imagePolicy("release", reg.Host, nil)
	p.Spec.Authorities[0].Key.SecretRef.Namespace = "keys"
	if err := admin.Create(ctx, p); err != nil {
		b.Fatal(err)
	}
	var imgs []name.Digest
	for i := 0; i < images; i++ {
		img := reg.PushRandom(b, fmt.Sprintf("fleet/app-%03d", i), "v1")
		if i%2 == 0 {
			key.Sign(b, img, signing.Options{})
			key.Attest(b, img, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/builders/test"), signing.Options{})
		}
		imgs = append(imgs, img)
	}
	createParallel(b, b.N, func(i int) error {
		return admin.Create(ctx, podOf("fleet", fmt.Sprintf("pod-%05d", i), imgs[i%images].String()))
	})
	var requests int64
	reg.Intercept(func(_ http.ResponseWriter, _ *http.Request) bool {
		atomic.AddInt64(&requests, 1)
		return false
	})

	// Admission latency, sampled throughout.
	type sample struct {
		at  time.Time
		lat time.Duration
	}
	var mu sync.Mutex
	var samples []sample
	halt := make(chan struct{})
	var loop sync.WaitGroup
	loop.Add(1)
	go func() {
		defer loop.Done()
		alice := env.As(b, Alice)
		for {
			select {
			case <-halt:
				return
			default:
			}
			tr := taskRun(ns, "", "tekton-builder", safeStep("build"))
			tr.GenerateName = "during-audit-"
			start := time.Now()
			if err := alice.Create(ctx, tr); err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			samples = append(samples, sample{start, time.Since(start)})
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	time.Sleep(5 * time.Second) // the baseline

	bin := tollgateBinary(b)
	kubeconfig := writeKubeconfig(b, env, filepath.Join(b.TempDir(), "kubeconfig"), "")
	b.ResetTimer()
	auditStart := time.Now()
	w := proc.Start(b, "tollgate audit --watch", bin, nil, "audit", "--watch", "--kubeconfig", kubeconfig, "--resync", "1h", "--probe-address", "0")
	passed := regexp.MustCompile(`audit pass finished.*"duration":\s*"([^"]+)"`)
	var duration string
	var peak float64
	for time.Since(auditStart) < 10*time.Minute && duration == "" {
		time.Sleep(200 * time.Millisecond)
		if v := peakRSSMiB(w.Cmd.Process.Pid); v > peak {
			peak = v
		}
		if m := passed.FindStringSubmatch(w.Output()); m != nil {
			duration = m[1]
		}
	}
	auditEnd := time.Now()
	b.StopTimer()
	close(halt)
	loop.Wait()
	if duration == "" {
		b.Fatalf("no audit pass finished:\n%s", w.Output())
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(audit.PolicyReportGVK)
	if err := admin.Get(ctx, client.ObjectKey{Namespace: "fleet", Name: audit.ReportName}, u); err == nil {
		fail, _, _ := unstructured.NestedInt64(u.Object, "summary", "fail")
		b.ReportMetric(float64(fail), "fail-rows")
	}
	var before, during []time.Duration
	for _, s := range samples {
		switch {
		case s.at.Before(auditStart):
			before = append(before, s.lat)
		case s.at.Before(auditEnd):
			during = append(during, s.lat)
		}
	}
	p99 := func(l []time.Duration) float64 {
		if len(l) == 0 {
			return 0
		}
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		return float64(l[int(float64(len(l)-1)*0.99)].Microseconds()) / 1000
	}
	d, _ := time.ParseDuration(duration)
	b.ReportMetric(d.Seconds(), "pass-s")
	b.ReportMetric(peak, "peak-rss-MiB")
	b.ReportMetric(float64(atomic.LoadInt64(&requests)), "registry-requests")
	b.ReportMetric(p99(before), "admission-p99-before-ms")
	b.ReportMetric(p99(during), "admission-p99-during-ms")
	b.ReportMetric(float64(len(during)), "admissions-during")
}

// peakRSSMiB is process pid's peak resident set size (VmHWM), or 0.
func peakRSSMiB(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`VmHWM:\s+(\d+) kB`).FindSubmatch(raw)
	if m == nil {
		return 0
	}
	kb, _ := strconv.ParseFloat(string(m[1]), 64)
	return kb / 1024
}
