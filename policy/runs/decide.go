package runs

import (
	"context"
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/internal/apijson"
	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
)

// Review is one admission request for a run, as the API server sends it.
type Review struct {
	// Kind is KindPipelineRun or KindTaskRun.
	Kind string
	// Namespace is the request's namespace: it is authoritative over
	// whatever the object's metadata says.
	Namespace   string
	Operation   string // OpCreate or OpUpdate
	SubResource string
	// User and Groups are the requesting user's.
	User   string
	Groups []string
	// Object and OldObject are the run as JSON (OldObject on UPDATE).
	Object, OldObject []byte
}

// decidesAll reports whether every check decides the review: a CREATE of
// the run itself. UPDATEs and status writes are decided by spec integrity
// alone — the spec cannot change after CREATE, so the decision made then
// stands, and re-running the other checks would break runs in flight
// whenever a policy is tightened.
func (r *Review) decidesAll() bool { return r.Operation == OpCreate && r.SubResource == "" }

// Facts are everything a run decision reads, gathered before it decides.
// The webhook and `tollgate check` fill the same fields from their own
// sources (the API server, a directory of YAML) and call the same Gather,
// MutateRun and Decide.
type Facts struct {
	Review Review
	// NamespaceLabels are the labels of the review's namespace, and
	// Policies the policies they select.
	NamespaceLabels map[string]string
	Policies        []*Policy
	// Keys are the stamp keys in force; nil: runs are stamped without a MAC.
	Keys       *specdigest.Keys
	Identities Identities

	// Run is the run as Gather read it: in full when every check decides,
	// otherwise its identity only (name, annotations, cluster Pipeline).
	Run *Input
	// OldAnnotations are the old object's annotations, on UPDATE.
	OldAnnotations map[string]string
}

// Gather reads the review's object into f.Run — and, when every check
// decides, what it refers to in the cluster (nil cluster: those checks are
// skipped). Errors caused by the object wrap ErrInvalidRun.
func (f *Facts) Gather(ctx context.Context, cluster Cluster) error {
	r := &f.Review
	if len(r.Object) == 0 {
		return fmt.Errorf("%w: the request carries no object", ErrInvalidRun)
	}
	if !r.decidesAll() {
		return f.identify()
	}
	pr, tr, err := Decode(r.Kind, r.Object)
	if err != nil {
		return err
	}
	if pr != nil {
		pr.Namespace = r.Namespace
	} else {
		tr.Namespace = r.Namespace
	}
	if f.Run, err = Gather(ctx, cluster, pr, tr); err != nil {
		return fmt.Errorf("gathering %s in namespace %q: %w", r.Kind, r.Namespace, err)
	}
	return nil
}

// identify reads only what an integrity decision needs.
func (f *Facts) identify() error {
	r := &f.Review
	var o struct {
		Metadata struct {
			Name        string            `json:"name"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
		Spec struct {
			PipelineRef *struct {
				Name     string `json:"name"`
				Resolver string `json:"resolver"`
			} `json:"pipelineRef"`
		} `json:"spec"`
	}
	if err := apijson.Unmarshal(r.Object, &o); err != nil {
		return fmt.Errorf("%w: decoding %s: %w", ErrInvalidRun, r.Kind, err)
	}
	f.Run = &Input{Kind: r.Kind, Namespace: r.Namespace, Name: o.Metadata.Name, Annotations: o.Metadata.Annotations}
	if r.Kind == KindPipelineRun && o.Spec.PipelineRef != nil && o.Spec.PipelineRef.Resolver == "" {
		f.Run.PipelineName = o.Spec.PipelineRef.Name
	}
	if r.Operation == OpUpdate && r.SubResource == "" {
		old, err := annotationsOf(r.OldObject)
		if err != nil {
			return fmt.Errorf("%w: the old %s: %w", ErrInvalidRun, r.Kind, err)
		}
		f.OldAnnotations = old
	}
	return nil
}

// Outcome is a run decision and what it cost.
type Outcome struct {
	Decision policy.Decision
	// Rego is how long the policies' user rules took (zero when none ran),
	// and User what they found (also in Decision).
	Rego time.Duration
	User policy.Decision
}

// Decide is the run guard's decision on gathered facts: on CREATE every
// built-in check, the policies' Rego rules and spec integrity; otherwise
// spec integrity alone. It does no I/O beyond what the Rego rules are
// allowed (none, by their capabilities).
func Decide(ctx context.Context, f *Facts) Outcome {
	r, in := &f.Review, f.Run
	var out Outcome
	d := policy.Decision{Subject: in.Subject()}
	if r.decidesAll() {
		d = Evaluate(f.Policies, in)
		start := time.Now()
		out.User = EvaluateRego(ctx, f.Policies, in, RegoRequest{Object: r.Object, Operation: r.Operation,
			User: r.User, Groups: r.Groups, NamespaceLabels: f.NamespaceLabels})
		if HasRego(f.Policies) {
			out.Rego = max(time.Since(start), time.Nanosecond)
		}
		d.Denials = append(d.Denials, out.User.Denials...)
		d.Warnings = append(d.Warnings, out.User.Warnings...)
	}
	integ := checkIntegrity(f)
	d.Denials = append(d.Denials, integ.Denials...)
	d.Warnings = append(d.Warnings, integ.Warnings...)
	d.Exempted = append(d.Exempted, integ.Exempted...)
	out.Decision = d
	return out
}

// Admission is the outcome of admitting one run as the API server would:
// the mutating path, then the decision on the mutated object.
type Admission struct {
	Decision policy.Decision
	Mutation *Mutation
}

// Admit runs a CREATE review through MutateRun and then Decide on the
// mutated object, with the same functions the webhook's two paths call.
// It is `tollgate check`'s whole decision.
func Admit(ctx context.Context, cluster Cluster, f Facts) (*Admission, error) {
	f.Review.Operation, f.Review.SubResource = OpCreate, ""
	m, err := MutateRun(ctx, cluster, &f)
	if err != nil {
		return nil, err
	}
	if m.Object, err = m.Apply(f.Review.Object); err != nil {
		return nil, err
	}
	f.Review.Object, f.Run = m.Object, nil
	if err := f.Gather(ctx, cluster); err != nil {
		return nil, err
	}
	return &Admission{Decision: Decide(ctx, &f).Decision, Mutation: m}, nil
}
