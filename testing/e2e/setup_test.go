package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/controlplane"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/webhook/policystore"
)

// Alice is the user who creates runs: a developer with rights on runs, nothing more.
const Alice = "alice@example.com"

// startGuarded starts the control plane with the run guard's webhooks, the
// sample cluster state, the test fixtures fs (applied before the webhook
// starts, so its caches begin complete), and the webhook.
func startGuarded(t testing.TB, fixtures ...client.Object) *envtest.Env {
	t.Helper()
	env := prepareGuarded(t, fixtures...)
	env.StartWebhook(t)
	// Tasks and Pipelines are reviewed by the webhook (Tekton copies their
	// annotations into runs), so they can only be created once it serves.
	applyAll(t, env.Client, definitions(append(sampleState(t), fixtures...))...)
	return env
}

// prepareGuarded starts a control plane with the webhook registrations
// (but not the webhook) and creates the sample cluster state, Alice's RBAC
// and the fixtures — all but Tasks and Pipelines, which need the webhook.
func prepareGuarded(t testing.TB, fixtures ...client.Object) *envtest.Env {
	t.Helper()
	return prepareGuardedWith(t, envtest.Options{Webhooks: true}, fixtures...)
}

// prepareGuardedWith is prepareGuarded with other control plane options.
func prepareGuardedWith(t testing.TB, opts envtest.Options, fixtures ...client.Object) *envtest.Env {
	t.Helper()
	ctx := t.Context()
	env := envtest.Start(t, opts)
	if err := env.GrantTekton(ctx); err != nil {
		t.Fatal(err)
	}
	var rest []client.Object
	for _, o := range append(append(sampleState(t), aliceRBAC()...), fixtures...) {
		if !isDefinition(o) {
			rest = append(rest, o)
		}
	}
	applyAll(t, env.Client, rest...)
	return env
}

func isDefinition(o client.Object) bool {
	switch o.(type) {
	case *pipelinev1.Task, *pipelinev1.Pipeline:
		return true
	}
	gvk := o.GetObjectKind().GroupVersionKind()
	return gvk.Group == "tekton.dev" && (gvk.Kind == "Task" || gvk.Kind == "Pipeline")
}

func definitions(objs []client.Object) []client.Object {
	var out []client.Object
	for _, o := range objs {
		if isDefinition(o) {
			out = append(out, o)
		}
	}
	return out
}

func aliceRBAC() []client.Object {
	return []client.Object{
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "test-run-author"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"tekton.dev"}, Resources: []string{"pipelineruns", "taskruns", "pipelineruns/status", "taskruns/status"}, Verbs: []string{"*"}},
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"create", "get"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "test-run-author"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "test-run-author"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: Alice}},
		},
	}
}

// sampleState reads testing/samples/cluster as objects to create.
func sampleState(t testing.TB) []client.Object {
	t.Helper()
	return readObjects(t, filepath.Join(envtest.Root(), "testing", "samples", "cluster"))
}

func readObjects(t testing.TB, dir string) []client.Object {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := runs.ParseDocuments(data, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range docs {
			u := &unstructured.Unstructured{}
			if err := u.UnmarshalJSON(d.Raw); err != nil {
				t.Fatalf("%s: %v", d.Source, err)
			}
			objs = append(objs, u)
		}
	}
	return objs
}

// applyAll creates objects in order (namespaces first).
func applyAll(t testing.TB, c client.Client, objs ...client.Object) {
	t.Helper()
	ordered := make([]client.Object, 0, len(objs))
	for _, o := range objs {
		if o.GetObjectKind().GroupVersionKind().Kind == "Namespace" {
			ordered = append(ordered, o)
		} else if _, ok := o.(*corev1.Namespace); ok {
			ordered = append(ordered, o)
		}
	}
	for _, o := range objs {
		_, isNS := o.(*corev1.Namespace)
		if o.GetObjectKind().GroupVersionKind().Kind != "Namespace" && !isNS {
			ordered = append(ordered, o)
		}
	}
	for _, o := range ordered {
		if err := c.Create(t.Context(), o); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("creating %T %s/%s: %v", o, o.GetNamespace(), o.GetName(), err)
		}
	}
}

// namespace returns a namespace object with labels.
func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

// serviceAccount returns a service account object.
// repositoryOwners is a ClusterRunPolicy (the built-in checks) by which the
// runs of one namespace own the repositories: the signer signs their claims.
func repositoryOwners(name, namespace string, repos ...string) *v1alpha1.ClusterRunPolicy {
	return &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.ClusterRunPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": namespace}},
		Artifacts:         &v1alpha1.ArtifactsPolicy{Repositories: repos},
	}}
}

