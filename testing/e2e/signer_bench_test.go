package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/signer"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/proc"
	"github.com/tollgate-dev/tollgate/testing/registry"
)

// BenchmarkSignerThroughput: a backlog of b.N finished TaskRuns (each with
// an image in a loopback registry) is created with no signer running; the
// clock runs from the start of the `tollgate signer` process (its
// defaults: 16 workers per kind) until a watch has seen every run signed.
// Storage tekton (annotations), then oci (signature and attestation pushed
// to the registry). slsa/v2alpha4, a cosign key, through the real API
// server with the run guard's webhooks on. The backlog's statuses are
// written here (the finished runs are the input, not what is measured;
// the real Tekton runs 50 runs in about a minute on this machine).
func BenchmarkSignerThroughput(b *testing.B) {
	dir := b.TempDir()
	reg := registry.Start(b)
	env := startGuarded(b, append(signerFixtures(b, dir, map[string]string{"artifacts.taskrun.format": "slsa/v2alpha4"}),
		repositoryOwners("bench-owns", ns, reg.Host+"/bench/**"))...)
	alice := env.As(b, Alice)
	tekton := env.As(b, envtest.TektonController, "system:serviceaccounts")
	ctx := b.Context()
	bin := tollgateBinary(b)
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
				if err := envtest.CompleteTaskRun(ctx, tekton, tr, true, imageResults(img)...); err != nil {
					b.Fatal(err)
				}
			}
			w := watchSigned(b, env, client.MatchingLabels{"bench": label})
			busy0, total0 := machineTicks(b)
			b.ResetTimer()
			start := time.Now()
			signer := startSignerProcess(b, env, bin)
			err := w.wait(b.N, 5*time.Minute)
			elapsed := time.Since(start)
			b.StopTimer()
			busy1, total1 := machineTicks(b)
			rss := rssMiB(b, signer.Process.Pid)
			cpu := cpuTicks(b, signer.Process.Pid)
			_ = signer.Process.Kill()
			_ = signer.Wait()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "runs/s")
			// The start (the process, its caches' first list, the config)
			// is in runs/s; the rate once the first run is signed is not.
			b.ReportMetric(float64(w.first.Sub(start).Milliseconds()), "first-signed-ms")
			if b.N > 1 {
				b.ReportMetric(float64(b.N-1)/start.Add(elapsed).Sub(w.first).Seconds(), "runs/s-after-first")
			}
			b.ReportMetric(rss, "rss-MiB")
			// What bounds it: the signer's own CPU per run, and how busy
			// the whole machine was (the API server, etcd, the webhook
			// and the registry share its cores).
			b.ReportMetric(float64(cpu)*1000/clockTicks/float64(b.N), "signer-cpu-ms/run")
			b.ReportMetric(100*float64(busy1-busy0)/float64(total1-total0), "machine-busy-%")
		})
	}
}

// machineTicks returns the busy and total CPU time of the machine, all
// cores, from /proc/stat (in USER_HZ; steal and guest time left out).
func machineTicks(b *testing.B) (busy, total int64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		b.Fatalf("/proc/stat starts %q", line)
	}
	// user nice system idle iowait irq softirq
	for i, v := range f[1:8] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %v", err)
		}
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total
}

