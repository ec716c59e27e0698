package images

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/rego"
)

// regoInput builds the documented input for user rules: image,
// attestations, resource, namespace, request. The workload is decoded once
// per request, and only if a rule runs.
type regoInput struct {
	req   Request
	image map[string]any
	// resource is the workload, parsed on first use.
	resource     rego.Value
	resourceErr  error
	resourceDone bool
}

func (r *regoInput) parsed() (rego.Value, error) {
	if !r.resourceDone && len(r.req.Object) > 0 {
		r.resourceDone = true
		if r.resource, r.resourceErr = rego.ParseJSON(r.req.Object); r.resourceErr != nil {
			r.resourceErr = fmt.Errorf("decoding the workload: %w", r.resourceErr)
		}
	}
	return r.resource, r.resourceErr
}

func (r *regoInput) doc(atts []VerifiedAttestation) (rego.Value, error) {
	list := make([]any, 0, len(atts))
	for _, a := range atts {
		var st any
		if err := json.Unmarshal(a.Statement, &st); err != nil {
			return nil, fmt.Errorf("decoding a verified statement: %w", err)
		}
		list = append(list, map[string]any{"requirement": a.Requirement, "predicateType": a.PredicateType, "authority": a.Authority, "statement": st})
	}
	labels := make(map[string]any, len(r.req.NamespaceLabels))
	for k, v := range r.req.NamespaceLabels {
		labels[k] = v
	}
	groups := make([]any, len(r.req.Groups))
	for i, g := range r.req.Groups {
		groups[i] = g
	}
	resource, err := r.parsed()
	if err != nil {
		return nil, err
	}
	return rego.InputWith(map[string]any{
		"image":        r.image,
		"attestations": list,
		"namespace":    map[string]any{"name": r.req.Namespace, "labels": labels},
		"request":      map[string]any{"operation": r.req.Operation, "user": r.req.User, "groups": groups},
	}, "resource", resource)
}

type userViolation struct {
	policy.Violation
	warn bool
}

// userRules evaluates a policy's Rego for one verified image: each
// attestation requirement's module over its own statements, then the
// policy's modules over all of them. A rule that fails to evaluate denies.
func userRules(ctx context.Context, p *Policy, res *Result, in *regoInput, at policy.Violation) []userViolation {
	var out []userViolation
	eval := func(prog *rego.Program, atts []VerifiedAttestation, requirement string) {
		value, err := in.doc(atts)
		var fs []rego.Finding
		if err == nil {
			fs, err = prog.Eval(ctx, value)
		}
		for _, f := range fs {
			v := at
			v.Policy, v.Rule = p.Name, strings.TrimPrefix(f.Rule, "data.")
			v.Message = fmt.Sprintf("image %s@%s: %s", in.image["repository"], in.image["digest"], f.Msg)
			if requirement != "" {
				v.Message = fmt.Sprintf("image %s@%s, attestation %s: %s", in.image["repository"], in.image["digest"], requirement, f.Msg)
			}
			v.Fix = f.Fix
			out = append(out, userViolation{Violation: v, warn: !f.Deny})
		}
		if err != nil {
			v := at
			v.Policy, v.Rule = p.Name, "rego"
			v.Message = fmt.Sprintf("image %s@%s: a rule failed to evaluate, so the image is refused: %v", in.image["repository"], in.image["digest"], err)
			v.Fix = "fix the rule (test it with `tollgate policy test`)"
			out = append(out, userViolation{Violation: v})
		}
	}
	for _, r := range p.requirements {
		if r.rego == nil {
			continue
		}
		var atts []VerifiedAttestation
		for _, a := range res.Attestations {
			if a.Requirement == r.name {
				atts = append(atts, a)
			}
		}
		eval(r.rego, atts, r.name)
	}
	if p.rego != nil {
		eval(p.rego, res.Attestations, "")
	}
	return out
}
