package provenance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/v1beta1"
	corev1 "k8s.io/api/core/v1"
	"knative.dev/pkg/apis"

	"github.com/tollgate-dev/tollgate/signer/hints"
)

// v02Task is one executed pipeline task in an SLSA v0.2 buildConfig, shaped
// as Chains writes it (from the tekton.dev/v1beta1 view of the run).
type v02Task struct {
	Name               string                  `json:"name,omitempty"`
	After              []string                `json:"after,omitempty"`
	Ref                v1beta1.TaskRef         `json:"ref,omitempty"`
	StartedOn          time.Time               `json:"startedOn,omitempty"`
	FinishedOn         time.Time               `json:"finishedOn,omitempty"`
	ServiceAccountName string                  `json:"serviceAccountName,omitempty"`
	Status             string                  `json:"status,omitempty"`
	Steps              []v02Step               `json:"steps,omitempty"`
	Invocation         v02Invocation           `json:"invocation,omitempty"`
	Results            []v1beta1.TaskRunResult `json:"results,omitempty"`
}

// PipelineRunSLSAv02 returns the SLSA v0.2 statement Chains' slsa/v1
// (in-toto) format produces for a finished PipelineRun.
func PipelineRunSLSAv02(p *PipelineRun, opts Options, deep bool) (*intoto.Statement, error) {
	pr := p.Run
	executed := p.executed()

	var subjects []hints.Artifact
	if deep {
		for _, tr := range executed {
			subjects = hints.Append(subjects, hintSubjects(hints.TaskRunResults(tr))...)
		}
	}
	subjects = hints.Append(subjects, hintSubjects(hints.PipelineRunResults(pr))...)

	var mats []hints.Artifact
	if prov := pr.Status.Provenance; prov != nil && prov.RefSource != nil {
		mats = hints.Append(mats, hints.Artifact{Name: prov.RefSource.URI, Digest: prov.RefSource.Digest})
	}
	for _, tr := range executed {
		imgs, err := imageMaterials(tr)
		if err != nil {
			return nil, fmt.Errorf("TaskRun %s: %w", tr.Name, err)
		}
		mats = hints.Append(mats, imgs...)
		if prov := tr.Status.Provenance; prov != nil && prov.RefSource != nil {
			mats = hints.Append(mats, hints.Artifact{Name: prov.RefSource.URI, Digest: prov.RefSource.Digest})
		}
	}
	mats = hints.Append(mats, pipelineSourceMaterials(p, executed, deep)...)

	var paramSpecs pipelinev1.ParamSpecs
	if ps := pr.Status.PipelineSpec; ps != nil {
		paramSpecs = ps.Params
	}
	tasks, err := tasksV02(p)
	if err != nil {
		return nil, err
	}
	inv := invocationV02(pr.Status.Provenance, pr.Spec.Params, paramSpecs, pr.Annotations, pr.Labels)
	rec, err := pipelineRunRecord(p, subjects)
	if err != nil {
		return nil, err
	}
	addTollgateV02(&inv, rec)
	pred := v02Predicate{
		Builder:     v02Builder{ID: opts.BuilderID},
		BuildType:   pipelineRunV1Beta1GVK,
		Invocation:  inv,
		BuildConfig: map[string]any{"tasks": tasks},
		Metadata:    metadataV02(pr.Status.StartTime, pr.Status.CompletionTime, pr.Labels),
		Materials:   materialsV02(mats),
	}
	return statementV02(subjectDescriptors(subjects), pred)
}

// tasksV02 lists every completed pipeline task with what it ran after, its
// Task reference, timing, status, steps, parameters and results. A TaskRun
// whose status does not account for its steps is left out, as Chains does.
func tasksV02(p *PipelineRun) ([]v02Task, error) {
	pr := p.Run
	ps := pr.Status.PipelineSpec
	out := []v02Task{}
	if ps == nil {
		return out, nil
	}
	var sa string
	if pr.Spec.TaskRunTemplate.ServiceAccountName != "" {
		sa = pr.Spec.TaskRunTemplate.ServiceAccountName
	}
	all := append(append([]pipelinev1.PipelineTask{}, ps.Tasks...), ps.Finally...)
	last := ""
	for i, t := range all {
		for _, tr := range p.TaskRuns {
			if tr == nil || tr.Labels[labelPipelineTask] != t.Name || tr.Status.CompletionTime == nil || tr.Status.TaskSpec == nil {
				continue
			}
			if len(tr.Status.TaskSpec.Steps) != len(tr.Status.Steps) {
				continue
			}
			steps, ok := orderedStepsV02(tr)
			if !ok {
				continue
			}
			after := append([]string(nil), t.RunAfter...)
			for _, ref := range pipelinev1.PipelineTaskResultRefs(&t) {
				if !slices.Contains(after, ref.PipelineTask) {
					after = append(after, ref.PipelineTask)
				}
			}
			if len(after) == 0 && i >= len(ps.Tasks) && last != "" {
				after = append(after, last)
			}
			var betaTR v1beta1.TaskRun
			if err := betaTR.ConvertFrom(context.Background(), tr); err != nil {
				return nil, fmt.Errorf("converting TaskRun %s to v1beta1: %w", tr.Name, err)
			}
			var start time.Time
			if tr.Status.StartTime != nil {
				start = tr.Status.StartTime.UTC()
			}
			task := v02Task{
				Name:               t.Name,
				After:              after,
				StartedOn:          start,
				FinishedOn:         tr.Status.CompletionTime.UTC(),
				ServiceAccountName: sa,
				Status:             statusOf(tr.Status.Conditions),
				Steps:              steps,
				Invocation:         invocationV02(tr.Status.Provenance, tr.Spec.Params, tr.Status.TaskSpec.Params, tr.Annotations, tr.Labels),
				Results:            betaTR.Status.TaskRunResults,
			}
			if t.TaskRef != nil {
				var ref v1beta1.TaskRef
				ref.ConvertFrom(context.Background(), *t.TaskRef)
				task.Ref = ref
			}
			out = append(out, task)
		}
		if i < len(ps.Tasks) {
			last = t.Name
		}
	}
	return out, nil
}

// orderedStepsV02 pairs the i-th step of the spec with the i-th step state;
// an unnamed state against a named step means they do not line up.
func orderedStepsV02(tr *pipelinev1.TaskRun) ([]v02Step, bool) {
	out := []v02Step{}
	for i, step := range tr.Status.TaskSpec.Steps {
		st := tr.Status.Steps[i]
		if strings.HasPrefix(st.Name, "unnamed-") && step.Name != "" {
			return nil, false
		}
		out = append(out, stepV02(step, st))
	}
	return out, true
}

func statusOf(conds []apis.Condition) string {
	if len(conds) == 0 {
		return ""
	}
	switch conds[0].Status {
	case corev1.ConditionFalse:
		return "Failed"
	case corev1.ConditionTrue:
		return "Succeeded"
	case corev1.ConditionUnknown:
		return "Running"
	}
	return ""
}
