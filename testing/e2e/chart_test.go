package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/testing/envtest"
	"github.com/tollgate-dev/tollgate/webhook"
)

const kubeVersion = "1.35.4"

func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := filepath.Join(envtest.Root(), "bin", "helm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("bin/helm is not built: run `make tools`: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = envtest.Root()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// render runs helm template for the values files and decodes the objects.
func render(t *testing.T, values ...string) []*unstructured.Unstructured {
	t.Helper()
	args := []string{"template", "tollgate", "charts/tollgate", "-n", signerNS, "--kube-version", kubeVersion}
	for _, v := range values {
		args = append(args, "-f", v)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	return decodeYAML(t, []byte(out))
}

func ciValues(t *testing.T) []string {
	files, err := filepath.Glob(filepath.Join(envtest.Root(), "charts", "tollgate", "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci values: %v", err)
	}
	return files
}

// TestChart: helm lint and template for every values case, the schema's
// refusals, the rendered manifests applied to the real API server, and
// the rendered webhook configurations, pointed at a running webhook,
// denying an unsafe run.
func TestChart(t *testing.T) {
	t.Run("helm lint and template pass for the defaults and every ci values file", func(t *testing.T) {
		for _, v := range append([]string{""}, ciValues(t)...) {
			args := []string{"lint", "charts/tollgate", "--kube-version", kubeVersion, "--strict"}
			if v != "" {
				args = append(args, "-f", v)
			}
			if out, err := helm(t, args...); err != nil {
				t.Errorf("helm lint %s: %v\n%s", v, err, out)
			}
		}
	})

	t.Run("the schema refuses invalid values with a message naming them", func(t *testing.T) {
		for set, want := range map[string]string{
			"webhook.replicas=0":           "/webhook/replicas",
			"webhook.repicas=2":            "additional properties 'repicas' not allowed",
			"tls.mode=selfsigned":          "/tls/mode",
			"image.digest=sha256:ABC":      "/image/digest",
			"imageGate.gateValues={audit}": "/imageGate/gateValues/0",
		} {
			out, err := helm(t, "template", "tollgate", "charts/tollgate", "--kube-version", kubeVersion, "--set", set)
			if err == nil || !strings.Contains(out, want) {
				t.Errorf("--set %s: want a refusal mentioning %q, got %v\n%s", set, want, err, out)
			}
		}
	})

	env := startGuarded(t, namespace(signerNS, nil))
	ctx := t.Context()
	apply := func(t *testing.T, objs []*unstructured.Unstructured) {
		t.Helper()
		for _, o := range objs {
			if err := env.Client.Patch(ctx, o, client.Apply, client.FieldOwner("helm-test"), client.ForceOwnership); err != nil {
				t.Errorf("applying %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
			}
		}
	}

	// The webhook configurations have the harness's names (the harness
	// registers the Go registration, which is the chart's): they are applied
	// under another name, and removed at once (they point at no Service).
	renamed := func(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
		for _, o := range objs {
			if k := o.GetKind(); k == "MutatingWebhookConfiguration" || k == "ValidatingWebhookConfiguration" {
				o.SetName(o.GetName() + "-applied")
				t.Cleanup(func() { _ = env.Client.Delete(ctx, o) })
			}
		}
		return objs
	}
	t.Run("the rendered manifests apply cleanly", func(t *testing.T) {
		for _, values := range [][]string{nil, {filepath.Join(envtest.Root(), "charts", "tollgate", "ci", "full-values.yaml")}} {
			objs := renamed(render(t, values...))
			apply(t, objs)
			for _, o := range objs {
				if k := o.GetKind(); k == "MutatingWebhookConfiguration" || k == "ValidatingWebhookConfiguration" {
					if err := env.Client.Delete(ctx, o); err != nil {
						t.Errorf("deleting %s %s: %v", k, o.GetName(), err)
					}
				}
			}
		}
	})

	t.Run("the chart renders the webhooks the Go registration makes", func(t *testing.T) {
		var rendered []any
		for _, o := range render(t) {
			var into any
			switch o.GetKind() {
			case "MutatingWebhookConfiguration":
				into = &admissionregistrationv1.MutatingWebhookConfiguration{}
			case "ValidatingWebhookConfiguration":
				into = &admissionregistrationv1.ValidatingWebhookConfiguration{}
			default:
				continue
			}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, into); err != nil {
				t.Fatal(err)
			}
			rendered = append(rendered, into)
		}
		if len(rendered) != 2 {
			t.Fatalf("the chart renders %d webhook configurations, want 2", len(rendered))
		}
		// Everything but where the webhook is reached (a Service in the
		// release's namespace, with the chart's CA) must be the same: names,
		// rules, scopes, selectors, timeouts, failure policy, side effects,
		// reinvocation.
		sameWebhooks(t, rendered[0].(*admissionregistrationv1.MutatingWebhookConfiguration), webhook.Mutating())
		sameWebhooks(t, rendered[1].(*admissionregistrationv1.ValidatingWebhookConfiguration), webhook.Validating())
	})

	t.Run("the chart's webhook configurations, pointed at the webhook, deny an unsafe run", func(t *testing.T) {
		// Take the harness's own registrations away: only the chart's remain.
		for _, o := range []client.Object{
			&admissionregistrationv1.MutatingWebhookConfiguration{}, &admissionregistrationv1.ValidatingWebhookConfiguration{},
		} {
			if err := env.Client.DeleteAllOf(ctx, o, client.MatchingLabels{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, o := range render(t) {
			switch o.GetKind() {
			case "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration":
			default:
				continue
			}
			hooks, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			for i := range hooks {
				h := hooks[i].(map[string]any)
				cc := h["clientConfig"].(map[string]any)
				path := cc["service"].(map[string]any)["path"].(string)
				h["clientConfig"] = map[string]any{"url": "https://" + env.WebhookAddr + path, "caBundle": base64.StdEncoding.EncodeToString(env.CAData)}
			}
			unstructured.SetNestedSlice(o.Object, hooks, "webhooks")
			apply(t, []*unstructured.Unstructured{o})
		}
		var vwcs admissionregistrationv1.ValidatingWebhookConfigurationList
		if err := env.Client.List(ctx, &vwcs); err != nil {
			t.Fatal(err)
		}
		if len(vwcs.Items) != 1 || vwcs.Items[0].Name != "tollgate" {
			t.Fatalf("want only the chart's ValidatingWebhookConfiguration, have %d", len(vwcs.Items))
		}
		s := safeStep("docker-build")
		s.SecurityContext.Privileged = ptr.To(true)
		tr := taskRun(ns, "chart-privileged", "tekton-builder", s)
		err := env.As(t, Alice).Create(ctx, tr)
		denied(t, err, "runs.validate.tollgate.dev", `[podSecurity]`, "privileged")
	})

	t.Run("only cluster admins may change a namespace's gate label", func(t *testing.T) {
		applyAll(t, env.Client, &rbacv1.ClusterRole{
			ObjectMeta: metav1ObjectMeta("namespace-editor"),
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "update", "patch"}}},
		}, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1ObjectMeta("bob-namespace-editor"),
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "namespace-editor"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "bob@example.com"}},
		}, namespace("gated-by-chart", map[string]string{"tollgate.dev/gate": "enforce"}))
		bob := env.As(t, "bob@example.com")
		nsObj := &corev1.Namespace{}
		// The policy's binding takes a moment to be in force.
		var err error
		if !waitFor(ctx, 30*time.Second, func() bool {
			if err := env.Client.Get(ctx, client.ObjectKey{Name: "gated-by-chart"}, nsObj); err != nil {
				return false
			}
			// A change each time: until the policy is in force, bob's updates go through.
			if nsObj.Labels["tollgate.dev/gate"] == "warn" {
				nsObj.Labels["tollgate.dev/gate"] = "enforce"
			} else {
				nsObj.Labels["tollgate.dev/gate"] = "warn"
			}
			err = bob.Update(ctx, nsObj)
			return err != nil && strings.Contains(err.Error(), "only cluster admins may set, change or remove the tollgate.dev/gate label")
		}) {
			t.Fatalf("a non-admin changed the gate label: %v", err)
		}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "gated-by-chart"}, nsObj); err != nil {
			t.Fatal(err)
		}
		nsObj.Labels["team"] = "shop" // other labels stay free
		if err := bob.Update(ctx, nsObj); err != nil {
			t.Fatalf("a non-admin could not change another label: %v", err)
		}
		if nsObj.Labels["tollgate.dev/gate"] == "warn" {
			nsObj.Labels["tollgate.dev/gate"] = "enforce"
		} else {
			nsObj.Labels["tollgate.dev/gate"] = "warn"
		}
		if err := env.Client.Update(ctx, nsObj); err != nil {
			t.Fatalf("a cluster admin could not change the gate label: %v", err)
		}
	})
}

