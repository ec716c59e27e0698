package e2e

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/tollgate-dev/tollgate/signer"
	"github.com/tollgate-dev/tollgate/signer/storage/oci"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/tekton"
)

// craneBin builds crane (go-containerregistry's CLI, this module's version)
// for the steps the node stand-in runs: the "build" pushes with it.
func craneBin(t testing.TB) string {
	t.Helper()
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "crane"), "github.com/google/go-containerregistry/cmd/crane")
	build.Dir = envtest.Root()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building crane: %v\n%s", err, out)
	}
	return dir
}

// articlePipelineRun is the seed article's PipelineRun
// (testing/samples/demo/pipelinerun.yaml, the one `make demo` runs) named
// name, building image.
func articlePipelineRun(name, image string) *pipelinev1.PipelineRun {
	b, err := os.ReadFile(filepath.Join(envtest.Root(), "testing", "samples", "demo", "pipelinerun.yaml"))
	if err != nil {
		panic(err)
	}
	pr := &pipelinev1.PipelineRun{}
	if err := yaml.Unmarshal(b, pr); err != nil {
		panic(err)
	}
	pr.Name = name
	for i, p := range pr.Spec.Params {
		if p.Name == "image-ref" {
			pr.Spec.Params[i].Value = *pipelinev1.NewStructuredValues(image)
		}
	}
	return pr
}

// startTekton starts Tollgate's run guard and signer (oci storage,
// slsa/v2alpha4 for TaskRuns and PipelineRuns; TaskRuns in tekton storage
// too, so that fetch-source, which builds no image, is signed) and the real
// Tekton with set-security-context, and a loopback registry team-a owns.
func startTekton(t testing.TB) (*envtest.Env, *tekton.Tekton, *registry.Registry, string) {
	return startTektonWith(t, true)
}

