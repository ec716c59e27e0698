package webhook

import (
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// The webhook configurations the test harness registers, exactly as the
// Helm chart renders them with its default values (TestChart compares
// them). The client configuration names
// the service tollgate-system/tollgate-webhook with a path without a
// leading slash: envtest (and `tollgate dev`) rewrite it into the URL of a
// local webhook.
var (
	excludeNS = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"tollgate-system", "kube-system"},
	}}}
	// gatedNS selects the namespaces the image gate reviews.
	gatedNS = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: "tollgate.dev/gate", Operator: metav1.LabelSelectorOpIn, Values: []string{"enforce", "warn"}},
		{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"tollgate-system", "kube-system"}},
	}}
	create       = []admissionregistrationv1.OperationType{admissionregistrationv1.Create}
	createUpdate = []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
)

// hook is what differs between Tollgate's webhooks; everything else
// (Equivalent matching, fail closed, no side effects, 10 s) is common.
type hook struct {
	name, path string
	rules      []admissionregistrationv1.RuleWithOperations
	namespaces *metav1.LabelSelector
	objects    *metav1.LabelSelector
}

func rule(ops []admissionregistrationv1.OperationType, group string, resources ...string) admissionregistrationv1.RuleWithOperations {
	return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
		APIGroups: []string{group}, APIVersions: []string{"v1"}, Resources: resources, Scope: ptr.To(admissionregistrationv1.NamespacedScope)}}
}

func (h hook) validating() admissionregistrationv1.ValidatingWebhook {
	return admissionregistrationv1.ValidatingWebhook{
		Name: h.name,
		ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: "tollgate-system", Name: "tollgate-webhook", Path: ptr.To(h.path)}},
		Rules:                   h.rules,
		MatchPolicy:             ptr.To(admissionregistrationv1.Equivalent),
		NamespaceSelector:       h.namespaces,
		ObjectSelector:          h.objects,
		FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
		SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
		TimeoutSeconds:          ptr.To[int32](10),
		AdmissionReviewVersions: []string{"v1"},
	}
}

// mutating is the same webhook, reinvoked after other mutating webhooks so
// what it writes (the stamp, the pinned digest) covers their changes.
func (h hook) mutating() admissionregistrationv1.MutatingWebhook {
	v := h.validating()
	return admissionregistrationv1.MutatingWebhook{
		Name: v.Name, ClientConfig: v.ClientConfig, Rules: v.Rules, MatchPolicy: v.MatchPolicy,
		NamespaceSelector: v.NamespaceSelector, ObjectSelector: v.ObjectSelector, FailurePolicy: v.FailurePolicy,
		SideEffects: v.SideEffects, TimeoutSeconds: v.TimeoutSeconds, AdmissionReviewVersions: v.AdmissionReviewVersions,
		ReinvocationPolicy: ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
	}
}

func workloadRules() []admissionregistrationv1.RuleWithOperations {
	return []admissionregistrationv1.RuleWithOperations{
		rule(createUpdate, "", "pods"),
		rule([]admissionregistrationv1.OperationType{admissionregistrationv1.Update}, "", "pods/ephemeralcontainers"),
		rule(createUpdate, "apps", "deployments", "replicasets", "statefulsets", "daemonsets"),
		rule(createUpdate, "batch", "jobs", "cronjobs"),
	}
}

// ConfigurationName is the name of both webhook configurations (the
// chart's, for release "tollgate").
const ConfigurationName = "tollgate"

// Mutating is the mutating configuration: the run guard stamps the spec
// digest (and writes default limits); the image gate pins verified tags to
// digests (an injected sidecar is pinned too).
func Mutating() *admissionregistrationv1.MutatingWebhookConfiguration {
	return &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{
			hook{name: "runs.mutate.tollgate.dev", path: "mutate-runs", namespaces: excludeNS,
				rules: []admissionregistrationv1.RuleWithOperations{rule(create, "tekton.dev", "pipelineruns", "taskruns")}}.mutating(),
			hook{name: "workloads.mutate.tollgate.dev", path: "mutate-workloads", namespaces: gatedNS, rules: workloadRules()}.mutating(),
		},
	}
}

// Validating is the validating configuration: the run guard's for runs
// (CREATE, UPDATE, status), for Tasks and Pipelines (whose annotations
// Tekton copies into runs) and for Pods Tekton creates; the image gate's
// for workloads.
func Validating() *admissionregistrationv1.ValidatingWebhookConfiguration {
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ConfigurationName},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			hook{name: "runs.validate.tollgate.dev", path: "validate-runs", namespaces: excludeNS,
				rules: []admissionregistrationv1.RuleWithOperations{rule(createUpdate, "tekton.dev", "pipelineruns", "taskruns", "pipelineruns/status", "taskruns/status")}}.validating(),
			hook{name: "definitions.validate.tollgate.dev", path: "validate-runs", namespaces: excludeNS,
				rules: []admissionregistrationv1.RuleWithOperations{rule(createUpdate, "tekton.dev", "tasks", "pipelines")}}.validating(),
			hook{name: "pods.validate.tollgate.dev", path: "validate-runs", namespaces: excludeNS,
				rules:   []admissionregistrationv1.RuleWithOperations{rule(create, "", "pods")},
				objects: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tekton.dev/taskRun", Operator: metav1.LabelSelectorOpExists}}}}.validating(),
			hook{name: "workloads.validate.tollgate.dev", path: "validate-workloads", namespaces: gatedNS, rules: workloadRules()}.validating(),
		},
	}
}