func metav1ObjectMeta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

// sameWebhooks compares a rendered webhook configuration with the Go
// registration's: the same name and webhooks, each reaching the same path.
func sameWebhooks[C *admissionregistrationv1.MutatingWebhookConfiguration | *admissionregistrationv1.ValidatingWebhookConfiguration](t *testing.T, chart, registered C) {
	t.Helper()
	type hooks struct {
		name string
		list []map[string]any
	}
	flatten := func(c any) hooks {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(c)
		if err != nil {
			t.Fatal(err)
		}
		h := hooks{name: u["metadata"].(map[string]any)["name"].(string)}
		list, _ := u["webhooks"].([]any)
		for _, w := range list {
			m := w.(map[string]any)
			svc, _ := m["clientConfig"].(map[string]any)["service"].(map[string]any)
			m["path"] = strings.TrimPrefix(fmt.Sprint(svc["path"]), "/")
			delete(m, "clientConfig")
			h.list = append(h.list, m)
		}
		return h
	}
	c, r := flatten(chart), flatten(registered)
	if c.name != r.name {
		t.Errorf("the chart's configuration is %q, the registration's %q", c.name, r.name)
	}
	if !equality.Semantic.DeepEqual(c.list, r.list) {
		cj, _ := json.MarshalIndent(c.list, "", "  ")
		rj, _ := json.MarshalIndent(r.list, "", "  ")
		t.Errorf("%s: the chart's webhooks differ from webhook/registration.go:\nchart:\n%s\nregistration:\n%s", c.name, cj, rj)
	}
}

