package runs

import (
	"context"

	"github.com/tollgate-dev/tollgate/policy"
)

// Admission is the outcome of admitting one run as the webhook would: the
// mutating path, then the validating path on the mutated object.
type Admission struct {
	Decision policy.Decision
	Mutation *Mutation
}

// Admit runs a CREATE of the run in raw through the mutating and validating
// paths, exactly as the webhook does (without the API server). cluster may be
// nil (cluster checks skipped).
func Admit(ctx context.Context, cluster Cluster, policies []*Policy, kind, namespace, user string, raw []byte, ids Identities, nsLabels map[string]string) (*Admission, error) {
	in, err := decodeGather(ctx, cluster, kind, namespace, raw)
	if err != nil {
		return nil, err
	}
	m, err := Mutate(policies, in, raw, nil)
	if err != nil {
		return nil, err
	}
	in, err = decodeGather(ctx, cluster, kind, namespace, m.Object)
	if err != nil {
		return nil, err
	}
	d := Evaluate(policies, in)
	userRules := EvaluateRego(ctx, policies, in, RegoRequest{Object: m.Object, Operation: OpCreate, User: user, NamespaceLabels: nsLabels})
	d.Denials = append(d.Denials, userRules.Denials...)
	d.Warnings = append(d.Warnings, userRules.Warnings...)
	integ := CheckIntegrity(policies, in, Request{Operation: OpCreate, User: user, Object: m.Object, Annotations: in.Annotations, Decoded: true}, ids)
	d.Denials = append(d.Denials, integ.Denials...)
	d.Warnings = append(d.Warnings, integ.Warnings...)
	d.Exempted = append(d.Exempted, integ.Exempted...)
	return &Admission{Decision: d, Mutation: m}, nil
}

func decodeGather(ctx context.Context, cluster Cluster, kind, namespace string, raw []byte) (*Input, error) {
	pr, tr, err := Decode(kind, raw)
	if err != nil {
		return nil, err
	}
	if pr != nil {
		pr.Namespace = namespace
	} else {
		tr.Namespace = namespace
	}
	return Gather(ctx, cluster, pr, tr)
}
