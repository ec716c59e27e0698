package e2e

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tollgate-dev/tollgate/testing/envtest"
)

// permissionUses is every permission the chart grants the webhook and the
// signer, and what uses it. A rule the chart renders that is not here — an
// unused permission — fails TestChartLeastPrivilege, and so does a rule
// listed here that the chart no longer renders.
var permissionUses = map[string]string{
	// webhook, cluster-wide
	"webhook ClusterRole tekton.dev tasks,pipelines,stepactions get,list,watch":                                                           "run guard informers: referenced Tasks and Pipelines (runguard.CacheCluster)",
	"webhook ClusterRole tekton.dev taskruns,pipelineruns get":                                                                            "pipeline and task exemptions at Pod creation, from owner references (runguard.Handler.podOwner)",
	"webhook ClusterRole  namespaces,serviceaccounts get,list,watch":                                                                      "namespace labels (policy selection, gate label) and service account existence",
	"webhook ClusterRole rbac.authorization.k8s.io roles,clusterroles,rolebindings,clusterrolebindings get,list,watch":                    "the serviceAccount check's RBAC index",
	"webhook ClusterRole  configmaps get":                                                                                                 "Rego modules by configMapRef",
	"webhook ClusterRole tollgate.dev clusterrunpolicies,clusterimagepolicies get,list,watch":                                             "the policy stores",
	"webhook ClusterRole tollgate.dev clusterrunpolicies/status,clusterimagepolicies/status get,update,patch":                             "policy Ready status",
	"webhook ClusterRole  events create,patch":                                                                                            "Warning Events on objects admitted with warnings (webhook.warnEvents)",
	"webhook ClusterRole admissionregistration.k8s.io mutatingwebhookconfigurations,validatingwebhookconfigurations get,patch [tollgate]": "tls.mode self: the CA bundle of its own webhook configurations",
	// webhook, its namespace
	"webhook Role  secrets create": "creating the stamp key Secret and (tls.mode self) the certificate Secret when missing",
	"webhook Role  secrets get,update [tollgate-stamp-key,tollgate-webhook-tls]": "the stamp keys; the self-managed serving certificate",
	"webhook Role  secrets get [tollgate-signing-pub]":                           "image policies trusting the signer's published public key",
	// webhook, webhook.secretNamespaces (full-values: team-a)
	"webhook-secrets ClusterRole  secrets get": "pull secrets and trust material in webhook.secretNamespaces (bound there only)",
	// signer
	"signer ClusterRole tekton.dev taskruns,pipelineruns get,list,watch,patch,update": "the reconcilers: finalizer and annotations",
	"signer ClusterRole  serviceaccounts,secrets get":                                 "the run's image pull secrets for oci storage",
	"signer ClusterRole  namespaces get,list,watch":                                   "repository ownership: the run namespace's labels",
	"signer ClusterRole tollgate.dev clusterrunpolicies get,list,watch":               "repository ownership: spec.artifacts.repositories",
	"signer ClusterRole ,events.k8s.io events create,patch,update":                    "Events on runs",
	"signer Role  configmaps,secrets get,list,watch":                                  "chains-config, signing-secrets, the stamp keys",
	"signer Role  secrets create":                                                     "publishing its public key when the Secret is missing",
	"signer Role  secrets update [tollgate-signing-pub]":                              "publishing its public key",
	"signer Role coordination.k8s.io leases get,list,watch,create,update,patch":       "leader election",
	// audit (tollgate audit --watch): the webhook's reads, the objects it audits, its reports
	"audit ClusterRole tekton.dev tasks,pipelines,stepactions get,list,watch":                                        "run guard informers, as the webhook's",
	"audit ClusterRole tekton.dev taskruns,pipelineruns get,list":                                                    "the runs audited (audit.Scanner lists them); owners of Tekton Pods",
	"audit ClusterRole  namespaces,serviceaccounts get,list,watch":                                                   "gated namespaces, labels, service accounts, as the webhook's",
	"audit ClusterRole rbac.authorization.k8s.io roles,clusterroles,rolebindings,clusterrolebindings get,list,watch": "the serviceAccount check's RBAC index, as the webhook's",
	"audit ClusterRole  configmaps get":                                                                              "Rego modules by configMapRef, as the webhook's",
	"audit ClusterRole tollgate.dev clusterrunpolicies,clusterimagepolicies get,list,watch":                          "the policy stores (read-only: no status written)",
	"audit ClusterRole  pods list,watch":                                                                             "the workloads audited; the images running, watched (a new one is audited at once)",
	"audit ClusterRole apps deployments,statefulsets,daemonsets,replicasets list":                                    "the workloads audited",
	"audit ClusterRole batch jobs,cronjobs list":                                                                     "the workloads audited",
	"audit ClusterRole wgpolicyk8s.io policyreports get,create,update":                                               "each namespace's PolicyReport, rewritten every pass",
	"audit Role  secrets get [tollgate-signing-pub]":                                                                 "image policies trusting the signer's published public key",
}

