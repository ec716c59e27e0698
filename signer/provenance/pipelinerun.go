package provenance

import (
	"encoding/json"
	"fmt"

	"github.com/tollgate-dev/tollgate/signer/config"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/tollgate-dev/tollgate/signer/hints"
)

// labelPipelineTask names the pipeline task a child TaskRun ran.
const labelPipelineTask = "tekton.dev/pipelineTask"

// PipelineRun is a finished PipelineRun with the child TaskRuns it ran.
type PipelineRun struct {
	Run      *pipelinev1.PipelineRun
	TaskRuns []*pipelinev1.TaskRun
}

// executed returns, in pipeline order (tasks, then finally), the completed
// child TaskRuns of each pipeline task.
func (p *PipelineRun) executed() []*pipelinev1.TaskRun {
	ps := p.Run.Status.PipelineSpec
	if ps == nil {
		return nil
	}
	var out []*pipelinev1.TaskRun
	for _, pts := range [][]pipelinev1.PipelineTask{ps.Tasks, ps.Finally} {
		for _, t := range pts {
			for _, tr := range p.TaskRuns {
				if tr != nil && tr.Labels[labelPipelineTask] == t.Name && tr.Status.CompletionTime != nil {
					out = append(out, tr)
				}
			}
		}
	}
	return out
}

// PipelineRunV2Alpha4 returns the SLSA v1.0 statement Chains' slsa/v2alpha4
// format produces for a finished PipelineRun. With deep inspection, the
// child TaskRuns' subjects, byproducts and sources are included.
func PipelineRunV2Alpha4(p *PipelineRun, opts Options, deep bool) (*intoto.Statement, error) {
	return pipelineRunV1(p, opts, deep, v2alpha4)
}

// PipelineRunV2Alpha3 returns the SLSA v1.0 statement Chains' slsa/v2alpha3
// format produces for a finished PipelineRun.
func PipelineRunV2Alpha3(p *PipelineRun, opts Options, deep bool) (*intoto.Statement, error) {
	return pipelineRunV1(p, opts, deep, v2alpha3)
}

func pipelineRunV1(p *PipelineRun, opts Options, deep bool, v variant) (*intoto.Statement, error) {
	pr := p.Run
	buildType := opts.BuildType
	if buildType == "" {
		buildType = config.BuildTypeSLSA
	}
	if buildType != config.BuildTypeSLSA && buildType != config.BuildTypeSLSATekton {
		return nil, fmt.Errorf("unsupported build type %q", buildType)
	}
	executed := p.executed()
	prResults := hints.PipelineRunResults(pr)
	subjects := pipelineRunSubjects(prResults, executed, deep, v)
	deps, err := pipelineRunDependencies(p, executed, buildType, deep, v)
	if err != nil {
		return nil, err
	}
	spec, err := runSpec(pr.Spec)
	if err != nil {
		return nil, err
	}
	external := map[string]any{"runSpec": spec}
	if prov := pr.Status.Provenance; prov != nil && prov.RefSource != nil && pr.Spec.PipelineRef != nil && pr.Spec.PipelineRef.Resolver != "" && pr.Spec.PipelineRef.Resolver != "Cluster" {
		external["buildConfigSource"] = map[string]string{"ref": firstDigest(prov.RefSource.Digest), "repository": prov.RefSource.URI, "path": prov.RefSource.EntryPoint}
	}
	internal, err := internalParameters(pr.Status.Provenance, pr.Labels, pr.Annotations, buildType)
	if err != nil {
		return nil, err
	}
	rec, err := pipelineRunRecord(p, subjects)
	if err != nil {
		return nil, err
	}
	addTollgate(internal, rec)

	byproducts, err := pipelineRunByproducts(prResults, executed, deep, v)
	if err != nil {
		return nil, err
	}
	return statementV1(subjectDescriptors(subjects), &slsa.BuildDefinition{BuildType: buildType, ResolvedDependencies: deps}, external, internal,
		&slsa.RunDetails{
			Builder:    &slsa.Builder{Id: opts.BuilderID},
			Metadata:   buildMetadata(string(pr.UID), pr.Status.StartTime, pr.Status.CompletionTime),
			Byproducts: byproducts,
		})
}

// pipelineRunByproducts are the PipelineRun's results, then (deep,
// v2alpha4) each task's.
func pipelineRunByproducts(prResults []hints.Result, executed []*pipelinev1.TaskRun, deep bool, v variant) ([]*intoto.ResourceDescriptor, error) {
	var byproducts []*intoto.ResourceDescriptor
	for _, r := range prResults {
		if v.alpha4 && (isBuildArtifact(r) || isImageHint(r.Name)) {
			continue
		}
		content, err := json.Marshal(r.Value)
		if err != nil {
			return nil, fmt.Errorf("encoding result %s: %w", r.Name, err)
		}
		byproducts = append(byproducts, &intoto.ResourceDescriptor{Name: "pipelineRunResults/" + r.Name, Content: content, MediaType: "application/json"})
	}
	if deep && v.alpha4 {
		for _, tr := range executed {
			bp, err := v.taskRunByproducts(tr)
			if err != nil {
				return nil, err
			}
			byproducts = append(byproducts, bp...)
		}
	}
	return byproducts, nil
}