func serviceAccount(ns, name string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

// applyPolicy creates or updates a ClusterRunPolicy and waits until the
// webhook reports it in force (Ready=True for its generation).
func applyPolicy(t *testing.T, c client.Client, p *v1alpha1.ClusterRunPolicy) *v1alpha1.ClusterRunPolicy {
	t.Helper()
	ctx := t.Context()
	cur := &v1alpha1.ClusterRunPolicy{}
	err := c.Get(ctx, client.ObjectKeyFromObject(p), cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := c.Create(ctx, p); err != nil {
			t.Fatalf("creating ClusterRunPolicy %s: %v", p.Name, err)
		}
	case err != nil:
		t.Fatal(err)
	default:
		cur.Spec = p.Spec
		if err := c.Update(ctx, cur); err != nil {
			t.Fatalf("updating ClusterRunPolicy %s: %v", p.Name, err)
		}
		p = cur
	}
	return waitPolicy(t, c, p.Name, metav1.ConditionTrue)
}

// waitPolicy waits until a ClusterRunPolicy's Ready condition has status want for its current generation.
func waitPolicy(t *testing.T, c client.Client, name string, want metav1.ConditionStatus) *v1alpha1.ClusterRunPolicy {
	t.Helper()
	return waitReady(t, c, &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}, want)
}

// waitReady waits until a policy's Ready condition has status want for its
// current generation, and returns the policy as it then is.
func waitReady[O policystore.Object](t *testing.T, c client.Client, p O, want metav1.ConditionStatus) O {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		if err := c.Get(t.Context(), client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatal(err)
		}
		cond := meta.FindStatusCondition(p.PolicyStatus().Conditions, policystore.ConditionReady)
		if cond != nil && cond.ObservedGeneration == p.GetGeneration() && cond.Status == want {
			return p
		}
		if cond != nil {
			last = string(cond.Status) + ": " + cond.Message
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%T %s did not become Ready=%s (last: %s)", p, p.GetName(), want, last)
	return p
}

// denied asserts err is an admission denial from the run guard containing every want.
func denied(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("admitted; want a denial containing %q", want)
	}
	msg := err.Error()
	if !strings.Contains(msg, "denied the request") {
		t.Fatalf("error is not an admission denial: %v", err)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("denial does not mention %q:\n%s", w, msg)
		}
	}
}

func waitFor(ctx context.Context, d time.Duration, f func() bool) bool {
	return controlplane.Eventually(ctx, d, 50*time.Millisecond, f)
}

// recordedWarnings collects the warnings the API server returns.
type recordedWarnings struct {
	mu   sync.Mutex
	msgs []string
}

func (r *recordedWarnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, text)
}

func (r *recordedWarnings) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.msgs...)
}

func (r *recordedWarnings) contains(s string) bool {
	for _, m := range r.all() {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// metricsText returns what the webhook's /metrics serves.
func metricsText(t *testing.T, env *envtest.Env) string {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(env.CAData)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	resp, err := c.Get("https://" + env.WebhookAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// admissionLoop creates unsafe TaskRuns from workers goroutines until
// stopped; each must come back as the webhook's denial. stop returns how
// many were decided, how many were not (dropped, failed or admitted) and
// the last such error.
func admissionLoop(t *testing.T, env *envtest.Env, prefix string, workers int) (stop func() (decided, dropped int32, last string)) {
	t.Helper()
	ctx := t.Context()
	alice := env.As(t, Alice)
	var nDecided, nDropped atomic.Int32
	var lastDrop atomic.Value
	lastDrop.Store("")
	halt := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-halt:
					return
				default:
				}
				s := safeStep("build")
				s.SecurityContext.Privileged = ptr.To(true)
				tr := taskRun(ns, "", "tekton-builder", s)
				tr.GenerateName = prefix + "-"
				err := alice.Create(ctx, tr)
				switch {
				case err != nil && strings.Contains(err.Error(), "denied the request") && strings.Contains(err.Error(), "[podSecurity]"):
					nDecided.Add(1)
				case ctx.Err() != nil:
					return
				case err == nil:
					nDropped.Add(1)
					lastDrop.Store("an unsafe run was admitted")
				default:
					nDropped.Add(1)
					lastDrop.Store(err.Error())
				}
			}
		}()
	}
	return func() (int32, int32, string) {
		close(halt)
		wg.Wait()
		return nDecided.Load(), nDropped.Load(), lastDrop.Load().(string)
	}
}
