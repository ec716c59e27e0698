package runguard_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"sort"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/rego"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/benchdata"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/webhook"
	"github.com/tollgate-dev/tollgate/webhook/runguard"
)

// benchRun is benchdata's PipelineRun (5 tasks × 3 steps, restricted and
// limited, a hub reference) with its stamp, as the mutating webhook left it.
func benchRun() []byte {
	d, err := specdigest.OfObject(benchdata.PipelineRun(false, nil))
	if err != nil {
		panic(err)
	}
	return benchdata.PipelineRun(false, map[string]string{specdigest.Annotation: d})
}

// regoRules are realistic user rules over a run; each module takes one
// (in its own package), cycling through them. None denies the bench run.
var regoRules = []string{
	`deny contains {"msg": sprintf("param %q looks like a credential", [p.name]), "path": "spec.params"} if {
	some p in object.get(input.run.spec, "params", [])
	regex.match("(?i)(token|password|secret)", p.name)
}`,
	`deny contains sprintf("step %q pulls from outside registry.example", [s.name]) if {
	some t in object.get(object.get(input.run.spec, "pipelineSpec", {}), "tasks", [])
	some s in object.get(object.get(t, "taskSpec", {}), "steps", [])
	not startswith(s.image, "registry.example/")
}`,
	`deny contains sprintf("task %q has more than 10 steps", [t.name]) if {
	some t in object.get(object.get(input.run.spec, "pipelineSpec", {}), "tasks", [])
	count(object.get(object.get(t, "taskSpec", {}), "steps", [])) > 10
}`,
	`deny contains "runs of the default service account are not allowed" if {
	input.serviceAccount.name == "default"
}`,
	`warn contains sprintf("step %q runs a script that fetches from the internet", [s.name]) if {
	some t in object.get(object.get(input.run.spec, "pipelineSpec", {}), "tasks", [])
	some s in object.get(object.get(t, "taskSpec", {}), "steps", [])
	regex.match("(curl|wget) https?://", object.get(s, "script", ""))
}`,
}

func regoModules(n int) []v1alpha1.RegoModule {
	out := make([]v1alpha1.RegoModule, n)
	for i := range out {
		out[i] = v1alpha1.RegoModule{Name: fmt.Sprintf("rule-%d.rego", i),
			Module: fmt.Sprintf("package bench.rule%d\n\nimport rego.v1\n\n%s\n", i, regoRules[i%len(regoRules)])}
	}
	return out
}

// BenchmarkValidatePipelineRun measures the validating path in-process, from
// AdmissionReview bytes to response bytes, with every built-in check on and
// the cluster answered by the real informer caches of a real API server.
// Sub-benchmarks add 0, 3 and 20 user Rego modules.
// Run with -cpu 1 for the per-core figure.
func BenchmarkValidatePipelineRun(b *testing.B) {
	for _, n := range []int{0, 3, 20} {
		b.Run(fmt.Sprintf("rego-%d", n), func(b *testing.B) { benchValidate(b, n) })
	}
}

func benchValidate(b *testing.B, modules int) {
	// As `tollgate webhook` runs (see webhook.DefaultGCPercent).
	defer debug.SetGCPercent(debug.SetGCPercent(webhook.DefaultGCPercent))
	env := envtest.Start(b, envtest.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tekton-builder"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: runs.DefaultCeilingClusterRole}, Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}},
	}
	// A realistic amount of RBAC besides the API server's own: 200 bindings.
	for i := 0; i < 200; i++ {
		objs = append(objs, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: fmt.Sprintf("rb-%d", i)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "team-a", Name: fmt.Sprintf("other-%d", i)}},
		})
	}
	for _, o := range objs {
		if err := env.Client.Create(ctx, o); err != nil {
			b.Fatal(err)
		}
	}
	scheme, _ := webhook.Scheme()
	c, err := cache.New(env.Config, cache.Options{Scheme: scheme})
	if err != nil {
		b.Fatal(err)
	}
	cl, err := runguard.NewCacheCluster(ctx, c, env.Client)
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		b.Fatal("cache did not sync")
	}
	set := runs.NewSet(runs.BuiltinDefault())
	if modules > 0 {
		p, err := runs.Compile(ctx, &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "bench", UID: "bench", Generation: 1},
			Spec: v1alpha1.ClusterRunPolicySpec{Rego: regoModules(modules)}}, nil)
		if err != nil {
			b.Fatal(err)
		}
		set = runs.NewSet(runs.BuiltinDefault(), p)
	}
	h, err := runguard.New(runguard.Deps{Policies: func() *runs.Set { return set }, Cluster: cl, Namespaces: cl})
	if err != nil {
		b.Fatal(err)
	}
	s, err := webhook.New(webhook.Options{Addr: "127.0.0.1:0", CertFile: "x", KeyFile: "x"}, webhook.Handlers{ValidateRuns: h}, nil, logr.Discard())
	if err != nil {
		b.Fatal(err)
	}
	srv := s.Handler()
	body := benchdata.Review(benchRun(), "alice")
	check := func() *admissionv1.AdmissionResponse {
		req := httptest.NewRequest(http.MethodPost, webhook.PathValidateRuns, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			b.Fatalf("bad response: %s", rec.Body.String())
		}
		return out.Response
	}
	if r := check(); !r.Allowed {
		b.Fatalf("the benchmark run is denied: %v", r.Result)
	}
	prepared := rego.Prepared()
	// Warm up (caches, branch predictors, the API server's own start-up work
	// settling) for two seconds before measuring.
	for warm := time.Now(); time.Since(warm) < 2*time.Second; {
		check()
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		req := httptest.NewRequest(http.MethodPost, webhook.PathValidateRuns, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	if n := rego.Prepared() - prepared; n != 0 {
		b.Fatalf("%d Rego queries were prepared while serving requests", n)
	}
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 {
		i := int(float64(len(lat)-1) * p)
		return float64(lat[i].Microseconds())
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	var total time.Duration
	for _, l := range lat {
		total += l
	}
	b.ReportMetric(float64(len(lat))/total.Seconds(), "reviews/s")
}

func authUser(name string) authenticationv1.UserInfo {
	return authenticationv1.UserInfo{Username: name}
}