// pipelineRunSubjects: v2alpha4, the PipelineRun's build artifacts and
// images, then (deep) each task's; v2alpha3, (deep) each task's type
// hints, then the PipelineRun's.
func pipelineRunSubjects(prResults []hints.Result, executed []*pipelinev1.TaskRun, deep bool, v variant) []hints.Artifact {
	var subjects []hints.Artifact
	if v.alpha4 {
		subjects = buildSubjects(prResults)
	}
	if deep {
		for _, tr := range executed {
			for _, s := range v.taskRunSubjects(tr) {
				subjects = hints.Append(subjects, hints.Artifact{Name: s.Name, Digest: s.Digest})
			}
		}
	}
	if !v.alpha4 {
		subjects = hints.Append(subjects, hintSubjects(prResults)...)
	}
	return subjects
}

// pipelineRunDependencies: the Pipeline's source, each task's source and
// images, (deep, v2alpha4) each step's inputs, and the Pipeline's inputs;
// each once.
func pipelineRunDependencies(p *PipelineRun, executed []*pipelinev1.TaskRun, buildType string, deep bool, v variant) ([]*intoto.ResourceDescriptor, error) {
	pr := p.Run
	var deps []*intoto.ResourceDescriptor
	if prov := pr.Status.Provenance; prov != nil && prov.RefSource != nil {
		deps = append(deps, &intoto.ResourceDescriptor{Name: depPipeline, Uri: prov.RefSource.URI, Digest: prov.RefSource.Digest})
	}
	for _, tr := range executed {
		d, err := taskDescriptor(tr, buildType)
		if err != nil {
			return nil, err
		}
		if d != nil {
			deps = append(deps, d)
		}
		imgs, err := imageMaterials(tr)
		if err != nil {
			return nil, fmt.Errorf("TaskRun %s: %w", tr.Name, err)
		}
		deps = append(deps, depDescriptors(imgs, "")...)
	}
	if deep && v.alpha4 {
		for _, tr := range executed {
			deps = append(deps, depDescriptors(stepSourceMaterials(tr), depInputResult)...)
		}
	}
	deps = append(deps, depDescriptors(pipelineSourceMaterials(p, executed, deep), depInputResult)...)
	return dedupe(deps)
}

// taskDescriptor names a child TaskRun's remote Task source (SLSA build
// type), or embeds the whole TaskRun (Tekton build type).
func taskDescriptor(tr *pipelinev1.TaskRun, buildType string) (*intoto.ResourceDescriptor, error) {
	p := tr.Status.Provenance
	if buildType == config.BuildTypeSLSATekton {
		content, err := json.Marshal(tr)
		if err != nil {
			return nil, fmt.Errorf("encoding TaskRun %s: %w", tr.Name, err)
		}
		d := &intoto.ResourceDescriptor{Name: "pipelineTask", Content: content}
		if p != nil && p.RefSource != nil {
			d.Uri, d.Digest = p.RefSource.URI, p.RefSource.Digest
		}
		return d, nil
	}
	if p != nil && p.RefSource != nil {
		return &intoto.ResourceDescriptor{Name: "pipelineTask", Uri: p.RefSource.URI, Digest: p.RefSource.Digest}, nil
	}
	return nil, nil
}

// pipelineSourceMaterials: ARTIFACT_INPUTS of the PipelineRun's results,
// then (deep) each task's sources, then the git source named by
// CHAINS-GIT_URL/CHAINS-GIT_COMMIT in the Pipeline's param defaults, the
// run's params and its results (the later winning).
func pipelineSourceMaterials(p *PipelineRun, executed []*pipelinev1.TaskRun, deep bool) []hints.Artifact {
	pr := p.Run
	out, _ := hints.Structured(hints.PipelineRunResults(pr), hints.InputsSuffix)
	out = hints.Append(nil, out...)
	var specs pipelinev1.ParamSpecs
	if ps := pr.Status.PipelineSpec; ps != nil {
		specs = ps.Params
		if deep {
			for _, tr := range executed {
				out = hints.Append(out, sourceMaterials(tr)...)
			}
		}
	}
	return hints.Append(out, gitSource(specs, pr.Spec.Params, hints.PipelineRunResults(pr))...)
}
