package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/webhook"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tollgate-dev/tollgate/signer"
	"k8s.io/client-go/util/retry"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tollgate-dev/tollgate/internal/controlplane"
	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/testing/proc"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/webhook/audit"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
)

// TestAudit: a namespace labelled tollgate.dev/gate=audit, with a signed
// and an unsigned Deployment and a run admitted while its rule warned.
// Admission denies nothing there; `tollgate audit` reports exactly what
// enforcing would deny, with admission's own messages, and a fix (signing
// the image) turns its row to pass.
func TestAudit(t *testing.T) {
	reg := registry.Start(t)
	key := signing.NewKey(t)
	trialLabels := map[string]string{imagegate.LabelGate: imagegate.GateAudit, "tollgate.dev/test": "audit"}
	env := startGuarded(t,
		namespace(signerNS, nil),
		namespace("keys", nil),
		namespace("trial", trialLabels),
		namespace("enforced", map[string]string{imagegate.LabelGate: imagegate.GateEnforce}),
		serviceAccount("trial", "tekton-builder"),
		// In a namespace of webhook.secretNamespaces: the chart lets the
		// webhook and the audit read Secrets there, and nowhere else.
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "keys", Name: "release-key"}, Data: map[string][]byte{"cosign.pub": key.PublicPEM}},
	)
	admin := env.Client
	ctx := t.Context()
	applyImagePolicy(t, admin, imagePolicy("release", reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
		s.Authorities[0].Key.SecretRef.Namespace = "keys"
	}), metav1.ConditionTrue)
	warnLimits := func(mode v1alpha1.Mode) *v1alpha1.ClusterRunPolicy {
		return &v1alpha1.ClusterRunPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "trial-limits"},
			Spec: v1alpha1.ClusterRunPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tollgate.dev/test": "audit"}},
				Resources:         v1alpha1.ResourcesCheck{Mode: mode},
			},
		}
	}
	applyPolicy(t, admin, warnLimits(v1alpha1.Warn))

	signedImg := reg.PushRandom(t, "trial/signed", "v1")
	key.Sign(t, signedImg, signing.Options{})
	key.Attest(t, signedImg, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/builders/test"), signing.Options{})
	unsignedImg := reg.PushRandom(t, "trial/unsigned", "v1")
	tagOf := func(img name.Digest) string { return img.Context().Tag("v1").String() }
	deployment := func(ns, name string, img name.Digest) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}, Template: workloadTemplate(tagOf(img))}}
	}
	// Admission in an audited namespace: nothing denied, nothing pinned.
	for _, d := range []*appsv1.Deployment{deployment("trial", "signed", signedImg), deployment("trial", "unsigned", unsignedImg)} {
		if err := admin.Create(ctx, d); err != nil {
			t.Fatalf("admission denied %s in an audited namespace: %v", d.Name, err)
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; strings.Contains(img, "@") {
			t.Errorf("%s was pinned (%s) in an audited namespace", d.Name, img)
		}
	}
	noLimits := safeStep("test")
	noLimits.ComputeResources = corev1.ResourceRequirements{}
	warned := taskRun("trial", "no-limits", "tekton-builder", noLimits)
	if err := admin.Create(ctx, warned); err != nil {
		t.Fatalf("the run was denied while its rule warns: %v", err)
	}
	// A live PipelineRun admitted the same way (Tekton is not running here:
	// it stays unfinished, as a run in progress).
	if err := admin.Create(ctx, pipelineRun("trial", "nightly", "tekton-builder", map[string][]pipelinev1.Step{"test": {noLimits}}, "test")); err != nil {
		t.Fatalf("the PipelineRun was denied while its rule warns: %v", err)
	}
	// Under GitOps nobody reads the warnings handed to the client: they
	// are also an Event on the object.
	var evs string
	if !waitFor(ctx, 20*time.Second, func() bool {
		evs = strings.Join(eventReasons(t, admin, warned), "\n")
		return strings.Contains(evs, webhook.ReasonAdmittedWithWarnings) && strings.Contains(evs, "[resources]")
	}) {
		t.Errorf("no %s Event naming the warning on the run: %q", webhook.ReasonAdmittedWithWarnings, evs)
	}
	// What admission says of the unsigned Deployment where it enforces.
	enforcedErr := admin.Create(ctx, deployment("enforced", "unsigned", unsignedImg))
	if enforcedErr == nil {
		t.Fatal("the unsigned Deployment was admitted in an enforced namespace")
	}

	bin := tollgateBinary(t)
	kubeconfig := writeKubeconfig(t, env, filepath.Join(t.TempDir(), "kubeconfig"), "")
	run := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, nil, bin, append([]string{"audit", "--kubeconfig", kubeconfig}, args...)...)
	}
	auditJSON := func(t *testing.T) (int, map[string][]audit.Result) {
		t.Helper()
		code, out, stderr := run(t, "-n", "trial", "-o", "json")
		var rows []audit.Result
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("tollgate audit -o json: %v\n%s\n%s", err, out, stderr)
		}
		byObject := map[string][]audit.Result{}
		for _, r := range rows {
			k := strings.ToLower(r.Object.Kind) + "/" + r.Object.Name
			byObject[k] = append(byObject[k], r)
		}
		return code, byObject
	}
	results := func(rows []audit.Result) string {
		var s []string
		for _, r := range rows {
			s = append(s, r.Result+":"+r.Rule)
		}
		return strings.Join(s, ",")
	}

	t.Run("exactly the failing objects fail, with admission's messages", func(t *testing.T) {
		code, rows := auditJSON(t)
		if code != 1 {
			t.Errorf("exit %d, want 1 (something fails)", code)
		}
		if got := results(rows["deployment/unsigned"]); got != "fail:signature,fail:slsa" {
			t.Errorf("deployment/unsigned: %s", got)
		}
		for _, r := range rows["deployment/unsigned"] {
			if !strings.Contains(enforcedErr.Error(), r.Message) {
				t.Errorf("the row's message is not admission's:\nrow:       %s\nadmission: %v", r.Message, enforcedErr)
			}
			if !strings.Contains(r.Message, "fix:") {
				t.Errorf("no fix in %q", r.Message)
			}
		}
		if got := results(rows["deployment/signed"]); got != "pass:image" {
			t.Errorf("deployment/signed: %s", got)
		}
		if got := results(rows["taskrun/no-limits"]); got != "warn:resources" {
			t.Errorf("taskrun/no-limits: %s", got)
		}
		if got := results(rows["pipelinerun/nightly"]); got != "warn:resources" {
			t.Errorf("pipelinerun/nightly: %s", got)
		}
		if len(rows) != 4 {
			t.Errorf("rows for %d objects, want 4 (a Deployment's ReplicaSets and Pods are audited through it): %v", len(rows), rows)
		}
	})

	t.Run("enforcing the run's rule turns its row to fail", func(t *testing.T) {
		applyPolicy(t, admin, warnLimits(v1alpha1.Enforce))
		_, rows := auditJSON(t)
		for _, k := range []string{"taskrun/no-limits", "pipelinerun/nightly"} {
			r := rows[k]
			if results(r) != "fail:resources" || !strings.Contains(r[0].Message, "no cpu or memory limit") || !strings.Contains(r[0].Message, "fix:") {
				t.Errorf("%s: %+v", k, r)
			}
		}
	})

	// The same namespace as manifests, as kubectl get -o json dumps them:
	// the offline audit reads no cluster and gives the same rows.
	t.Run("tollgate audit -f gives the same rows offline", func(t *testing.T) {
		rowsOf := func(t *testing.T, args ...string) []audit.Result {
			t.Helper()
			code, out, stderr := runCLI(t, nil, bin, append([]string{"audit", "-n", "trial", "-o", "json"}, args...)...)
			var rows []audit.Result
			if err := json.Unmarshal([]byte(out), &rows); err != nil || code != 1 {
				t.Fatalf("tollgate audit %v: exit %d: %v\n%s\n%s", args, code, err, out, stderr)
			}
			sort.SliceStable(rows, func(i, j int) bool {
				a, b := rows[i], rows[j]
				return a.Object.Kind+a.Object.Name+a.Rule+a.Message < b.Object.Kind+b.Object.Name+b.Rule+b.Message
			})
			return rows
		}
		dir := t.TempDir()
		for _, k := range []struct{ group, version, kind, namespace string }{
			{"", "v1", "Namespace", ""},
			{"", "v1", "ServiceAccount", ""},
			{"", "v1", "Secret", "keys"},
			{"rbac.authorization.k8s.io", "v1", "ClusterRole", ""},
			{"rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", ""},
			{"rbac.authorization.k8s.io", "v1", "Role", ""},
			{"rbac.authorization.k8s.io", "v1", "RoleBinding", ""},
			{"tollgate.dev", "v1alpha1", "ClusterImagePolicy", ""},
			{"tollgate.dev", "v1alpha1", "ClusterRunPolicy", ""},
			{"apps", "v1", "Deployment", "trial"},
			{"", "v1", "Pod", "trial"},
			{"tekton.dev", "v1", "PipelineRun", "trial"},
			{"tekton.dev", "v1", "TaskRun", "trial"},
		} {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(schema.GroupVersionKind{Group: k.group, Version: k.version, Kind: k.kind + "List"})
			if err := admin.List(ctx, l, client.InNamespace(k.namespace)); err != nil {
				t.Fatal(err)
			}
			for i := range l.Items {
				l.Items[i].SetGroupVersionKind(schema.GroupVersionKind{Group: k.group, Version: k.version, Kind: k.kind})
			}
			l.SetAPIVersion("v1")
			l.SetKind("List")
			raw, err := l.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, k.kind+".json"), raw, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		online := rowsOf(t, "--kubeconfig", kubeconfig)
		offline := rowsOf(t, "-f", dir)
		if len(online) < 4 || !reflect.DeepEqual(online, offline) {
			t.Errorf("offline rows are not the cluster's:\nonline:  %+v\noffline: %+v", online, offline)
		}
	})

	// The background audit: tollgate audit --watch, as the chart runs it —
	// as the chart's audit service account, with only the chart's RBAC.
	values := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(values, []byte("webhook:\n  secretNamespaces: [keys]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, o := range render(t, values) {
		switch o.GetKind() {
		case "ServiceAccount", "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding":
			if err := admin.Create(ctx, o); err != nil {
				t.Fatalf("applying the chart's %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	auditKubeconfig := writeKubeconfig(t, env, filepath.Join(t.TempDir(), "kubeconfig"), "system:serviceaccount:"+signerNS+":tollgate-audit")
	probe := fmt.Sprintf("127.0.0.1:%d", proc.FreePort(t))
	watcher := proc.Start(t, "tollgate audit --watch", bin, nil, "audit", "--watch", "--kubeconfig", auditKubeconfig, "--resync", "30s", "--probe-address", probe)
	report := func(t *testing.T) map[string]string {
		t.Helper()
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(audit.PolicyReportGVK)
		if err := admin.Get(ctx, client.ObjectKey{Namespace: "trial", Name: audit.ReportName}, u); err != nil {
			return nil
		}
		out := map[string]string{}
		items, _, _ := unstructured.NestedSlice(u.Object, "results")
		for _, it := range items {
			m := it.(map[string]any)
			res := m["resources"].([]any)[0].(map[string]any)
			k := strings.ToLower(res["kind"].(string)) + "/" + res["name"].(string)
			out[k] = strings.Trim(out[k]+","+m["result"].(string)+":"+m["rule"].(string), ",")
		}
		return out
	}

	t.Run("without the report CRDs the watch logs and exports, and readiness says why", func(t *testing.T) {
		watcher.WaitFor(t, "serving", proc.DialOK(probe))
		var body string
		if !waitFor(ctx, 30*time.Second, func() bool {
			resp, err := http.Get("http://" + probe + "/readyz")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, "CRD")
		}) {
			t.Fatalf("readyz does not say the CRD is missing: %q", body)
		}
		metrics := ""
		if !waitFor(ctx, 10*time.Second, func() bool {
			resp, err := http.Get("http://" + probe + "/metrics")
			if err != nil {
				return false
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(b)
			return strings.Contains(metrics, `tollgate_audit_results{namespace="trial",policy="release",result="fail",rule="signature"} 1`)
		}) {
			t.Fatalf("no tollgate_audit_results for the unsigned Deployment:\n%s", metrics)
		}
	})

	t.Run("with them, the namespace's PolicyReport names exactly the failing objects", func(t *testing.T) {
		crds, err := controlplane.ReportCRDs(envtest.Root())
		if err != nil {
			t.Fatal(err)
		}
		scheme := runtime.NewScheme()
		if err := apiextensionsv1.AddToScheme(scheme); err != nil {
			t.Fatal(err)
		}
		crdClient, err := client.New(env.Config, client.Options{Scheme: scheme})
		if err != nil {
			t.Fatal(err)
		}
		for _, crd := range crds {
			if err := crdClient.Create(ctx, crd); err != nil {
				t.Fatalf("creating %s: %v", crd.Name, err)
			}
		}
		// A policy change is audited at once, not at the next resync (30 s
		// after the first pass, which ran a moment ago).
		changed := time.Now()
		applyPolicy(t, admin, warnLimits(v1alpha1.Warn))
		var got map[string]string
		if !waitFor(ctx, 60*time.Second, func() bool {
			got = report(t)
			return got["deployment/unsigned"] == "fail:signature,fail:slsa" && got["taskrun/no-limits"] == "warn:resources" && got["pipelinerun/nightly"] == "warn:resources"
		}) {
			t.Fatalf("report: %v\nwatch output:\n%s", got, watcher.Output())
		}
		if d := time.Since(changed); d > 15*time.Second {
			t.Errorf("the policy change was audited after %s: not at once", d.Round(time.Second))
		}
		if got["deployment/signed"] != "pass:image" || len(got) != 4 {
			t.Errorf("report: %v", got)
		}
		if err := proc.HTTPOK("http://" + probe + "/readyz")(); err != nil {
			t.Errorf("not ready with the CRDs installed: %v", err)
		}
	})

	t.Run("a new image running is audited at once, not at the next resync", func(t *testing.T) {
		fresh := reg.PushRandom(t, "trial/fresh", "v1")
		pod := podOf("trial", "fresh", tagOf(fresh))
		created := time.Now()
		if err := admin.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		defer admin.Delete(ctx, pod)
		var got map[string]string
		if !waitFor(ctx, 20*time.Second, func() bool {
			got = report(t)
			return got["pod/fresh"] == "fail:signature,fail:slsa"
		}) {
			t.Fatalf("the new image is not in the report: %v\nwatch output:\n%s", got, watcher.Output())
		}
		if d := time.Since(created); d > 15*time.Second || !strings.Contains(watcher.Output(), `"a new image runs; auditing its namespace now"`) {
			t.Errorf("the new image was audited after %s, not at once:\n%s", d.Round(time.Second), watcher.Output())
		}
	})

	t.Run("signing the image turns its rows to pass, in the report within a resync", func(t *testing.T) {
		key.Sign(t, unsignedImg, signing.Options{})
		key.Attest(t, unsignedImg, slsa.PredicateV1, signing.SLSAv1("https://tollgate.dev/builders/test"), signing.Options{})
		code, rows := auditJSON(t)
		if got := results(rows["deployment/unsigned"]); got != "pass:image" {
			t.Errorf("deployment/unsigned after signing: %s", got)
		}
		if code != 0 {
			t.Errorf("exit %d with nothing failing", code)
		}
		// The next pass (--resync 30s) verifies again: the failure it
		// cached is older than the negative cache's 15 s.
		var got map[string]string
		if !waitFor(ctx, 45*time.Second, func() bool {
			got = report(t)
			return got["deployment/unsigned"] == "pass:image" && got["taskrun/no-limits"] == "warn:resources"
		}) {
			t.Errorf("the report did not turn: %v", got)
		}
	})

	t.Run("the table, and an unlabelled namespace says how to audit it", func(t *testing.T) {
		code, out, stderr := run(t, "-n", "trial", "-n", "default")
		if code != 0 || !strings.Contains(out, "NAMESPACE") || !strings.Contains(out, "deployment/unsigned") {
			t.Errorf("exit %d:\n%s", code, out)
		}
		if !strings.Contains(stderr, "namespace default is not labelled tollgate.dev/gate") || !strings.Contains(stderr, "tollgate.dev/gate=audit") {
			t.Errorf("stderr does not say how to audit an unlabelled namespace:\n%s", stderr)
		}
	})

	t.Run("a registry that does not answer is never a pass", func(t *testing.T) {
		// A workload pinned by digest (as the gate pins them), in its own
		// audited namespace.
		applyAll(t, admin, namespace("pinned", map[string]string{imagegate.LabelGate: imagegate.GateAudit}))
		if err := admin.Create(ctx, podOf("pinned", "web", signedImg.String())); err != nil {
			t.Fatal(err)
		}
		reg.Intercept(func(w http.ResponseWriter, _ *http.Request) bool {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return true
		})
		defer reg.Intercept(func(http.ResponseWriter, *http.Request) bool { return false })
		code, out, stderr := run(t, "-n", "trial", "-n", "pinned", "-o", "json")
		var rows []audit.Result
		if err := json.Unmarshal([]byte(out), &rows); err != nil {
			t.Fatalf("%v\n%s\n%s", err, out, stderr)
		}
		workloads, pods := 0, 0
		for _, r := range rows {
			if r.Object.Kind != "Deployment" && r.Object.Kind != "Pod" {
				continue
			}
			workloads++
			if r.Object.Kind == "Pod" {
				pods++
			}
			if r.Result == audit.Pass || !strings.Contains(r.Message, "503") {
				t.Errorf("%s/%s with the registry down: %s %s: %s", r.Object.Kind, r.Object.Name, r.Result, r.Rule, r.Message)
			}
			// A registry that does not answer is a fault, whether it was
			// asked to resolve a tag or to serve a digest's signatures: an
			// error row (a 500 at admission), never a fail, never a pass.
			if r.Result != audit.Error {
				t.Errorf("%s/%s with the registry down: %s, want %s", r.Object.Kind, r.Object.Name, r.Result, audit.Error)
			}
		}
		if workloads < 3 || pods != 1 {
			t.Errorf("rows for %d workloads (%d Pods), want the two Deployments and the Pod", workloads, pods)
		}
		if code != 1 {
			t.Errorf("exit %d with the registry down, want 1", code)
		}
	})

	// Every metric the chart's Grafana dashboard queries is one the three
	// processes expose: the webhook (this test's), the audit (the watch
	// above) and the signer (started here, signing the run).
	t.Run("the dashboard queries only metrics the processes expose", func(t *testing.T) {
		dir := t.TempDir()
		for _, o := range signerFixtures(t, dir, map[string]string{"artifacts.taskrun.format": "slsa/v2alpha4", "artifacts.taskrun.storage": "tekton"}) {
			if _, isNS := o.(*corev1.Namespace); !isNS {
				applyAll(t, admin, o)
			}
		}
		signerMetrics := fmt.Sprintf("127.0.0.1:%d", proc.FreePort(t))
		startSignerProcess(t, env, bin, "--metrics-address", signerMetrics)
		tekton := env.As(t, envtest.TektonController, "system:serviceaccounts")
		tr := &pipelinev1.TaskRun{}
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := admin.Get(ctx, client.ObjectKey{Namespace: "trial", Name: "no-limits"}, tr); err != nil {
				return err
			}
			return envtest.CompleteTaskRun(ctx, tekton, tr, true)
		}); err != nil {
			t.Fatal(err)
		}
		waitAnnotation(t, admin, tr, signer.AnnotationSigned)
		scrape := func(url string) string {
			resp, err := http.Get(url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		exposed := metricsText(t, env) + scrape("http://"+probe+"/metrics") + scrape("http://"+signerMetrics+"/metrics")

		raw, err := os.ReadFile(filepath.Join(envtest.Root(), "charts", "tollgate", "files", "dashboards", "tollgate.json"))
		if err != nil {
			t.Fatal(err)
		}
		var dash struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(raw, &dash); err != nil {
			t.Fatalf("the dashboard is not JSON: %v", err)
		}
		metric := regexp.MustCompile(`tollgate_[a-z_]+`)
		queried := 0
		for _, p := range dash.Panels {
			if len(p.Targets) == 0 {
				t.Errorf("panel %q queries nothing", p.Title)
			}
			for _, tg := range p.Targets {
				names := metric.FindAllString(tg.Expr, -1)
				if len(names) == 0 {
					t.Errorf("panel %q: %q names no Tollgate metric", p.Title, tg.Expr)
				}
				for _, n := range names {
					queried++
					family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
					if !strings.Contains(exposed, "\n# TYPE "+family+" ") {
						t.Errorf("panel %q queries %s, which no process exposes", p.Title, n)
					}
				}
			}
		}
		if queried < 7 {
			t.Errorf("the dashboard queries %d metrics", queried)
		}
	})
}
