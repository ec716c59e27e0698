package e2e

import (
	"strings"
	"testing"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
	"github.com/tollgate-dev/tollgate/testing/registry"
	"github.com/tollgate-dev/tollgate/testing/signing"
	"github.com/tollgate-dev/tollgate/webhook/imagegate"
	"github.com/tollgate-dev/tollgate/webhook/policystore"
)

const noTokens = `package acme.params

import rego.v1

# METADATA
# title: No secrets in params
# description: Params are recorded in provenance and logs; a token there leaks.
deny contains {"msg": sprintf("param %q looks like a credential: pass it as a Secret-backed workspace", [p.name]), "path": "spec.params"} if {
	some p in input.run.spec.params
	regex.match(` + "`(?i)token`" + `, p.name)
}
`

const noPasswords = `package acme.params

import rego.v1

deny contains {"msg": sprintf("param %q looks like a password", [p.name]), "path": "spec.params"} if {
	some p in input.run.spec.params
	regex.match(` + "`(?i)password`" + `, p.name)
}
`

const trustedBuilder = `package acme.builder

import rego.v1

import data.tollgate.lib

deny contains sprintf("built by %q, not by the platform's builder", [lib.builder_id(a.statement)]) if {
	some a in input.attestations
	lib.builder_id(a.statement) != "https://tollgate.dev/builders/trusted"
}
`