// startTektonWith is startTekton, without Tollgate's webhooks unless
// guarded (the signer runs either way).
func startTektonWith(t testing.TB, guarded bool) (*envtest.Env, *tekton.Tekton, *registry.Registry, string) {
	t.Helper()
	dir := t.TempDir()
	reg := registry.Start(t)
	fixtures := append(signerFixtures(t, dir, map[string]string{
		"artifacts.taskrun.format":      "slsa/v2alpha4",
		"artifacts.taskrun.storage":     "tekton,oci",
		"artifacts.pipelinerun.format":  "slsa/v2alpha4",
		"artifacts.pipelinerun.storage": "oci",
		"artifacts.oci.storage":         "oci",
		"builder.id":                    "https://tollgate.dev/builders/test",
	}), serviceAccount(signerNS, "tekton-builder"), repositoryOwners("team-a-owns", ns, reg.Host+"/team-a/**"))
	var env *envtest.Env
	if guarded {
		env = startGuarded(t, fixtures...)
	} else {
		env = envtest.Start(t, envtest.Options{})
		applyAll(t, env.Client, append(append(sampleState(t), aliceRBAC()...), fixtures...)...)
	}
	store, err := oci.New("", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = startSignerB(t, env, signer.Options{Namespace: signerNS, Registry: store, RetryDelay: 200 * time.Millisecond})
	tk := tekton.Start(t, env, tekton.Options{
		FeatureFlags: map[string]string{"set-security-context": "true"},
		Node:         tekton.NodeOptions{Path: []string{craneBin(t)}},
	})
	return env, tk, reg, dir
}

// waitDone waits until a run's Succeeded condition is no longer Unknown.
func waitDone(t *testing.T, env *envtest.Env, tk *tekton.Tekton, obj client.Object, d time.Duration) *apis.Condition {
	t.Helper()
	ctx := t.Context()
	var cond *apis.Condition
	ok := waitFor(ctx, d, func() bool {
		if env.Client.Get(ctx, client.ObjectKeyFromObject(obj), obj) != nil {
			return false
		}
		switch o := obj.(type) {
		case *pipelinev1.PipelineRun:
			cond = o.Status.GetCondition(apis.ConditionSucceeded)
		case *pipelinev1.TaskRun:
			cond = o.Status.GetCondition(apis.ConditionSucceeded)
		}
		return cond != nil && cond.Status != corev1.ConditionUnknown
	})
	if !ok {
		t.Fatalf("%s did not finish within %s: %+v\nTekton controller:\n%s\nnode:\n%s", obj.GetName(), d, cond, tail(tk.ControllerOutput(), 40), tk.Node.Logs())
	}
	return cond
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestTektonArticlePipeline: the seed article's PipelineRun, run by the
// real Tekton controller: the run, its child TaskRuns and their Pods are
// admitted by Tollgate (restricted Pods, set-security-context), Tekton runs
// it to the end, and the signer signs both TaskRuns and the PipelineRun;
// cosign verifies the image and its provenance.
func TestTektonArticlePipeline(t *testing.T) {
	env, tk, reg, dir := startTekton(t)
	ctx := t.Context()
	alice := env.As(t, Alice)
	image := reg.Host + "/team-a/widget-api:1.0"
	pr := articlePipelineRun("build-and-push", image)
	if err := alice.Create(ctx, pr); err != nil {
		t.Fatal(err)
	}
	if c := waitDone(t, env, tk, pr, 3*time.Minute); !c.IsTrue() {
		t.Fatalf("the PipelineRun failed: %+v\n%s", c, childStates(t, env, pr))
	}
	if len(pr.Status.ChildReferences) != 2 {
		t.Fatalf("child references: %+v", pr.Status.ChildReferences)
	}
	// Tekton created the Pods (admitted by the run guard's Pod check), with
	// set-security-context's restricted init containers.
	pods := &corev1.PodList{}
	if err := env.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{"tekton.dev/pipelineRun": pr.Name}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 2 {
		t.Fatalf("%d Pods for the PipelineRun", len(pods.Items))
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodSucceeded {
			t.Errorf("Pod %s: %s", p.Name, p.Status.Phase)
		}
		for _, c := range p.Spec.InitContainers {
			if sc := c.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("Pod %s: init container %s is not restricted: %+v", p.Name, c.Name, sc)
			}
		}
	}
	for _, ref := range pr.Status.ChildReferences {
		tr := &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: ref.Name}}
		if got := waitAnnotation(t, env.Client, tr, signer.AnnotationSigned); got != "true" {
			t.Errorf("TaskRun %s: signed = %q; events: %v", ref.Name, got, eventReasons(t, env.Client, tr))
		}
	}
	if got := waitAnnotation(t, env.Client, pr, signer.AnnotationSigned); got != "true" {
		t.Errorf("PipelineRun: signed = %q; events: %v", got, eventReasons(t, env.Client, pr))
	}
	if dir := os.Getenv("TOLLGATE_CAPTURE_RUNS"); dir != "" {
		captureRuns(t, env, pr, dir)
	}
	var digest string
	for _, r := range pr.Status.Results {
		if r.Name == "IMAGE_DIGEST" {
			digest = r.Value.StringVal
		}
	}
	if !strings.HasPrefix(digest, "sha256:") {
		t.Fatalf("pipeline results: %+v", pr.Status.Results)
	}
	ref := reg.Host + "/team-a/widget-api@" + digest
	for _, args := range [][]string{
		{"verify", "--key", filepath.Join(dir, "cosign.pub"), "--insecure-ignore-tlog", ref},
		{"verify-attestation", "--key", filepath.Join(dir, "cosign.pub"), "--insecure-ignore-tlog", "--type", "slsaprovenance1", ref},
	} {
		if out, err := cosignCLI(t, dir, nil, args...); err != nil {
			t.Errorf("cosign %s: %v\n%s", args[0], err, out)
		}
	}
}

// childStates describes a PipelineRun's TaskRuns and their steps, for a
// failure message.
func childStates(t *testing.T, env *envtest.Env, pr *pipelinev1.PipelineRun) string {
	var b strings.Builder
	for _, ref := range pr.Status.ChildReferences {
		tr := &pipelinev1.TaskRun{}
		if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: pr.Namespace, Name: ref.Name}, tr); err != nil {
			fmt.Fprintf(&b, "TaskRun %s: %v\n", ref.Name, err)
			continue
		}
		fmt.Fprintf(&b, "TaskRun %s: %+v\n", ref.Name, tr.Status.GetCondition(apis.ConditionSucceeded))
		for _, s := range tr.Status.Steps {
			fmt.Fprintf(&b, "  step %s: %+v\n", s.Name, s.ContainerState)
		}
	}
	return b.String()
}

