package runs

import (
	"context"
	"fmt"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/rego"
)

// RegoRequest is what user rules see of the admission besides the run.
type RegoRequest struct {
	// Object is the run as admitted (JSON, after mutation).
	Object          []byte
	Operation       string
	User            string
	Groups          []string
	NamespaceLabels map[string]string
}

// HasRego reports whether any of the policies has user rules.
func HasRego(policies []*Policy) bool {
	for _, p := range policies {
		if p.Rego != nil {
			return true
		}
	}
	return false
}

// EvaluateRego evaluates the policies' user rules over the run. The input
// is built once and shared by every policy. A rule that fails to evaluate
// denies the run (fail closed) with the reason.
func EvaluateRego(ctx context.Context, policies []*Policy, in *Input, req RegoRequest) policy.Decision {
	d := policy.Decision{Subject: in.Subject()}
	if !HasRego(policies) {
		return d
	}
	value, err := regoInput(in, req)
	if err != nil {
		d.Denials = append(d.Denials, policy.Violation{Policy: "-", Rule: "rego", Message: "the run cannot be given to Rego rules: " + err.Error()})
		return d
	}
	for _, p := range policies {
		if p.Rego == nil {
			continue
		}
		fs, err := p.Rego.Eval(ctx, value)
		for _, f := range fs {
			v := policy.Violation{Policy: p.Name, Rule: strings.TrimPrefix(f.Rule, "data."), Field: f.Path, Message: f.Msg, Fix: f.Fix}
			if f.Deny {
				d.Denials = append(d.Denials, v)
			} else {
				d.Warnings = append(d.Warnings, v)
			}
		}
		if err != nil {
			d.Denials = append(d.Denials, policy.Violation{Policy: p.Name, Rule: "rego", Message: "a rule failed to evaluate, so the run is denied: " + err.Error(),
				Fix: "fix the rule (test it with `tollgate policy test`)"})
		}
	}
	return d
}

// regoInput is the documented input: run, serviceAccount, serviceAccounts,
// namespace, request.
func regoInput(in *Input, req RegoRequest) (rego.Value, error) {
	if len(req.Object) == 0 {
		return nil, fmt.Errorf("the request carries no run")
	}
	var sas []any
	for _, u := range in.ServiceAccounts {
		name := u.Name
		if name == "" {
			name = "default" // what Tekton runs an unset service account as
		}
		sa := map[string]any{"name": name, "namespace": in.Namespace, "tasks": strs(u.Tasks)}
		if st, known := in.SAState[u.Name]; in.ClusterKnown && known {
			sa["exists"] = st.Exists
			var rules, grants []any
			for _, g := range st.Grants {
				if g.Baseline {
					continue
				}
				grants = append(grants, map[string]any{"binding": g.Binding, "role": g.Role, "namespace": g.Namespace})
				for _, r := range g.Rules {
					rules = append(rules, ruleDoc(r))
				}
			}
			sa["rules"], sa["grants"] = orEmpty(rules), orEmpty(grants)
		}
		sas = append(sas, sa)
	}
	doc := map[string]any{
		"serviceAccounts": orEmpty(sas),
		"namespace":       map[string]any{"name": in.Namespace, "labels": stringMap(req.NamespaceLabels)},
		"request":         map[string]any{"operation": req.Operation, "user": req.User, "groups": strs(req.Groups)},
	}
	if len(sas) > 0 {
		doc["serviceAccount"] = sas[0]
	}
	var run rego.Value
	if req.Object != nil {
		var err error
		if run, err = rego.ParseJSON(req.Object); err != nil {
			return nil, fmt.Errorf("decoding run: %w", err)
		}
	}
	return rego.InputWith(doc, "run", run)
}

func ruleDoc(r rbacv1.PolicyRule) map[string]any {
	return map[string]any{"apiGroups": strs(r.APIGroups), "resources": strs(r.Resources), "verbs": strs(r.Verbs),
		"resourceNames": strs(r.ResourceNames), "nonResourceURLs": strs(r.NonResourceURLs)}
}

func strs(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

func orEmpty(s []any) []any {
	if s == nil {
		return []any{}
	}
	return s
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
