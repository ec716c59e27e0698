package images

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/policy/v1alpha1"
)

// producer is a compiled producer requirement.
type producer struct {
	namespaces []string
	tasks      []*regexp.Regexp
	patterns   []string
}

func compileProducer(p *v1alpha1.ProducerRequirement) (*producer, error) {
	if p == nil {
		return nil, nil
	}
	if len(p.Namespaces) == 0 && len(p.TrustedTasks) == 0 {
		return nil, fmt.Errorf("producer: name namespaces, trustedTasks or both")
	}
	out := &producer{namespaces: p.Namespaces, patterns: p.TrustedTasks}
	for i, t := range p.TrustedTasks {
		if strings.TrimSpace(t) == "" {
			return nil, fmt.Errorf("producer.trustedTasks[%d] is empty", i)
		}
		parts := strings.Split(t, "*")
		for j := range parts {
			parts[j] = regexp.QuoteMeta(parts[j])
		}
		out.tasks = append(out.tasks, regexp.MustCompile("^"+strings.Join(parts, ".*")+"$"))
	}
	return out, nil
}

func (p *producer) trusted(ref string) bool {
	if ref == "" {
		return false
	}
	for _, re := range p.tasks {
		if re.MatchString(ref) {
			return true
		}
	}
	return false
}

// check decides whether a verified statement shows this image was produced
// by an allowed run and trusted tasks. predicate is the statement's
// predicate; h the image's digest.
func (p *producer) check(predicateType string, predicate json.RawMessage, h v1.Hash) error {
	rec, err := provenanceRecord(predicateType, predicate)
	if err != nil {
		return err
	}
	if len(p.namespaces) > 0 && !slices.Contains(p.namespaces, rec.Namespace) {
		return fmt.Errorf("it was produced by %s in namespace %q, which is not among the image's owners %s", rec.Run, rec.Namespace, strings.Join(p.namespaces, ", "))
	}
	if len(p.tasks) == 0 {
		return nil
	}
	var pd *policy.Producer
	for i := range rec.Producers {
		_, digest, _ := strings.Cut(rec.Producers[i].Subject, "@")
		if digest == h.String() {
			pd = &rec.Producers[i]
			break
		}
	}
	if pd == nil {
		return fmt.Errorf("the provenance of %s names no task that produced %s", rec.Run, h)
	}
	if len(pd.Tasks) == 0 {
		return fmt.Errorf("no task of %s produced %s: the digest came from the Pipeline's own results, not from a trusted task", rec.Run, h)
	}
	for _, t := range pd.Tasks {
		where := t.TaskRun
		if t.PipelineTask != "" {
			where = fmt.Sprintf("pipeline task %q (TaskRun %s)", t.PipelineTask, t.TaskRun)
		}
		switch {
		case t.Inline:
			return fmt.Errorf("%s of %s, which produced it, is an inline task: an inline task is never a trusted producer (trusted tasks: %s)", where, rec.Run, strings.Join(p.patterns, ", "))
		case !p.trusted(t.Ref):
			return fmt.Errorf("%s of %s, which produced it, runs task %s, not a trusted task (trusted tasks: %s)", where, rec.Run, t.Ref, strings.Join(p.patterns, ", "))
		}
	}
	return nil
}

// provenanceRecord reads Tollgate's record from an SLSA predicate.
func provenanceRecord(predicateType string, predicate json.RawMessage) (*policy.ProvenanceRecord, error) {
	var raw json.RawMessage
	switch predicateType {
	case slsa.PredicateV1:
		var p struct {
			BuildDefinition struct {
				InternalParameters map[string]json.RawMessage `json:"internalParameters"`
			} `json:"buildDefinition"`
		}
		if err := json.Unmarshal(predicate, &p); err != nil {
			return nil, fmt.Errorf("reading the predicate: %w", err)
		}
		raw = p.BuildDefinition.InternalParameters[policy.ProvenanceKey]
	case slsa.PredicateV02:
		var p struct {
			Invocation struct {
				Environment map[string]json.RawMessage `json:"environment"`
			} `json:"invocation"`
		}
		if err := json.Unmarshal(predicate, &p); err != nil {
			return nil, fmt.Errorf("reading the predicate: %w", err)
		}
		raw = p.Invocation.Environment[policy.ProvenanceKey]
	default:
		return nil, fmt.Errorf("a producer requirement needs SLSA provenance (%s or %s), not %s", slsa.PredicateV1, slsa.PredicateV02, predicateType)
	}
	if len(raw) == 0 || string(raw) == "null" {
		return nil, fmt.Errorf("the provenance has no %s record of the run and the tasks that produced it (it was not made by Tollgate's signer for a run Tollgate admitted)", policy.ProvenanceKey)
	}
	var rec policy.ProvenanceRecord
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("reading the provenance's %s record: %w", policy.ProvenanceKey, err)
	}
	return &rec, nil
}
