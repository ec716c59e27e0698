package provenance

import (
	"fmt"
	"strings"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tollgate-dev/tollgate/policy/slsa"
	"github.com/tollgate-dev/tollgate/signer/hints"
)

// SLSA v0.2 (Chains' slsa/v1 format, alias in-toto).
const (
	StatementV01          = "https://in-toto.io/Statement/v0.1"
	reproducibleLabel     = "chains.tekton.dev/reproducible"
	taskRunV1Beta1GVK     = "tekton.dev/v1beta1/TaskRun"
	pipelineRunV1Beta1GVK = "tekton.dev/v1beta1/PipelineRun"
)

// The SLSA v0.2 predicate, with the JSON shape of in-toto's Go types.
type v02Predicate struct {
	Builder     v02Builder    `json:"builder"`
	BuildType   string        `json:"buildType"`
	Invocation  v02Invocation `json:"invocation"`
	BuildConfig any           `json:"buildConfig,omitempty"`
	Metadata    *v02Metadata  `json:"metadata,omitempty"`
	Materials   []v02Material `json:"materials,omitempty"`
}

type v02Builder struct {
	ID string `json:"id"`
}

type v02Invocation struct {
	ConfigSource v02ConfigSource `json:"configSource"`
	Parameters   any             `json:"parameters,omitempty"`
	Environment  any             `json:"environment,omitempty"`
}

type v02ConfigSource struct {
	URI        string            `json:"uri,omitempty"`
	Digest     map[string]string `json:"digest,omitempty"`
	EntryPoint string            `json:"entryPoint,omitempty"`
}

type v02Metadata struct {
	BuildStartedOn  *time.Time      `json:"buildStartedOn,omitempty"`
	BuildFinishedOn *time.Time      `json:"buildFinishedOn,omitempty"`
	Completeness    v02Completeness `json:"completeness"`
	Reproducible    bool            `json:"reproducible"`
}

type v02Completeness struct {
	Parameters  bool `json:"parameters"`
	Environment bool `json:"environment"`
	Materials   bool `json:"materials"`
}

type v02Material struct {
	URI    string            `json:"uri,omitempty"`
	Digest map[string]string `json:"digest,omitempty"`
}

type v02Step struct {
	EntryPoint  string            `json:"entryPoint"`
	Arguments   any               `json:"arguments,omitempty"`
	Environment any               `json:"environment,omitempty"`
	Annotations map[string]string `json:"annotations"`
}

// TaskRunSLSAv02 returns the SLSA v0.2 statement Chains' slsa/v1 (in-toto)
// format produces for a finished TaskRun. Chains records it as the
// tekton.dev/v1beta1 TaskRun it converts the run to.
func TaskRunSLSAv02(tr *pipelinev1.TaskRun, opts Options) (*intoto.Statement, error) {
	imgs, err := imageMaterials(tr)
	if err != nil {
		return nil, err
	}
	mats := hints.Append(nil, imgs...)
	mats = hints.Append(mats, sourceMaterials(tr)...)

	var paramSpecs pipelinev1.ParamSpecs
	if ts := tr.Status.TaskSpec; ts != nil {
		paramSpecs = ts.Params
	}
	inv := invocationV02(tr.Status.Provenance, tr.Spec.Params, paramSpecs, tr.Annotations, tr.Labels)
	subjects := hintSubjects(hints.TaskRunResults(tr))
	rec, err := taskRunRecord(tr, subjects)
	if err != nil {
		return nil, err
	}
	addTollgateV02(&inv, rec)
	pred := v02Predicate{
		Builder:     v02Builder{ID: opts.BuilderID},
		BuildType:   taskRunV1Beta1GVK,
		Invocation:  inv,
		BuildConfig: map[string]any{"steps": stepsV02(tr)},
		Metadata:    metadataV02(tr.Status.StartTime, tr.Status.CompletionTime, tr.Labels),
		Materials:   materialsV02(mats),
	}
	return statementV02(subjectDescriptors(subjects), pred)
}