func ruleKeys(t *testing.T, objs []*unstructured.Unstructured) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, o := range objs {
		if o.GetKind() != "ClusterRole" && o.GetKind() != "Role" {
			continue
		}
		who := strings.TrimPrefix(o.GetName(), "tollgate-")
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, r := range rules {
			m := r.(map[string]any)
			list := func(k string) string {
				var s []string
				if v, ok := m[k].([]any); ok {
					for _, x := range v {
						s = append(s, fmt.Sprint(x))
					}
				}
				return strings.Join(s, ",")
			}
			key := fmt.Sprintf("%s %s %s %s %s", who, o.GetKind(), list("apiGroups"), list("resources"), list("verbs"))
			if names := list("resourceNames"); names != "" {
				key += " [" + names + "]"
			}
			out[key] = true
		}
	}
	return out
}

// TestChartLeastPrivilege: asked of the real API server (SubjectAccessReview)
// after applying the chart, the webhook cannot read the signer's private key
// nor Secrets outside webhook.secretNamespaces, and every permission the
// chart grants is one that a code path uses.
func TestChartLeastPrivilege(t *testing.T) {
	full := filepath.Join(envtest.Root(), "charts", "tollgate", "ci", "full-values.yaml")
	selfValues := render(t, full)

	t.Run("every rule the chart grants is used, and every use is granted", func(t *testing.T) {
		got := ruleKeys(t, selfValues)
		var extra, missing []string
		for k := range got {
			if _, ok := permissionUses[k]; !ok {
				extra = append(extra, k)
			}
		}
		for k := range permissionUses {
			if !got[k] {
				missing = append(missing, k)
			}
		}
		sort.Strings(extra)
		sort.Strings(missing)
		if len(extra) > 0 {
			t.Errorf("rules the chart grants that nothing is documented to use (add the use to permissionUses, or drop the rule):\n  %s", strings.Join(extra, "\n  "))
		}
		if len(missing) > 0 {
			t.Errorf("permissions listed as used that the chart does not grant:\n  %s", strings.Join(missing, "\n  "))
		}
	})

	env := startGuarded(t, namespace(signerNS, nil), namespace("team-b", nil))
	ctx := t.Context()
	for _, o := range selfValues {
		switch o.GetKind() {
		case "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding":
		default:
			continue
		}
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatalf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
		}
	}
	can := func(user, verb, ns, resource, name string) bool {
		t.Helper()
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               user,
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + signerNS, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: resource, Name: name},
		}}
		if err := env.Client.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	webhookSA := "system:serviceaccount:" + signerNS + ":tollgate-webhook"
	signerSA := "system:serviceaccount:" + signerNS + ":tollgate-signer"
	auditSA := "system:serviceaccount:" + signerNS + ":tollgate-audit"
	for _, c := range []struct {
		user, verb, ns, resource, name string
		want                           bool
	}{
		{webhookSA, "get", signerNS, "secrets", "signing-secrets", false},
		{webhookSA, "list", signerNS, "secrets", "", false},
		{webhookSA, "get", "team-b", "secrets", "registry-creds", false},
		{webhookSA, "list", "team-a", "secrets", "", false},
		{webhookSA, "get", "team-a", "secrets", "registry-creds", true},
		{webhookSA, "get", signerNS, "secrets", "tollgate-signing-pub", true},
		{webhookSA, "get", signerNS, "secrets", "tollgate-stamp-key", true},
		{webhookSA, "update", signerNS, "secrets", "tollgate-signing-pub", false},
		{signerSA, "get", signerNS, "secrets", "signing-secrets", true},
		{signerSA, "update", signerNS, "secrets", "tollgate-signing-pub", true},
		{signerSA, "update", signerNS, "secrets", "signing-secrets", false},
		{auditSA, "get", signerNS, "secrets", "signing-secrets", false},
		{auditSA, "get", "team-b", "secrets", "registry-creds", false},
		{auditSA, "get", "team-a", "secrets", "registry-creds", true},
	} {
		if got := can(c.user, c.verb, c.ns, c.resource, c.name); got != c.want {
			t.Errorf("%s may %s %s/%s %q: %v, want %v", c.user, c.verb, c.ns, c.resource, c.name, got, c.want)
		}
	}
}