// TestChartKeylessToken: with keyless signing configured, the signer gets
// its own service-account token, audience sigstore, projected where the
// filesystem provider reads it; without, no such token is mounted.
func TestChartKeylessToken(t *testing.T) {
	projected := func(objs []*unstructured.Unstructured) (audience, mount string) {
		for _, o := range objs {
			if o.GetKind() != "Deployment" || !strings.HasSuffix(o.GetName(), "-signer") {
				continue
			}
			vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
			for _, v := range vols {
				srcs, _, _ := unstructured.NestedSlice(v.(map[string]any), "projected", "sources")
				for _, s := range srcs {
					if aud, ok, _ := unstructured.NestedString(s.(map[string]any), "serviceAccountToken", "audience"); ok {
						audience = aud
					}
				}
			}
			ctrs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range ctrs {
				mounts, _, _ := unstructured.NestedSlice(c.(map[string]any), "volumeMounts")
				for _, m := range mounts {
					if m.(map[string]any)["name"] == "oidc-token" {
						mount, _ = m.(map[string]any)["mountPath"].(string)
					}
				}
			}
		}
		return audience, mount
	}
	if aud, mount := projected(render(t, filepath.Join(envtest.Root(), "charts", "tollgate", "ci", "keyless-values.yaml"))); aud != "sigstore" || mount != "/var/run/sigstore/cosign" {
		t.Errorf("keyless: token audience %q mounted at %q, want sigstore at /var/run/sigstore/cosign", aud, mount)
	}
	if aud, mount := projected(render(t)); aud != "" || mount != "" {
		t.Errorf("without keyless a token is projected (audience %q at %q)", aud, mount)
	}
}

// TestChartSPIFFESocket: with keyless provider spiffe (the article's
// production chains-config), the SPIRE agent's socket directory is mounted
// into the signer (SPIFFE CSI driver or the node's directory) and
// SPIFFE_ENDPOINT_SOCKET names the socket in it; with the filesystem
// provider nothing of SPIFFE is there.
func TestChartSPIFFESocket(t *testing.T) {
	type wiring struct{ env, mount, csiDriver, hostPath string }
	wired := func(objs []*unstructured.Unstructured) (w wiring) {
		for _, o := range objs {
			if o.GetKind() != "Deployment" || !strings.HasSuffix(o.GetName(), "-signer") {
				continue
			}
			vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
			for _, v := range vols {
				vm := v.(map[string]any)
				if vm["name"] != "spiffe-workload-api" {
					continue
				}
				w.csiDriver, _, _ = unstructured.NestedString(vm, "csi", "driver")
				w.hostPath, _, _ = unstructured.NestedString(vm, "hostPath", "path")
			}
			ctrs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range ctrs {
				cm := c.(map[string]any)
				envs, _, _ := unstructured.NestedSlice(cm, "env")
				for _, e := range envs {
					if e.(map[string]any)["name"] == "SPIFFE_ENDPOINT_SOCKET" {
						w.env, _ = e.(map[string]any)["value"].(string)
					}
				}
				mounts, _, _ := unstructured.NestedSlice(cm, "volumeMounts")
				for _, m := range mounts {
					if m.(map[string]any)["name"] == "spiffe-workload-api" {
						w.mount, _ = m.(map[string]any)["mountPath"].(string)
					}
				}
			}
		}
		return w
	}
	ci := filepath.Join(envtest.Root(), "charts", "tollgate", "ci")
	csi := filepath.Join(t.TempDir(), "csi-values.yaml")
	if err := os.WriteFile(csi, []byte("signer:\n  spiffe:\n    volume: csi\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		values []string
		want   wiring
	}{
		{"spiffe, the node's directory", []string{filepath.Join(ci, "spiffe-values.yaml")},
			wiring{env: "unix:///spiffe-workload-api/spire-agent.sock", mount: "/spiffe-workload-api", hostPath: "/run/spire/agent-sockets"}},
		{"spiffe, the CSI driver", []string{filepath.Join(ci, "spiffe-values.yaml"), csi},
			wiring{env: "unix:///spiffe-workload-api/spire-agent.sock", mount: "/spiffe-workload-api", csiDriver: "csi.spiffe.io"}},
		{"filesystem provider", []string{filepath.Join(ci, "keyless-values.yaml")}, wiring{}},
		{"no keyless", nil, wiring{}},
	} {
		if got := wired(render(t, c.values...)); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
