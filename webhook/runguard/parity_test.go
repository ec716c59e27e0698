package runguard_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tollgate-dev/tollgate/policy/rbac"
	"github.com/tollgate-dev/tollgate/policy/runs"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/webhook"
	"github.com/tollgate-dev/tollgate/webhook/runguard"
)

// TestCheckDecidesAsTheWebhook feeds the same runs, user, groups, policies
// and cluster to the webhook (mutate, apply the patch, validate — as the API
// server does) and to runs.Admit (what `tollgate check` calls), and
// requires the same mutated object and the same decision.
func TestCheckDecidesAsTheWebhook(t *testing.T) {
	ctx := t.Context()
	c := runs.NewStaticCluster(runs.StaticObjects{
		Namespaces:      []corev1.Namespace{{ObjectMeta: metav1.ObjectMeta{Name: "ns", Labels: map[string]string{"team": "a"}}}},
		ServiceAccounts: []corev1.ServiceAccount{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "builder"}}},
		RBAC:            rbac.Objects{ClusterRoles: []rbacv1.ClusterRole{{ObjectMeta: metav1.ObjectMeta{Name: runs.DefaultCeilingClusterRole}}}},
	})
	// Defaults written by the mutating path, and a rule on the request's
	// groups and the namespace's labels: the inputs the two used to differ on.
	p, err := runs.Compile(ctx, &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: v1alpha1.ClusterRunPolicySpec{
		Resources: v1alpha1.ResourcesCheck{DefaultLimits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}},
		Rego: []v1alpha1.RegoModule{{Name: "g.rego", Module: `package acme.g
import rego.v1
deny contains "interns may not run in team a" if {
	"interns" in input.request.groups
	input.namespace.labels.team == "a"
}
`}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	set := runs.NewSet(runs.BuiltinDefault(), p)
	ids := runs.Identities{TektonControllers: []string{"system:serviceaccount:tekton-pipelines:tekton-pipelines-controller"}}
	h, err := runguard.New(runguard.Deps{Policies: func() *runs.Set { return set }, Cluster: c, Namespaces: c, Identities: ids})
	if err != nil {
		t.Fatal(err)
	}
	s, err := webhook.New(webhook.Options{Addr: "127.0.0.1:0", CertFile: "x", KeyFile: "x"}, webhook.Handlers{MutateRuns: h.MutateHandler(), ValidateRuns: h}, nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	noMemory := strings.Replace(step, `,"memory":"1Gi"`, ``, 1)
	privileged := strings.Replace(step, `"runAsNonRoot":true`, `"privileged":true`, 1)
	tr := func(spec string) string {
		return `{"apiVersion":"tekton.dev/v1","kind":"TaskRun","metadata":{"name":"tr"},"spec":` + spec + `}`
	}
	for _, tc := range []struct {
		name, kind, obj string
		groups          []string
	}{
		{"allowed", runs.KindTaskRun, tr(`{"serviceAccountName":"builder","taskSpec":{"steps":[` + step + `]}}`), nil},
		{"defaults written", runs.KindTaskRun, tr(`{"serviceAccountName":"builder","taskSpec":{"steps":[` + noMemory + `]}}`), nil},
		{"denied by groups", runs.KindTaskRun, tr(`{"serviceAccountName":"builder","taskSpec":{"steps":[` + step + `]}}`), []string{"interns"}},
		{"privileged", runs.KindTaskRun, tr(`{"serviceAccountName":"builder","taskSpec":{"steps":[` + privileged + `]}}`), nil},
		{"unknown service account", runs.KindTaskRun, tr(`{"serviceAccountName":"admin","taskSpec":{"steps":[` + step + `]}}`), nil},
		{"reserved annotation", runs.KindTaskRun, strings.Replace(tr(`{"serviceAccountName":"builder","taskSpec":{"steps":[`+step+`]}}`), `"name":"tr"`, `"name":"tr","annotations":{"tollgate.dev/signed":"true"}`, 1), nil},
		{"unpinned remote pipeline", runs.KindPipelineRun, `{"apiVersion":"tekton.dev/v1","kind":"PipelineRun","metadata":{"name":"pr"},"spec":{"pipelineRef":{"resolver":"git","params":[{"name":"revision","value":"main"}]}}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user := authenticationv1.UserInfo{Username: "alice", Groups: tc.groups}
			resource := strings.ToLower(tc.kind) + "s"
			_, m := post(t, s.Handler(), webhook.PathMutateRuns, reviewAs(tc.kind, resource, user, tc.obj))
			if m == nil || !m.Allowed {
				t.Fatalf("mutating webhook refused: %+v", m)
			}
			mutated := []byte(tc.obj)
			if len(m.Patch) > 0 {
				patch, err := jsonpatch.DecodePatch(m.Patch)
				if err != nil {
					t.Fatal(err)
				}
				if mutated, err = patch.Apply(mutated); err != nil {
					t.Fatal(err)
				}
			}
			_, v := post(t, s.Handler(), webhook.PathValidateRuns, reviewAs(tc.kind, resource, user, string(mutated)))
			if v == nil {
				t.Fatal("validating webhook gave no response")
			}

			a, err := runs.Admit(ctx, c, runs.Facts{
				Review:          runs.Review{Kind: tc.kind, Namespace: "ns", User: user.Username, Groups: user.Groups, Object: []byte(tc.obj)},
				NamespaceLabels: map[string]string{"team": "a"},
				Policies:        set.ForNamespace(map[string]string{"team": "a"}),
				Identities:      ids,
			})
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, mutated, a.Mutation.Object) {
				t.Errorf("mutated objects differ:\nwebhook %s\ncheck   %s", mutated, a.Mutation.Object)
			}
			if v.Allowed != a.Decision.Allowed() {
				t.Fatalf("webhook allowed = %v, check allowed = %v (%v; %+v)", v.Allowed, a.Decision.Allowed(), v.Result, a.Decision)
			}
			if !v.Allowed {
				for _, d := range a.Decision.Denials {
					if !strings.Contains(v.Result.Message, d.String()) {
						t.Errorf("check denied %q; the webhook's message does not say it:\n%s", d.String(), v.Result.Message)
					}
				}
				if n := strings.Count(v.Result.Message, "\n") + 1; n < len(a.Decision.Denials) {
					t.Errorf("the webhook reports fewer denials than check (%d)", len(a.Decision.Denials))
				}
			}
		})
	}
}

func reviewAs(kind, resource string, user authenticationv1.UserInfo, obj string) []byte {
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "u1",
			Kind:      metav1.GroupVersionKind{Group: "tekton.dev", Version: "v1", Kind: kind},
			Resource:  metav1.GroupVersionResource{Group: "tekton.dev", Version: "v1", Resource: resource},
			Namespace: "ns",
			Name:      "x",
			Operation: admissionv1.Create,
			UserInfo:  user,
			Object:    runtime.RawExtension{Raw: []byte(obj)},
		},
	}
	b, _ := json.Marshal(r)
	return b
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}
