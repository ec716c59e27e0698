package e2e

import (
	"fmt"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/signer"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/registry"
)

// BenchmarkSignerThroughput: a backlog of b.N finished TaskRuns (each with
// an image in a loopback registry) is created with the signer stopped; the
// clock runs from the signer's start until every run is signed. Storage
// tekton (annotations), then oci (signature and attestation pushed to the
// registry). slsa/v2alpha4, a cosign key, 4 workers, through the real API
// server with the run guard's webhooks on.
func BenchmarkSignerThroughput(b *testing.B) {
	dir := b.TempDir()
	env := startGuarded(b, signerFixtures(b, dir, map[string]string{"artifacts.taskrun.format": "slsa/v2alpha4"})...)
	reg := registry.Start(b)
	alice := env.As(b, Alice)
	tekton := env.As(b, envtest.TektonController, "system:serviceaccounts")
	ctx := b.Context()
	batch := 0
	for _, storage := range []string{"tekton", "oci"} {
		b.Run(storage, func(b *testing.B) {
			batch++
			cm := &corev1.ConfigMap{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: signerNS, Name: "chains-config"}, cm); err != nil {
				b.Fatal(err)
			}
			cm.Data["artifacts.taskrun.storage"] = storage
			cm.Data["artifacts.oci.storage"] = map[string]string{"tekton": "", "oci": "oci"}[storage]
			if err := env.Client.Update(ctx, cm); err != nil {
				b.Fatal(err)
			}
			label := fmt.Sprintf("batch-%d", batch)
			for i := 0; i < b.N; i++ {
				img := reg.PushRandom(b, fmt.Sprintf("bench/%s-%d", label, i), "1.0")
				tr := taskRun(ns, "", "tekton-builder", safeStep("build"))
				tr.GenerateName = label + "-"
				tr.Labels = map[string]string{"bench": label}
				if err := alice.Create(ctx, tr); err != nil {
					b.Fatal(err)
				}
				if err := envtest.CompleteTaskRun(ctx, tekton, tr, true,
					pipelinev1.TaskRunResult{Name: "IMAGE_URL", Type: pipelinev1.ResultsTypeString, Value: *pipelinev1.NewStructuredValues(img.Repository.Name())},
					pipelinev1.TaskRunResult{Name: "IMAGE_DIGEST", Type: pipelinev1.ResultsTypeString, Value: *pipelinev1.NewStructuredValues(img.DigestStr())}); err != nil {
					b.Fatal(err)
				}
			}
			store, _ := oci.New("", nil)
			b.ResetTimer()
			start := time.Now()
			stop := startSignerB(b, env, signer.Options{Namespace: signerNS, Registry: store, RequireStamp: true, RetryDelay: 100 * time.Millisecond})
			signed := 0
			for time.Since(start) < 5*time.Minute {
				var list pipelinev1.TaskRunList
				if err := env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"bench": label}); err != nil {
					b.Fatal(err)
				}
				signed = 0
				for _, tr := range list.Items {
					switch tr.Annotations[signer.AnnotationSigned] {
					case "true":
						signed++
					case "failed":
						b.Fatalf("%s failed", tr.Name)
					}
				}
				if signed == b.N {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			stop()
			if signed != b.N {
				b.Fatalf("%d of %d signed", signed, b.N)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "runs/s")
		})
	}
}

// BenchmarkSignerLatency: with the signer running, b.N runs finish at a
// steady 10 per second (Tekton's status write); the figure is the time from
// that write until the run carries chains.tekton.dev/signed "true" (seen by
// polling every 10 ms). tekton storage, slsa/v2alpha4.
func BenchmarkSignerLatency(b *testing.B) {
	dir := b.TempDir()
	env := startGuarded(b, signerFixtures(b, dir, map[string]string{
		"artifacts.taskrun.format": "slsa/v2alpha4", "artifacts.taskrun.storage": "tekton", "artifacts.oci.storage": "",
	})...)
	alice := env.As(b, Alice)
	tekton := env.As(b, envtest.TektonController, "system:serviceaccounts")
	ctx := b.Context()
	var runs []*pipelinev1.TaskRun
	for i := 0; i < b.N; i++ {
		tr := taskRun(ns, fmt.Sprintf("latency-%d", i), "tekton-builder", safeStep("build"))
		tr.Labels = map[string]string{"bench": "latency"}
		if err := alice.Create(ctx, tr); err != nil {
			b.Fatal(err)
		}
		runs = append(runs, tr)
	}
	store, _ := oci.New("", nil)
	startSignerB(b, env, signer.Options{Namespace: signerNS, Registry: store, RequireStamp: true, RetryDelay: time.Second})
	time.Sleep(2 * time.Second) // the signer's caches sync and it adds its finalizers
	completed := make([]time.Time, b.N)
	signedAt := make([]time.Time, b.N)
	b.ResetTimer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i, tr := range runs {
			<-tick.C
			cur := &pipelinev1.TaskRun{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), cur); err != nil {
				b.Error(err)
				return
			}
			completed[i] = time.Now()
			if err := envtest.CompleteTaskRun(ctx, tekton, cur, true); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	deadline := time.Now().Add(time.Duration(b.N)*100*time.Millisecond + time.Minute)
	remaining := b.N
	for remaining > 0 && time.Now().Before(deadline) {
		var list pipelinev1.TaskRunList
		if err := env.Client.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{"bench": "latency"}); err != nil {
			b.Fatal(err)
		}
		now := time.Now()
		for _, tr := range list.Items {
			var i int
			if _, err := fmt.Sscanf(tr.Name, "latency-%d", &i); err != nil || !signedAt[i].IsZero() {
				continue
			}
			if tr.Annotations[signer.AnnotationSigned] == "true" {
				signedAt[i] = now
				remaining--
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	<-done
	b.StopTimer()
	if remaining > 0 {
		b.Fatalf("%d runs not signed", remaining)
	}
	lat := make([]time.Duration, b.N)
	for i := range lat {
		lat[i] = signedAt[i].Sub(completed[i])
	}
	p50, p99 := percentiles(lat)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
}
