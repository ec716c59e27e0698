package provenance

import (
	"encoding/json"
	"fmt"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/tollgate-dev/tollgate/policy/specdigest"
)

// TollgateKey is where a statement records what Tollgate adds to Chains'
// provenance: internalParameters.tollgate (SLSA v1.0) or
// invocation.environment.tollgate (SLSA v0.2).
const TollgateKey = "tollgate"

// tollgateRecord is what the run guard vouched for: the spec digest it
// stamped at admission, and the digest of the spec Tekton resolved and ran
// (status.taskSpec or status.pipelineSpec, canonical JSON as for the stamp).
// A verifier compares the first with the run it can see, and can check that
// the resolved spec is the one it reviewed.
type tollgateRecord struct {
	SpecDigest         string `json:"specDigest"`
	ResolvedSpecDigest string `json:"resolvedSpecDigest,omitempty"`
}

// tollgateFor returns the record for a run the run guard admitted (one that
// carries tollgate.dev/spec-digest), or nil: runs Tollgate did not admit get
// exactly Chains' provenance.
func tollgateFor(annotations map[string]string, resolved any) (*tollgateRecord, error) {
	stamp, ok := annotations[specdigest.Annotation]
	if !ok {
		return nil, nil
	}
	r := &tollgateRecord{SpecDigest: stamp}
	if resolved != nil {
		b, err := json.Marshal(resolved)
		if err != nil {
			return nil, fmt.Errorf("encoding the resolved spec: %w", err)
		}
		if r.ResolvedSpecDigest, err = specdigest.OfSpec(b); err != nil {
			return nil, fmt.Errorf("digesting the resolved spec: %w", err)
		}
	}
	return r, nil
}

func resolvedTaskSpec(tr *pipelinev1.TaskRun) any {
	if tr.Status.TaskSpec == nil {
		return nil
	}
	return tr.Status.TaskSpec
}

func resolvedPipelineSpec(pr *pipelinev1.PipelineRun) any {
	if pr.Status.PipelineSpec == nil {
		return nil
	}
	return pr.Status.PipelineSpec
}
