package e2e

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// serveDefaulter stands in for Tekton's own defaulting webhook: a second
// mutating webhook, called after Tollgate's, that changes the spec of every
// run (it sets spec.timeout when absent). It registers itself with the API
// server and returns nothing; it stops with the test.
func serveDefaulter(t *testing.T, env *envtest.Env) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(env.CertDir, "tls.crt"), filepath.Join(env.CertDir, "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		var obj struct {
			Spec map[string]any `json:"spec"`
		}
		_ = json.Unmarshal(review.Request.Object.Raw, &obj)
		resp := &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		if _, ok := obj.Spec["timeout"]; !ok {
			pt := admissionv1.PatchTypeJSONPatch
			resp.PatchType = &pt
			resp.Patch = []byte(`[{"op":"add","path":"/spec/timeout","value":"1h0m0s"}]`)
		}
		review.Response, review.Request = resp, nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	url := "https://" + ln.Addr().(*net.TCPAddr).String() + "/default"
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "zz-tekton-defaulting"}, // called after tollgate
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "defaulting.tekton.test",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: env.CAData},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"tekton.dev"}, APIVersions: []string{"v1"}, Resources: []string{"taskruns"}},
			}},
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"tollgate.dev/test": "defaulting"}},
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		}},
	}
	if err := env.Client.Create(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
}

// The stamp must cover what a later mutating webhook adds: the API server
// reinvokes Tollgate's mutating webhook (reinvocationPolicy: IfNeeded) and the
// validating webhook then finds the stamp equal to the final spec.
func testReinvocation(t *testing.T, env *envtest.Env, alice client.Client) {
	applyAll(t, env.Client, namespace("defaulting-ns", map[string]string{"tollgate.dev/test": "defaulting"}), serviceAccount("defaulting-ns", "tekton-builder"))
	serveDefaulter(t, env)
	tr := taskRun("defaulting-ns", "defaulted-later", "tekton-builder", safeStep("compile"))
	var err error
	// The API server picks up a new webhook configuration within a second or so.
	waitFor(t.Context(), 10*time.Second, func() bool {
		err = alice.Create(t.Context(), tr.DeepCopy())
		if err != nil {
			return false
		}
		got := &pipelinev1.TaskRun{}
		if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(tr), got); err != nil {
			return false
		}
		if got.Spec.Timeout != nil {
			return true
		}
		// Created before the defaulter was seen: try again under a new name.
		tr.Name += "x"
		return false
	})
	if err != nil {
		t.Fatalf("a run changed by a later mutating webhook was denied: %v", err)
	}
	got := &pipelinev1.TaskRun{}
	if err := env.Client.Get(t.Context(), client.ObjectKeyFromObject(tr), got); err != nil {
		t.Fatal(err)
	}
	if got.Spec.Timeout == nil {
		t.Fatal("the defaulting webhook never ran")
	}
	assertStamped(t, env.Client, got)
}