// addTollgateV02 records the run guard's digests in invocation.environment.
func addTollgateV02(inv *v02Invocation, rec *Record) {
	if rec == nil {
		return
	}
	env, _ := inv.Environment.(map[string]map[string]string)
	out := map[string]any{}
	for k, v := range env {
		out[k] = v
	}
	out[TollgateKey] = rec
	inv.Environment = out
}

func statementV02(subjects []*intoto.ResourceDescriptor, pred v02Predicate) (*intoto.Statement, error) {
	s, err := toStruct(pred)
	if err != nil {
		return nil, fmt.Errorf("encoding the predicate: %w", err)
	}
	return &intoto.Statement{Type: StatementV01, Subject: subjects, PredicateType: slsa.PredicateV02, Predicate: s}, nil
}

func materialsV02(as []hints.Artifact) []v02Material {
	out := make([]v02Material, 0, len(as))
	for _, a := range as {
		out = append(out, v02Material{URI: a.Name, Digest: a.Digest})
	}
	return out
}

// invocationV02: where the Task came from, its parameters (defaults, then
// the run's), and the run's labels and annotations (without Chains' own
// and kubectl's last-applied-configuration).
func invocationV02(p *pipelinev1.Provenance, params pipelinev1.Params, specs pipelinev1.ParamSpecs, annotations, labels map[string]string) v02Invocation {
	var inv v02Invocation
	if p != nil && p.RefSource != nil {
		inv.ConfigSource = v02ConfigSource{URI: p.RefSource.URI, Digest: p.RefSource.Digest, EntryPoint: p.RefSource.EntryPoint}
	}
	values := map[string]pipelinev1.ParamValue{}
	for _, s := range specs {
		if s.Default != nil {
			values[s.Name] = *s.Default
		}
	}
	for _, prm := range params {
		values[prm.Name] = prm.Value
	}
	inv.Parameters = values
	env := map[string]map[string]string{}
	kept := map[string]string{}
	for k, v := range annotations {
		if k == corev1.LastAppliedConfigAnnotation || strings.HasPrefix(k, "chains.tekton.dev/") {
			continue
		}
		kept[k] = v
	}
	if len(kept) > 0 {
		env["annotations"] = kept
	}
	if len(labels) > 0 {
		env["labels"] = labels
	}
	if len(env) > 0 {
		inv.Environment = env
	}
	return inv
}

// stepsV02: for each step that ran, its entry point (script, or command),
// arguments, image and container.
func stepsV02(tr *pipelinev1.TaskRun) []v02Step {
	out := []v02Step{}
	for _, st := range tr.Status.Steps {
		var step pipelinev1.Step
		if ts := tr.Status.TaskSpec; ts != nil {
			for _, s := range ts.Steps {
				if s.Name == st.Name {
					step = s
					break
				}
			}
		}
		out = append(out, stepV02(step, st))
	}
	return out
}

// stepV02 is one step as SLSA v0.2's buildConfig records it: entry point
// (the script, or the command), arguments, image and container.
func stepV02(step pipelinev1.Step, st pipelinev1.StepState) v02Step {
	entry := strings.Join(step.Command, " ")
	if step.Script != "" {
		entry = step.Script
	}
	return v02Step{
		EntryPoint: entry,
		// A nil []string in an interface is written as null, as Chains writes it.
		Arguments: step.Args,
		Environment: map[string]any{
			"image":     ociScheme + strings.TrimPrefix(st.ImageID, "docker-pullable://"),
			"container": st.Name,
		},
	}
}

func metadataV02(start, end *metav1.Time, labels map[string]string) *v02Metadata {
	m := &v02Metadata{}
	if start != nil {
		t := start.UTC()
		m.BuildStartedOn = &t
	}
	if end != nil {
		t := end.UTC()
		m.BuildFinishedOn = &t
	}
	m.Reproducible = labels[reproducibleLabel] == "true"
	return m
}
