package runguard_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tollgate-dev/tollgate/policy/rbac"
	"github.com/tollgate-dev/tollgate/policy/rego"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/webhook"
	"github.com/tollgate-dev/tollgate/webhook/runguard"
)

// server returns the webhook's real HTTP stack (AdmissionReview decoding,
// routing, metrics) over the run guard with an offline cluster.
func server(t testing.TB) http.Handler {
	t.Helper()
	c := runs.NewStaticCluster(runs.StaticObjects{
		Namespaces:      []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}},
		ServiceAccounts: []corev1.ServiceAccount{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "builder"}}},
		RBAC:            rbac.Objects{ClusterRoles: []rbacv1.ClusterRole{{ObjectMeta: metav1.ObjectMeta{Name: runs.DefaultCeilingClusterRole}}}},
	})
	set := runs.NewSet(runs.BuiltinDefault())
	h, err := runguard.New(runguard.Deps{Policies: func() *runs.Set { return set }, Cluster: c, Namespaces: c})
	if err != nil {
		t.Fatal(err)
	}
	s, err := webhook.New(webhook.Options{Addr: "127.0.0.1:0", CertFile: "unused", KeyFile: "unused"}, webhook.Handlers{MutateRuns: h.MutateHandler(), ValidateRuns: h}, nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	return s.Handler()
}

func review(kind, resource, sub string, op admissionv1.Operation, obj string) []byte {
	group := "tekton.dev"
	if kind == "Pod" {
		group = ""
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:         "u1",
			Kind:        metav1.GroupVersionKind{Group: group, Version: "v1", Kind: kind},
			Resource:    metav1.GroupVersionResource{Group: group, Version: "v1", Resource: resource},
			SubResource: sub,
			Namespace:   "ns",
			Name:        "x",
			Operation:   op,
			Object:      runtime.RawExtension{Raw: []byte(obj)},
		},
	}
	b, _ := json.Marshal(r)
	return b
}

func post(t testing.TB, h http.Handler, path string, body []byte) (int, *admissionv1.AdmissionResponse) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		return rec.Code, nil
	}
	return rec.Code, out.Response
}

const step = `{"name":"s","image":"i","securityContext":{"runAsNonRoot":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]},"seccompProfile":{"type":"RuntimeDefault"}},"computeResources":{"limits":{"cpu":"1","memory":"1Gi"}}}`

func TestBadInput(t *testing.T) {
	h := server(t)
	bigParams := make([]string, 10000)
	for i := range bigParams {
		bigParams[i] = fmt.Sprintf(`{"name":"p%d","value":"v"}`, i)
	}
	hugeScript := strings.Replace(step, `"image":"i"`, `"image":"i","script":"`+strings.Repeat("x", 1<<20)+`"`, 1)
	tests := []struct {
		name      string
		path      string
		body      []byte
		allowed   bool
		code      int32
		contains  string
		httpError bool
	}{
		{"malformed AdmissionReview", webhook.PathValidateRuns, []byte(`{"request":`), false, 0, "", true},
		{"no request", webhook.PathValidateRuns, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), false, 0, "", true},
		{"unknown kind", webhook.PathValidateRuns, review("CustomRun", "customruns", "", admissionv1.Create, `{}`), false, 400, "unsupported kind", false},
		{"kind does not match resource", webhook.PathValidateRuns, review("PipelineRun", "taskruns", "", admissionv1.Create, `{}`), false, 400, "does not match resource", false},
		{"object kind does not match", webhook.PathValidateRuns, review("PipelineRun", "pipelineruns", "", admissionv1.Create, `{"kind":"TaskRun","spec":{}}`), false, 400, `object kind "TaskRun" is not PipelineRun`, false},
		{"object is not JSON", webhook.PathValidateRuns, review("TaskRun", "taskruns", "", admissionv1.Create, `not json`), false, 0, "", true},
		{"spec is a string", webhook.PathValidateRuns, review("TaskRun", "taskruns", "", admissionv1.Create, `{"spec":"x"}`), false, 400, "decoding TaskRun", false},
		{"no spec", webhook.PathMutateRuns, review("TaskRun", "taskruns", "", admissionv1.Create, `{"metadata":{}}`), false, 400, "object has no spec", false},
		{"no taskRef or taskSpec", webhook.PathValidateRuns, review("TaskRun", "taskruns", "", admissionv1.Create, `{"metadata":{},"spec":{"serviceAccountName":"builder"}}`), false, 400, "neither taskRef nor taskSpec", false},
		{"unknown namespace fails closed", webhook.PathValidateRuns, []byte(strings.NewReplacer(`"namespace":"ns"`, `"namespace":"gone"`).Replace(string(review("TaskRun", "taskruns", "", admissionv1.Create, `{"spec":{"serviceAccountName":"builder","taskSpec":{"steps":[`+step+`]}}}`)))), false, 500, "fail closed", false},
		{"10,000 params are decided", webhook.PathValidateRuns, review("TaskRun", "taskruns", "", admissionv1.Create, `{"spec":{"serviceAccountName":"builder","params":[`+strings.Join(bigParams, ",")+`],"taskSpec":{"steps":[`+step+`]}}}`), false, 403, "no tollgate.dev/spec-digest annotation", false},
		{"a 1 MiB script is decided", webhook.PathMutateRuns, review("TaskRun", "taskruns", "", admissionv1.Create, `{"spec":{"serviceAccountName":"builder","taskSpec":{"steps":[`+hugeScript+`]}}}`), true, 0, "", false},
		{"status update from a user", webhook.PathValidateRuns, review("TaskRun", "taskruns", "status", admissionv1.Update, `{"spec":{}}`), false, 403, "only the Tekton controller", false},
		{"DELETE is not reviewed", webhook.PathValidateRuns, review("TaskRun", "taskruns", "", admissionv1.Delete, `{}`), true, 0, "", false},
		{"pod kind on the wrong resource", webhook.PathValidateRuns, review("Pod", "configmaps", "", admissionv1.Create, `{}`), false, 400, "does not match resource", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, resp := post(t, h, tc.path, []byte(tc.body))
			if tc.httpError {
				if resp != nil && resp.Allowed {
					t.Fatalf("allowed a malformed request")
				}
				return
			}
			if resp == nil {
				t.Fatalf("HTTP %d without an AdmissionReview response", code)
			}
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if !tc.allowed {
				if resp.Result == nil || (tc.code != 0 && resp.Result.Code != tc.code) || !strings.Contains(resp.Result.Message, tc.contains) {
					t.Errorf("result = %+v, want code %d and a message containing %q", resp.Result, tc.code, tc.contains)
				}
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
}

// FuzzHandler: crafted AdmissionReviews never panic the handler and are
// never accidentally allowed when the object cannot be read.
func FuzzHandler(f *testing.F) {
	h := server(f)
	f.Add(webhook.PathValidateRuns, review("TaskRun", "taskruns", "", admissionv1.Create, `{"spec":{"serviceAccountName":"builder","taskSpec":{"steps":[`+step+`]}}}`))
	f.Add(webhook.PathMutateRuns, review("PipelineRun", "pipelineruns", "", admissionv1.Create, `{"spec":{"pipelineSpec":{"tasks":[{"name":"a","taskRef":{"resolver":"git","params":[{"name":"revision","value":"main"}]}}]}}}`))
	f.Add(webhook.PathValidateRuns, review("Pod", "pods", "", admissionv1.Create, `{"metadata":{"labels":{"tekton.dev/taskRun":"x"}},"spec":{"containers":[{"name":"step-a","securityContext":{"privileged":true}}]}}`))
	f.Add(webhook.PathValidateRuns, review("TaskRun", "taskruns", "status", admissionv1.Update, `{}`))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		if path != webhook.PathValidateRuns && path != webhook.PathMutateRuns {
			path = webhook.PathValidateRuns
		}
		_, resp := post(t, h, path, body)
		if resp == nil || !resp.Allowed {
			return
		}
		var r admissionv1.AdmissionReview
		if json.Unmarshal(body, &r) != nil || r.Request == nil {
			t.Fatalf("allowed a request that does not decode")
		}
	})
}

