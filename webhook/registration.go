package webhook

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The webhook configurations `tollgate dev` and the test harness register
// (the Helm chart renders the same rules). The client configuration names
// the service tollgate-system/tollgate-webhook with a path without a
// leading slash: envtest (and `tollgate dev`) rewrite it into the URL of a
// local webhook.
var (
	runResources = []string{"pipelineruns", "taskruns"}
	runStatus    = []string{"pipelineruns/status", "taskruns/status"}
	excludeNS    = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "tollgate-system"},
	}}}
)

func svc(path string) admissionregistrationv1.WebhookClientConfig {
	return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
		Namespace: "tollgate-system", Name: "tollgate-webhook", Path: ptr.To(path),
	}}
}

// MutatingRuns is the run guard's mutating webhook: it stamps the spec
// digest, and is reinvoked after other mutating webhooks so the stamp covers
// their changes.
func MutatingRuns() *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "tollgate-runs"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "runs.mutate.tollgate.dev",
			ClientConfig: svc("mutate-runs"),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{"tekton.dev"}, APIVersions: []string{"v1"}, Resources: runResources, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
			}},
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       excludeNS,
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		}},
	}
}

// ValidatingRuns is the run guard's validating webhook for runs (CREATE,
// UPDATE, status) and for Pods Tekton creates.
func ValidatingRuns() *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "tollgate-runs"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{
				Name:         "runs.validate.tollgate.dev",
				ClientConfig: svc("validate-runs"),
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"tekton.dev"}, APIVersions: []string{"v1"}, Resources: append(append([]string{}, runResources...), runStatus...), Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
				}},
				MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
				NamespaceSelector:       excludeNS,
				FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				TimeoutSeconds:          ptr.To[int32](10),
				AdmissionReviewVersions: []string{"v1"},
			},
			{
				Name:         "pods.validate.tollgate.dev",
				ClientConfig: svc("validate-runs"),
				Rules: []admissionregistrationv1.RuleWithOperations{{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: ptr.To(admissionregistrationv1.NamespacedScope)},
				}},
				MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
				NamespaceSelector:       excludeNS,
				ObjectSelector:          &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tekton.dev/taskRun", Operator: metav1.LabelSelectorOpExists}}},
				FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
				SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
				TimeoutSeconds:          ptr.To[int32](10),
				AdmissionReviewVersions: []string{"v1"},
			},
		},
	}
}

// gatedNS selects the namespaces the image gate reviews.
var gatedNS = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
	{Key: "tollgate.dev/gate", Operator: metav1.LabelSelectorOpIn, Values: []string{"enforce", "warn"}},
	{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "tollgate-system"}},
}}

func workloadRules() []admissionregistrationv1.RuleWithOperations {
	cu := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	ns := ptr.To(admissionregistrationv1.NamespacedScope)
	return []admissionregistrationv1.RuleWithOperations{
		{Operations: cu, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}, Scope: ns}},
		{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Update}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/ephemeralcontainers"}, Scope: ns}},
		{Operations: cu, Rule: admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments", "replicasets", "statefulsets", "daemonsets"}, Scope: ns}},
		{Operations: cu, Rule: admissionregistrationv1.Rule{APIGroups: []string{"batch"}, APIVersions: []string{"v1"}, Resources: []string{"jobs", "cronjobs"}, Scope: ns}},
	}
}

// MutatingWorkloads is the image gate's mutating webhook: it pins verified
// tags to digests, reinvoked after other mutating webhooks (an injected
// sidecar is pinned too).
func MutatingWorkloads() *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "tollgate-workloads"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    "workloads.mutate.tollgate.dev",
			ClientConfig:            svc("mutate-workloads"),
			Rules:                   workloadRules(),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       gatedNS,
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
		}},
	}
}

// ValidatingWorkloads is the image gate's validating webhook.
func ValidatingWorkloads() *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "tollgate-workloads"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "workloads.validate.tollgate.dev",
			ClientConfig:            svc("validate-workloads"),
			Rules:                   workloadRules(),
			MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
			NamespaceSelector:       gatedNS,
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			TimeoutSeconds:          ptr.To[int32](10),
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}