// BenchmarkSignerMemory: the `tollgate signer` process's resident memory
// with b.N finished, already signed TaskRuns in the cluster (the steady
// state of a busy cluster whose runs are kept), once its caches hold them
// all and it has looked at each.
func BenchmarkSignerMemory(b *testing.B) {
	dir := b.TempDir()
	env := startGuarded(b, append(signerFixtures(b, dir, map[string]string{"artifacts.taskrun.format": "slsa/v2alpha4", "artifacts.taskrun.storage": "tekton"}),
		serviceAccount(signerNS, "tekton-builder"))...)
	ctx := b.Context()
	bin := tollgateBinary(b)
	// Runs kept from before: created where the run guard does not look
	// (Tollgate's own namespace), as the administrator, each already
	// signed.
	createParallel(b, b.N, func(i int) error {
		tr := taskRun(signerNS, fmt.Sprintf("kept-%05d", i), "tekton-builder", safeStep("build"))
		tr.Annotations = map[string]string{signer.AnnotationSigned: "true"}
		tr.Labels = map[string]string{"bench": "memory"}
		if err := env.Client.Create(ctx, tr); err != nil {
			return err
		}
		return envtest.CompleteTaskRun(ctx, env.Client, tr, true)
	})
	b.ResetTimer()
	var args []string
	profileDir := os.Getenv("TOLLGATE_BENCH_PROFILE")
	profiling := fmt.Sprintf("127.0.0.1:%d", proc.FreePort(b))
	if profileDir != "" { // as BenchmarkWebhookProcess: the heap at the end
		args = append(args, "--profiling-address", profiling)
	}
	signerProc := startSignerProcess(b, env, bin, args...)
	// One new run signed after all the kept ones were listed shows the
	// caches are synced and the queue went through them.
	tr := taskRun(ns, "after", "tekton-builder", safeStep("build"))
	if err := env.As(b, Alice).Create(ctx, tr); err != nil {
		b.Fatal(err)
	}
	w := watchSigned(b, env, client.InNamespace(ns), client.MatchingFields{"metadata.name": "after"})
	time.Sleep(5 * time.Second)
	tekton := env.As(b, envtest.TektonController, "system:serviceaccounts")
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error { // the signer's finalizer
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(tr), tr); err != nil {
			return err
		}
		return envtest.CompleteTaskRun(ctx, tekton, tr, true)
	}); err != nil {
		b.Fatal(err)
	}
	if err := w.wait(1, 2*time.Minute); err != nil {
		b.Fatal(err)
	}
	time.Sleep(5 * time.Second) // a collection or two
	b.StopTimer()
	b.ReportMetric(rssMiB(b, signerProc.Process.Pid), "rss-MiB")
	if profileDir != "" {
		if err := saveProfile("http://"+profiling+"/debug/pprof/heap?gc=1", filepath.Join(profileDir, "signer-heap.pprof")); err != nil {
			b.Error(err)
		}
	}
}

// createParallel calls create(i) for i in [0, n) from 8 writers and
// fails b on the first error.
func createParallel(b *testing.B, n int, create func(i int) error) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				if err := create(i); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// signedWatch counts the runs a watch has seen signed.
type signedWatch struct {
	// first is when the first run was seen signed.
	first time.Time
	w     watch.Interface
}

// watchSigned watches the TaskRuns matching opts for signed ones.
func watchSigned(b *testing.B, env *envtest.Env, opts ...client.ListOption) *signedWatch {
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	w, err := wc.Watch(b.Context(), &pipelinev1.TaskRunList{}, opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	return &signedWatch{w: w}
}

// wait returns once n distinct runs have been seen signed, or fails on a
// run the signer failed or when d passes.
func (s *signedWatch) wait(n int, d time.Duration) error {
	signed := map[string]bool{}
	timeout := time.After(d)
	for len(signed) < n {
		select {
		case ev, ok := <-s.w.ResultChan():
			if !ok {
				return fmt.Errorf("the watch ended with %d of %d signed", len(signed), n)
			}
			tr, ok := ev.Object.(*pipelinev1.TaskRun)
			if !ok {
				continue
			}
			switch tr.Annotations[signer.AnnotationSigned] {
			case "true":
				if s.first.IsZero() {
					s.first = time.Now()
				}
				signed[tr.Namespace+"/"+tr.Name] = true
			case "failed":
				return fmt.Errorf("%s failed", tr.Name)
			}
		case <-timeout:
			return fmt.Errorf("%d of %d signed after %s", len(signed), n, d)
		}
	}
	return nil
}

// BenchmarkSignerLatency: with the tollgate signer process running (its
// defaults), b.N runs finish at a steady rate (Tekton's status write): 10
// and 20 per second; the figure is the time from that write until the run
// carries chains.tekton.dev/signed "true" (seen by polling every 10 ms).
// tekton storage, slsa/v2alpha4.
func BenchmarkSignerLatency(b *testing.B) {
	bin := tollgateBinary(b)
	for _, rate := range []int{10, 20} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { benchSignerLatency(b, bin, rate) })
	}
}

func benchSignerLatency(b *testing.B, bin string, rate int) {
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
	startSignerProcess(b, env, bin)
	time.Sleep(3 * time.Second) // the signer's caches sync and it adds its finalizers
	completed := make([]time.Time, b.N)
	signedAt := make([]time.Time, b.N)
	b.ResetTimer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(rate))
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
	deadline := time.Now().Add(time.Duration(b.N)*time.Second/time.Duration(rate) + time.Minute)
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