// captureRuns writes a PipelineRun and its TaskRuns as the real Tekton
// left them, for Chains' golden statements (make tekton-golden): without
// what Tollgate and the signer added (their annotations and finalizers,
// so that the statement is exactly Chains'), managed fields and resource
// versions.
func captureRuns(t *testing.T, env *envtest.Env, pr *pipelinev1.PipelineRun, dir string) {
	t.Helper()
	clean := func(o client.Object) {
		a := o.GetAnnotations()
		for k := range a {
			if strings.HasPrefix(k, "tollgate.dev/") || strings.HasPrefix(k, "chains.tekton.dev/") {
				delete(a, k)
			}
		}
		o.SetAnnotations(a)
		o.SetFinalizers(nil)
		o.SetManagedFields(nil)
		o.SetResourceVersion("")
	}
	write := func(name string, o client.Object) {
		clean(o)
		b, err := json.MarshalIndent(o, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := pr.DeepCopy()
	run.APIVersion, run.Kind = "tekton.dev/v1", "PipelineRun"
	write("pipelinerun-article.json", run)
	for _, ref := range pr.Status.ChildReferences {
		tr := &pipelinev1.TaskRun{}
		if err := env.Client.Get(t.Context(), client.ObjectKey{Namespace: pr.Namespace, Name: ref.Name}, tr); err != nil {
			t.Fatal(err)
		}
		tr.APIVersion, tr.Kind = "tekton.dev/v1", "TaskRun"
		write("taskrun-article-"+ref.PipelineTaskName+".json", tr)
	}
	t.Logf("captured the runs in %s", dir)
}

// TestTektonRunOutcomes: what the real controller does with a failing
// step, a cancellation, a timeout and a retried task, and what the signer
// makes of it — every finished run signed once (tekton storage), never an
// attempt the controller retries: the retried build's final image is the
// one signed.
func TestTektonRunOutcomes(t *testing.T) {
	env, tk, reg, dir := startTekton(t)
	ctx := t.Context()
	alice := env.As(t, Alice)
	step := func(n, script string) pipelinev1.Step {
		s := safeStep(n)
		s.Script = script
		return s
	}
	failing := taskRun(ns, "failing-step", "tekton-builder", step("ok", "true"), step("broken", "echo broken >&2; exit 3"), step("never", "true"))
	cancelled := taskRun(ns, "cancelled", "tekton-builder", step("long", "sleep 60"))
	timedOut := taskRun(ns, "timed-out", "tekton-builder", step("long", "sleep 60"))
	timedOut.Spec.Timeout = &metav1.Duration{Duration: 3 * time.Second}
	for _, tr := range []*pipelinev1.TaskRun{failing, cancelled, timedOut} {
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatalf("creating %s: %v", tr.Name, err)
		}
	}
	retried := articlePipelineRun("retried", reg.Host+"/team-a/retried:1.0")
	build := &retried.Spec.PipelineSpec.Tasks[1]
	build.Retries = 1
	build.TaskSpec.Steps[0].Script = "if [ ! -f $(workspaces.source.path)/attempted ]; then touch $(workspaces.source.path)/attempted; echo first attempt fails >&2; exit 1; fi\n" + build.TaskSpec.Steps[0].Script
	if err := alice.Create(ctx, retried); err != nil {
		t.Fatal(err)
	}

	// Cancel the long TaskRun once its step runs, as a user does.
	if !waitFor(ctx, time.Minute, func() bool {
		_ = env.Client.Get(ctx, client.ObjectKeyFromObject(cancelled), cancelled)
		return len(cancelled.Status.Steps) > 0 && cancelled.Status.Steps[0].Running != nil
	}) {
		t.Fatalf("the TaskRun to cancel never ran: %+v", cancelled.Status)
	}
	cancelled.Spec.Status = pipelinev1.TaskRunSpecStatusCancelled
	if err := alice.Update(ctx, cancelled); err != nil {
		t.Fatalf("cancelling: %v", err)
	}

	for _, c := range []struct {
		tr     *pipelinev1.TaskRun
		reason string
	}{{failing, "Failed"}, {cancelled, "TaskRunCancelled"}, {timedOut, "TaskRunTimeout"}} {
		cond := waitDone(t, env, tk, c.tr, 2*time.Minute)
		if cond.IsTrue() || cond.Reason != c.reason {
			t.Errorf("%s: %s %s: %s", c.tr.Name, cond.Status, cond.Reason, cond.Message)
		}
		if got := waitAnnotation(t, env.Client, c.tr, signer.AnnotationSigned); got != "true" {
			t.Errorf("%s: signed = %q; events: %v", c.tr.Name, got, eventReasons(t, env.Client, c.tr))
		}
		if c.tr.Annotations["chains.tekton.dev/payload-taskrun-"+string(c.tr.UID)] == "" {
			t.Errorf("%s: no provenance stored on the run", c.tr.Name)
		}
	}
	if st := failing.Status.Steps; len(st) != 3 || st[1].Terminated == nil || st[1].Terminated.ExitCode != 3 || st[2].Terminated == nil || st[2].Terminated.Reason == "Completed" {
		t.Errorf("failing steps: %+v", failing.Status.Steps)
	}

	if c := waitDone(t, env, tk, retried, 3*time.Minute); !c.IsTrue() {
		t.Fatalf("the retried PipelineRun: %+v\n%s", c, childStates(t, env, retried))
	}
	buildRun := &pipelinev1.TaskRun{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "retried-build-push"}, buildRun); err != nil {
		t.Fatal(err)
	}
	if len(buildRun.Status.RetriesStatus) != 1 {
		t.Errorf("retries: %d, want 1", len(buildRun.Status.RetriesStatus))
	}
	if got := waitAnnotation(t, env.Client, buildRun, signer.AnnotationSigned); got != "true" {
		t.Fatalf("the retried build: signed = %q; events: %v", got, eventReasons(t, env.Client, buildRun))
	}
	var digest string
	for _, r := range buildRun.Status.Results {
		if r.Name == "IMAGE_DIGEST" {
			digest = r.Value.StringVal
		}
	}
	ref := reg.Host + "/team-a/retried@" + digest
	if out, err := cosignCLI(t, dir, nil, "verify", "--key", filepath.Join(dir, "cosign.pub"), "--insecure-ignore-tlog", ref); err != nil {
		t.Errorf("the retried build's image is not signed: %v\n%s", err, out)
	}
}