// TestRegoIsPreparedOncePerGeneration proves that serving requests never
// prepares a Rego query: only compiling a policy generation does.
func TestRegoIsPreparedOncePerGeneration(t *testing.T) {
	c := runs.NewStaticCluster(runs.StaticObjects{
		Namespaces:      []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "ns"}}},
		ServiceAccounts: []corev1.ServiceAccount{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "builder"}}},
		RBAC:            rbac.Objects{ClusterRoles: []rbacv1.ClusterRole{{ObjectMeta: metav1.ObjectMeta{Name: runs.DefaultCeilingClusterRole}}}},
	})
	before := rego.Prepared()
	p, err := runs.Compile(t.Context(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: v1alpha1.ClusterRunPolicySpec{
		Rego: []v1alpha1.RegoModule{
			{Name: "a.rego", Module: "package acme.a\nimport rego.v1\ndeny contains \"a step is named x\" if { some s in input.run.spec.taskSpec.steps; s.name == \"x\" }\n"},
			{Name: "b.rego", Module: "package acme.b\nimport rego.v1\nwarn contains \"no params\" if { not input.run.spec.params }\n"},
		},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	compiled := rego.Prepared()
	if compiled == before {
		t.Fatal("compiling prepared nothing: the counter proves nothing")
	}
	set := runs.NewSet(runs.BuiltinDefault(), p)
	h, err := runguard.New(runguard.Deps{Policies: func() *runs.Set { return set }, Cluster: c, Namespaces: c})
	if err != nil {
		t.Fatal(err)
	}
	s, err := webhook.New(webhook.Options{Addr: "127.0.0.1:0", CertFile: "x", KeyFile: "x"}, webhook.Handlers{ValidateRuns: h}, nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	body := review("TaskRun", "taskruns", "", admissionv1.Create, `{"spec":{"serviceAccountName":"builder","taskSpec":{"steps":[`+strings.Replace(step, `"name":"s"`, `"name":"x"`, 1)+`]}}}`)
	for range 100 {
		_, resp := post(t, s.Handler(), webhook.PathValidateRuns, body)
		if resp == nil || resp.Allowed || !strings.Contains(resp.Result.Message, "[acme.a.deny] a step is named x") {
			t.Fatalf("the rule did not deny: %+v", resp)
		}
	}
	if n := rego.Prepared() - compiled; n != 0 {
		t.Fatalf("100 requests prepared %d queries", n)
	}
}
