package provenance

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/tollgate-dev/tollgate/policy"
	"github.com/tollgate-dev/tollgate/policy/specdigest"
	"github.com/tollgate-dev/tollgate/signer/hints"
)

// TollgateKey is where a statement records what Tollgate adds to Chains'
// provenance (see policy.ProvenanceRecord).
const TollgateKey = policy.ProvenanceKey

// Record, Producer and TaskSource are the contract with the image gate.
type (
	Record     = policy.ProvenanceRecord
	Producer   = policy.Producer
	TaskSource = policy.TaskSource
)

// stampedRecord returns the record's digests for a run the run guard
// admitted (one that carries tollgate.dev/spec-digest), or nil: runs
// Tollgate did not admit get exactly Chains' provenance.
func stampedRecord(annotations map[string]string, resolved any, namespace, run string) (*Record, error) {
	stamp, ok := annotations[specdigest.Annotation]
	if !ok {
		return nil, nil
	}
	r := &Record{SpecDigest: stamp, Namespace: namespace, Run: run}
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

// taskRunRecord: every subject of a TaskRun was produced by its task.
func taskRunRecord(tr *pipelinev1.TaskRun, subjects []hints.Artifact) (*Record, error) {
	rec, err := stampedRecord(tr.Annotations, resolvedTaskSpec(tr), tr.Namespace, "TaskRun/"+tr.Name)
	if rec == nil || err != nil {
		return rec, err
	}
	src := taskSourceOf(tr)
	for _, s := range subjects {
		rec.Producers = append(rec.Producers, Producer{Subject: subjectName(s), Tasks: []TaskSource{src}})
	}
	return rec, nil
}

// pipelineRunRecord: a PipelineRun's subject was produced by the child
// TaskRuns whose results (or steps' results) name its digest.
func pipelineRunRecord(p *PipelineRun, subjects []hints.Artifact) (*Record, error) {
	pr := p.Run
	rec, err := stampedRecord(pr.Annotations, resolvedPipelineSpec(pr), pr.Namespace, "PipelineRun/"+pr.Name)
	if rec == nil || err != nil {
		return rec, err
	}
	executed := p.executed()
	for _, s := range subjects {
		pd := Producer{Subject: subjectName(s), Tasks: []TaskSource{}}
		for _, tr := range executed {
			if namesDigest(tr, s.Digest) {
				pd.Tasks = append(pd.Tasks, taskSourceOf(tr))
			}
		}
		rec.Producers = append(rec.Producers, pd)
	}
	return rec, nil
}

func subjectName(a hints.Artifact) string {
	algs := make([]string, 0, len(a.Digest))
	for alg := range a.Digest {
		algs = append(algs, alg)
	}
	sort.Strings(algs)
	if len(algs) == 0 {
		return a.Name
	}
	alg := algs[0]
	if _, ok := a.Digest["sha256"]; ok {
		alg = "sha256"
	}
	return a.Name + "@" + alg + ":" + a.Digest[alg]
}

// namesDigest reports whether a result of the TaskRun or of one of its
// steps holds one of the digest's values.
func namesDigest(tr *pipelinev1.TaskRun, digest map[string]string) bool {
	values := make([]string, 0, len(tr.Status.Results))
	for _, r := range hints.TaskRunResults(tr) {
		values = append(values, resultText(r.Value))
	}
	for _, r := range hints.StepResults(tr) {
		values = append(values, resultText(r.Value))
	}
	for _, hex := range digest {
		if len(hex) < 32 { // too short to identify anything
			continue
		}
		for _, v := range values {
			if strings.Contains(v, hex) {
				return true
			}
		}
	}
	return false
}

func resultText(v pipelinev1.ResultValue) string {
	if v.Type == pipelinev1.ParamTypeString || v.Type == "" {
		return v.StringVal
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// taskSourceOf says where a TaskRun's task came from: its taskRef (as
// admitted; Tekton copies a pipeline task's reference into the child) and
// the digest Tekton recorded when it resolved it, or inline.
func taskSourceOf(tr *pipelinev1.TaskRun) TaskSource {
	src := TaskSource{PipelineTask: tr.Labels[labelPipelineTask], TaskRun: tr.Name}
	ref := tr.Spec.TaskRef
	if ref == nil || tr.Spec.TaskSpec != nil {
		src.Inline = true
		return src
	}
	src.Ref, src.Name = TaskRefString(tr.Namespace, ref)
	if p := tr.Status.Provenance; p != nil && p.RefSource != nil && len(p.RefSource.Digest) > 0 {
		src.Digest = p.RefSource.Digest
	}
	return src
}

// TaskRefString renders a task reference in the form trusted-task lists
// match, and the task's name where the reference holds several.
func TaskRefString(namespace string, ref *pipelinev1.TaskRef) (string, string) {
	if ref.Resolver == "" {
		return "task://" + namespace + "/" + ref.Name, ""
	}
	params := map[string]string{}
	for _, p := range ref.Params {
		params[p.Name] = p.Value.StringVal
	}
	switch ref.Resolver {
	case "bundles":
		return "oci://" + params["bundle"], params["name"]
	case "git":
		repo := params["url"]
		if repo == "" && params["repo"] != "" {
			repo = strings.TrimSuffix(params["serverURL"], "/") + "/" + params["org"] + "/" + params["repo"]
		}
		return "git+" + repo + "//" + strings.TrimPrefix(params["pathInRepo"], "/") + "@" + params["revision"], ""
	case "hub":
		catalog := params["catalog"]
		if catalog == "" {
			catalog = "tekton-catalog-tasks"
		}
		return "hub://" + catalog + "/" + params["name"] + "@" + params["version"], params["name"]
	case "cluster":
		return "cluster://" + params["namespace"] + "/" + params["name"], params["name"]
	case "http":
		return params["url"], ""
	}
	q := url.Values{}
	for k, v := range params {
		q.Set(k, v)
	}
	return string(ref.Resolver) + "://?" + q.Encode(), ""
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