// runArticles creates n of the article's PipelineRuns at once (as alice
// when set, else as admin) and waits until every one is finished and
// signed; it returns each run's time from create to signed.
func runArticles(t testing.TB, env *envtest.Env, c client.Client, reg *registry.Registry, prefix string, n int, timeout time.Duration) []time.Duration {
	t.Helper()
	ctx := t.Context()
	created := map[string]time.Time{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%d", prefix, i)
		pr := articlePipelineRun(name, fmt.Sprintf("%s/team-a/%s:1.0", reg.Host, name))
		created[name] = time.Now()
		if err := c.Create(ctx, pr); err != nil {
			t.Fatalf("creating %s: %v", name, err)
		}
	}
	signedAt := map[string]time.Duration{}
	deadline := time.Now().Add(timeout)
	for len(signedAt) < n && time.Now().Before(deadline) {
		list := &pipelinev1.PipelineRunList{}
		if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		for _, pr := range list.Items {
			start, ok := created[pr.Name]
			if _, done := signedAt[pr.Name]; !ok || done {
				continue
			}
			if c := pr.Status.GetCondition(apis.ConditionSucceeded); c != nil && c.IsFalse() {
				t.Fatalf("%s failed: %s: %s", pr.Name, c.Reason, c.Message)
			}
			if pr.Annotations[signer.AnnotationSigned] == "true" {
				signedAt[pr.Name] = now.Sub(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(signedAt) < n {
		var stuck []string
		for name := range created {
			if _, ok := signedAt[name]; !ok {
				stuck = append(stuck, name)
			}
		}
		t.Fatalf("%d of %d PipelineRuns not signed within %s: %v", len(stuck), n, timeout, stuck)
	}
	out := make([]time.Duration, 0, n)
	for _, d := range signedAt {
		out = append(out, d)
	}
	return out
}

// TestTektonConcurrent: 50 of the article's PipelineRuns at once, run by
// the real controller through Tollgate's webhooks: none is stuck, none
// fails, every one is signed, and Tekton never met a webhook error (no
// Warning Event of Tekton's names an admission webhook).
func TestTektonConcurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("50 PipelineRuns through the real Tekton controller")
	}
	env, _, reg, _ := startTekton(t)
	took := runArticles(t, env, env.As(t, Alice), reg, "load", 50, 6*time.Minute)
	p50, p99 := percentiles(took)
	t.Logf("50 PipelineRuns, create -> signed: p50 %.0f ms, p99 %.0f ms", p50, p99)
	events := &corev1.EventList{}
	if err := env.Client.List(t.Context(), events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if e.Type == corev1.EventTypeWarning && (strings.Contains(e.Message, "admission webhook") || strings.Contains(e.Message, "denied the request")) {
			t.Errorf("%s %s: %s: %s", e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
}

// BenchmarkTektonPipelineToSigned: 50 of the article's PipelineRuns at
// once through the real Tekton controller, create -> signed, with and
// without Tollgate's webhooks (the signer runs in both): what Tollgate's
// admission adds to a real pipeline.
func BenchmarkTektonPipelineToSigned(b *testing.B) {
	for _, guarded := range []bool{false, true} {
		name := "without-webhooks"
		if guarded {
			name = "tollgate"
		}
		b.Run(name, func(b *testing.B) {
			env, _, reg, _ := startTektonWith(b, guarded)
			c := env.As(b, Alice)
			b.ResetTimer()
			var all []time.Duration
			for i := 0; i < b.N; i++ {
				all = append(all, runArticles(b, env, c, reg, fmt.Sprintf("bench-%d", i), 50, 10*time.Minute)...)
			}
			b.StopTimer()
			p50, p99 := percentiles(all)
			b.ReportMetric(p50, "p50-ms")
			b.ReportMetric(p99, "p99-ms")
		})
	}
}

// TestTektonRemoteTask: TaskRuns whose Task Tekton resolves with its
// resolvers (Tekton's resolvers running): the cluster resolver, then the
// bundles resolver against a loopback registry. A safe Task runs; an
// unsafe one — admitted at creation, where only its reference is visible —
// is caught when Tekton creates its Pod, and Tekton reports Tollgate's
// reason on the run.
func TestTektonRemoteTask(t *testing.T) {
	dir := t.TempDir()
	env := startGuarded(t, append(signerFixtures(t, dir, map[string]string{"artifacts.taskrun.storage": "tekton"}),
		namespace("catalog", nil), serviceAccount(signerNS, "tekton-builder"))...)
	tk := tekton.Start(t, env, tekton.Options{FeatureFlags: map[string]string{"set-security-context": "true"}, Resolvers: true})
	ctx := t.Context()
	safe := safeStep("build")
	unsafe := safeStep("build")
	unsafe.SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	for name, s := range map[string]pipelinev1.Step{"safe-build": safe, "unsafe-build": unsafe} {
		task := &pipelinev1.Task{ObjectMeta: metav1.ObjectMeta{Namespace: "catalog", Name: name}, Spec: pipelinev1.TaskSpec{Steps: []pipelinev1.Step{s}}}
		if err := env.Client.Create(ctx, task); err != nil {
			t.Fatalf("creating Task %s: %v", name, err)
		}
	}
	remote := func(name, task string) *pipelinev1.TaskRun {
		return &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: pipelinev1.TaskRunSpec{
			ServiceAccountName: "tekton-builder",
			TaskRef: &pipelinev1.TaskRef{ResolverRef: pipelinev1.ResolverRef{Resolver: "cluster", Params: pipelinev1.Params{
				{Name: "kind", Value: *pipelinev1.NewStructuredValues("task")},
				{Name: "name", Value: *pipelinev1.NewStructuredValues(task)},
				{Name: "namespace", Value: *pipelinev1.NewStructuredValues("catalog")},
			}}},
		}}
	}
	alice := env.As(t, Alice)
	good, bad := remote("remote-safe", "safe-build"), remote("remote-unsafe", "unsafe-build")
	for _, tr := range []*pipelinev1.TaskRun{good, bad} {
		if err := alice.Create(ctx, tr); err != nil {
			t.Fatalf("creating %s (only its reference is visible at creation): %v", tr.Name, err)
		}
	}
	if c := waitDone(t, env, tk, good, 2*time.Minute); !c.IsTrue() {
		t.Fatalf("the safe remote Task: %+v\nresolvers:\n%s", c, tail(tk.ResolversOutput(), 30))
	}
	if good.Status.Provenance == nil || good.Status.Provenance.RefSource == nil {
		t.Errorf("Tekton recorded no refSource for the resolved Task: %+v", good.Status.Provenance)
	}
	c := waitDone(t, env, tk, bad, 2*time.Minute)
	if c.IsTrue() || c.Reason != "PodCreationFailed" || !strings.Contains(c.Message, "tollgate denied Pod") || !strings.Contains(c.Message, "privileged") {
		t.Errorf("the unsafe remote Task: %s %s: %s", c.Status, c.Reason, c.Message)
	}
	pods := &corev1.PodList{}
	if err := env.Client.List(ctx, pods, client.InNamespace(ns), client.MatchingLabels{"tekton.dev/taskRun": bad.Name}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 0 {
		t.Errorf("a Pod exists for the unsafe Task: %s", pods.Items[0].Name)
	}

	t.Run("a Tekton bundle in the loopback registry, pinned by digest", func(t *testing.T) {
		reg := registry.Start(t)
		bundle := func(name string, s pipelinev1.Step) string {
			task := &pipelinev1.Task{TypeMeta: metav1.TypeMeta{APIVersion: "tekton.dev/v1", Kind: "Task"}, ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: pipelinev1.TaskSpec{Steps: []pipelinev1.Step{s}}}
			return pushBundle(t, reg, "catalog/"+name, task).String()
		}
		run := func(name, ref, task string) *pipelinev1.TaskRun {
			return &pipelinev1.TaskRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: pipelinev1.TaskRunSpec{
				ServiceAccountName: "tekton-builder",
				TaskRef: &pipelinev1.TaskRef{ResolverRef: pipelinev1.ResolverRef{Resolver: "bundles", Params: pipelinev1.Params{
					{Name: "bundle", Value: *pipelinev1.NewStructuredValues(ref)},
					{Name: "name", Value: *pipelinev1.NewStructuredValues(task)},
					{Name: "kind", Value: *pipelinev1.NewStructuredValues("task")},
				}}},
			}}
		}
		good, bad := run("bundle-safe", bundle("safe-build", safe), "safe-build"), run("bundle-unsafe", bundle("unsafe-build", unsafe), "unsafe-build")
		for _, tr := range []*pipelinev1.TaskRun{good, bad} {
			if err := alice.Create(ctx, tr); err != nil {
				t.Fatalf("creating %s (a pinned bundle reference): %v", tr.Name, err)
			}
		}
		if c := waitDone(t, env, tk, good, 2*time.Minute); !c.IsTrue() {
			t.Fatalf("the safe bundle: %+v\nresolvers:\n%s", c, tail(tk.ResolversOutput(), 30))
		}
		c := waitDone(t, env, tk, bad, 2*time.Minute)
		if c.IsTrue() || c.Reason != "PodCreationFailed" || !strings.Contains(c.Message, "tollgate denied Pod") || !strings.Contains(c.Message, "privileged") {
			t.Errorf("the unsafe bundle: %s %s: %s", c.Status, c.Reason, c.Message)
		}
	})
}

// pushBundle pushes a Tekton bundle (one layer holding the object, with
// the dev.tekton.image.* annotations the bundles resolver reads) and
// returns it by digest.
func pushBundle(t *testing.T, reg *registry.Registry, repo string, task *pipelinev1.Task) name.Digest {
	t.Helper()
	b, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: task.Name + ".json", Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, Annotations: map[string]string{
		"dev.tekton.image.apiVersion": "v1", "dev.tekton.image.kind": "task", "dev.tekton.image.name": task.Name}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(reg.Host + "/" + repo + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context().Digest(d.String())
}