// TestRegoPolicies: user rules in both policy kinds, enforced by the
// webhook through the real API server, updated live.
func TestRegoPolicies(t *testing.T) {
	reg := registry.Start(t)
	key := signing.NewKey(t)
	env := startGuarded(t,
		namespace(signerNS, nil),
		namespace("shop", map[string]string{imagegate.LabelGate: imagegate.GateEnforce}),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "release-key"}, Data: map[string][]byte{"cosign.pub": key.PublicPEM}},
	)
	alice := env.As(t, Alice)
	ctx := t.Context()

	withParam := func(name, param string) *pipelinev1.PipelineRun {
		pr := pipelineRun(ns, name, "tekton-builder", map[string][]pipelinev1.Step{"build": {safeStep("compile")}}, "build")
		pr.Spec.Params = pipelinev1.Params{{Name: param, Value: *pipelinev1.NewStructuredValues("x")}}
		pr.Spec.PipelineSpec.Params = pipelinev1.ParamSpecs{{Name: param, Type: pipelinev1.ParamTypeString}}
		return pr
	}
	runPolicy := &v1alpha1.ClusterRunPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "acme"},
		Spec: v1alpha1.ClusterRunPolicySpec{
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			Rego:              []v1alpha1.RegoModule{{Name: "params.rego", Module: noTokens}},
		},
	}
	applyPolicy(t, env.Client, runPolicy)

	t.Run("a Rego rule denies a PipelineRun with its message", func(t *testing.T) {
		denied(t, alice.Create(ctx, withParam("token", "GITHUB_TOKEN")),
			`[acme.params.deny] (spec.params) param "GITHUB_TOKEN" looks like a credential`, `(policy "acme")`)
		if err := alice.Create(ctx, withParam("fine", "revision")); err != nil {
			t.Fatalf("a run the rule allows: %v", err)
		}
	})

	t.Run("user rules are counted on /metrics", func(t *testing.T) {
		body := metricsText(t, env)
		for _, m := range []string{`tollgate_rego_findings_total{effect="deny",gate="runs",policy="acme",rule="acme.params.deny"} 1`, `tollgate_rego_evaluations_total{gate="runs"}`, `tollgate_rego_evaluation_duration_seconds_bucket{gate="runs"`} {
			if !strings.Contains(body, m) {
				t.Errorf("/metrics has no %s", m)
			}
		}
	})

	t.Run("a broken module is not ready, and the last good version stays in force", func(t *testing.T) {
		p := &v1alpha1.ClusterRunPolicy{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "acme"}, p); err != nil {
			t.Fatal(err)
		}
		p.Spec.Rego[0].Module = "package acme.params\nimport rego.v1\n\ndeny contains msg if {\n\tmsg := no_such_function(input)\n}\n"
		if err := env.Client.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		got := waitPolicy(t, env.Client, "acme", metav1.ConditionFalse)
		msg := meta.FindStatusCondition(got.Status.Conditions, policystore.ConditionReady).Message
		for _, want := range []string{"acme/params.rego:5:9", "undefined function no_such_function", "stays in force"} {
			if !strings.Contains(msg, want) {
				t.Errorf("status does not mention %q: %s", want, msg)
			}
		}
		denied(t, alice.Create(ctx, withParam("token-2", "NPM_TOKEN")), `param "NPM_TOKEN" looks like a credential`)
	})

	t.Run("a corrected policy takes effect without a restart", func(t *testing.T) {
		p := &v1alpha1.ClusterRunPolicy{}
		if err := env.Client.Get(ctx, client.ObjectKey{Name: "acme"}, p); err != nil {
			t.Fatal(err)
		}
		p.Spec.Rego[0].Module = noPasswords
		if err := env.Client.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		waitPolicy(t, env.Client, "acme", metav1.ConditionTrue)
		if err := alice.Create(ctx, withParam("token-3", "GITHUB_TOKEN")); err != nil {
			t.Fatalf("the old rule is still enforced: %v", err)
		}
		denied(t, alice.Create(ctx, withParam("password", "DB_PASSWORD")), `param "DB_PASSWORD" looks like a password`)
	})

	t.Run("a second policy defining the same package is refused; the first is unaffected", func(t *testing.T) {
		copycat := &v1alpha1.ClusterRunPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "copycat"},
			Spec: v1alpha1.ClusterRunPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
				Rego:              []v1alpha1.RegoModule{{Name: "params.rego", Module: noTokens}},
			},
		}
		if err := env.Client.Create(ctx, copycat); err != nil {
			t.Fatal(err)
		}
		got := waitPolicy(t, env.Client, "copycat", metav1.ConditionFalse)
		if msg := meta.FindStatusCondition(got.Status.Conditions, policystore.ConditionReady).Message; !strings.Contains(msg, "rego package acme.params is already defined by policy acme") {
			t.Errorf("status: %s", msg)
		}
		waitPolicy(t, env.Client, "acme", metav1.ConditionTrue)
		denied(t, alice.Create(ctx, withParam("password-2", "DB_PASSWORD")), `param "DB_PASSWORD" looks like a password`)
		if err := alice.Create(ctx, withParam("token-4", "GITHUB_TOKEN")); err != nil {
			t.Fatalf("the refused copy is enforced: %v", err)
		}
	})

	t.Run("a module from a ConfigMap is enforced", func(t *testing.T) {
		applyAll(t, env.Client,
			namespace("cm-ns", map[string]string{"rules": "from-configmap"}),
			serviceAccount("cm-ns", "tekton-builder"),
			&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: signerNS, Name: "rules"}, Data: map[string]string{"labels.rego": `package cm.labels

import rego.v1

deny contains "runs here need a team label" if not input.run.metadata.labels.team
`}})
		applyPolicy(t, env.Client, &v1alpha1.ClusterRunPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "from-configmap"},
			Spec: v1alpha1.ClusterRunPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rules": "from-configmap"}},
				Rego:              []v1alpha1.RegoModule{{Name: "labels.rego", ConfigMapRef: &v1alpha1.ConfigMapKeyRef{Namespace: signerNS, Name: "rules", Key: "labels.rego"}}},
			},
		})
		tr := taskRun("cm-ns", "unlabelled", "tekton-builder", safeStep("build"))
		denied(t, env.Client.Create(ctx, tr), "[cm.labels.deny] runs here need a team label", `(policy "from-configmap")`)
		tr = taskRun("cm-ns", "labelled", "tekton-builder", safeStep("build"))
		tr.Labels = map[string]string{"team": "a"}
		if err := env.Client.Create(ctx, tr); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a rule that fails at run time denies, saying why", func(t *testing.T) {
		applyAll(t, env.Client, namespace("err-ns", map[string]string{"rules": "erroring"}), serviceAccount("err-ns", "tekton-builder"))
		applyPolicy(t, env.Client, &v1alpha1.ClusterRunPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "erroring"},
			Spec: v1alpha1.ClusterRunPolicySpec{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"rules": "erroring"}},
				Rego: []v1alpha1.RegoModule{{Name: "numbers.rego", Module: `package err.numbers

import rego.v1

deny contains sprintf("run number %d is odd", [n]) if {
	n := to_number(input.run.metadata.name)
	n % 2 == 1
}
`}},
			},
		})
		denied(t, env.Client.Create(ctx, taskRun("err-ns", "not-a-number", "tekton-builder", safeStep("build"))),
			"[rego]", "a rule failed to evaluate, so the run is denied", "data.err.numbers.deny", `(policy "erroring")`)
	})

	t.Run("a Rego rule over provenance denies an image built by another builder", func(t *testing.T) {
		applyImagePolicy(t, env.Client, imagePolicy("builders", reg.Host, func(s *v1alpha1.ClusterImagePolicySpec) {
			s.Authorities[0].Key.SecretRef.Name = "release-key"
			s.Attestations[0].Rego = trustedBuilder
		}), metav1.ConditionTrue)
		built := func(repo, builder string) string {
			img := reg.PushRandom(t, repo, "v1")
			key.Sign(t, img, signing.Options{})
			key.Attest(t, img, slsa.PredicateV1, signing.SLSAv1(builder), signing.Options{})
			return img.Context().Tag("v1").String()
		}
		if err := env.Client.Create(ctx, podOf("shop", "trusted", built("shop/trusted", "https://tollgate.dev/builders/trusted"))); err != nil {
			t.Fatalf("an image from the trusted builder: %v", err)
		}
		denied(t, env.Client.Create(ctx, podOf("shop", "evil", built("shop/evil", "https://evil.example/builder"))),
			`[acme.builder.deny]`, `attestation slsa: built by "https://evil.example/builder", not by the platform's builder`, `(policy "builders")`)
	})
}
