package runs

import (
	"context"
	"errors"
	"fmt"

	"github.com/tektoncd/pipeline/pkg/apis/pipeline/pod"
	pipelinev1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/tollgate-dev/tollgate/internal/apijson"
	"github.com/tollgate-dev/tollgate/policy/rbac"
)

// Kinds of run.
const (
	KindPipelineRun = "PipelineRun"
	KindTaskRun     = "TaskRun"
)

// Cluster answers the questions the checks ask about the cluster. The webhook
// answers from informer caches; `tollgate check` from a directory of YAML.
type Cluster interface {
	Task(ctx context.Context, namespace, name string) (*pipelinev1.Task, error)
	Pipeline(ctx context.Context, namespace, name string) (*pipelinev1.Pipeline, error)
	ServiceAccountExists(ctx context.Context, namespace, name string) (bool, error)
	RBAC(ctx context.Context) (*rbac.Index, error)
}

// Unit is one TaskRun the run will create: a pipeline task, or the TaskRun itself.
type Unit struct {
	// Task is the pipeline task name, or the TaskRun's name.
	Task string
	// Path locates the pipeline task (or the TaskRun spec) in its object.
	Path *field.Path
	// Object names the object Path is in when that is not the run itself,
	// e.g. `Pipeline team-a/build`.
	Object string
	// TaskName is the name of the referenced Task, if any.
	TaskName string
	// Spec is the Task spec, when it is known at admission (inline or a Task in
	// the cluster); nil for remote references, which are checked when Tekton
	// creates the Pod.
	Spec *pipelinev1.TaskSpec
	// SpecPath locates Spec: in the run for an inline spec, in the Task otherwise.
	SpecPath *field.Path
	// SpecObject names the object SpecPath is in when it is not the run.
	SpecObject string
	// Inline is true when Spec is written in the run itself (so the mutating
	// path can default it).
	Inline bool
	// Unresolved says why Spec is nil.
	Unresolved string

	PodTemplate      *pod.PodTemplate
	StepSpecs        []pipelinev1.TaskRunStepSpec
	SidecarSpecs     []pipelinev1.TaskRunSidecarSpec
	ComputeResources *corev1.ResourceRequirements
}

// ServiceAccountUse is one place a run names the service account its TaskRuns run as.
type ServiceAccountUse struct {
	Name string
	Path *field.Path
	// Tasks lists the pipeline tasks (or the TaskRun) using it, when known.
	Tasks []string
}

// Ref is one reference to a Task, Pipeline or StepAction, local or remote.
type Ref struct {
	Kind     string // Task, Pipeline, StepAction
	Task     string // the pipeline task it is in, if any
	Step     string // the step it is in, for StepActions
	Path     *field.Path
	Object   string
	Name     string
	Resolver string
	Params   pipelinev1.Params
}

// ServiceAccountState is what the cluster says about one service account.
type ServiceAccountState struct {
	Exists bool
	Grants []rbac.Grant
}

// Input is everything the checks need about one run, gathered up front.
type Input struct {
	Kind      string
	Namespace string
	Name      string
	// PipelineName is the cluster Pipeline a PipelineRun refers to, if any.
	PipelineName string
	// Annotations of the run as decoded.
	Annotations map[string]string

	Units           []Unit
	ServiceAccounts []ServiceAccountUse
	Refs            []Ref
	// Unresolved notes parts of the run that could not be resolved at admission.
	Unresolved []string
	// Copied are the annotations Tekton copies from the run's own spec into
	// the TaskRuns it creates (taskRunSpecs[].metadata, embedded task
	// metadata), by field.
	Copied []Annotated

	// ClusterKnown is false when no cluster state was available (offline
	// check without --cluster-state): cluster checks are then skipped.
	ClusterKnown bool
	// SAState maps service account name to its state, when ClusterKnown.
	SAState map[string]ServiceAccountState
	// RBAC is the RBAC index the state was read from, when ClusterKnown.
	RBAC *rbac.Index
}

// Subject names the run for messages.
func (in *Input) Subject() string {
	return in.Kind + " " + in.Namespace + "/" + in.Name
}

// Decode decodes a run of the given kind from JSON. Unknown kinds are an error.
func Decode(kind string, raw []byte) (*pipelinev1.PipelineRun, *pipelinev1.TaskRun, error) {
	switch kind {
	case KindPipelineRun:
		pr := &pipelinev1.PipelineRun{}
		if err := apijson.Unmarshal(raw, pr); err != nil {
			return nil, nil, fmt.Errorf("%w: decoding PipelineRun: %w", ErrInvalidRun, err)
		}
		if pr.Kind != "" && pr.Kind != KindPipelineRun {
			return nil, nil, fmt.Errorf("%w: object kind %q is not PipelineRun", ErrInvalidRun, pr.Kind)
		}
		return pr, nil, nil
	case KindTaskRun:
		tr := &pipelinev1.TaskRun{}
		if err := apijson.Unmarshal(raw, tr); err != nil {
			return nil, nil, fmt.Errorf("%w: decoding TaskRun: %w", ErrInvalidRun, err)
		}
		if tr.Kind != "" && tr.Kind != KindTaskRun {
			return nil, nil, fmt.Errorf("%w: object kind %q is not TaskRun", ErrInvalidRun, tr.Kind)
		}
		return nil, tr, nil
	}
	return nil, nil, fmt.Errorf("%w: unsupported kind %q (want PipelineRun or TaskRun)", ErrInvalidRun, kind)
}

// Gather builds the Input for a PipelineRun or TaskRun (exactly one non-nil).
// cluster may be nil: references to the cluster are then left unresolved and
// cluster checks are skipped.
func Gather(ctx context.Context, cluster Cluster, pr *pipelinev1.PipelineRun, tr *pipelinev1.TaskRun) (*Input, error) {
	var in *Input
	var err error
	switch {
	case pr != nil:
		in, err = gatherPipelineRun(ctx, cluster, pr)
	case tr != nil:
		in, err = gatherTaskRun(ctx, cluster, tr)
	default:
		return nil, errors.New("no run to gather")
	}
	if err != nil {
		return nil, err
	}
	if cluster == nil {
		return in, nil
	}
	in.ClusterKnown = true
	idx, err := cluster.RBAC(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading RBAC: %w", err)
	}
	in.RBAC = idx
	in.SAState = map[string]ServiceAccountState{}
	for _, u := range in.ServiceAccounts {
		if u.Name == "" || u.Name == "default" {
			continue
		}
		if _, done := in.SAState[u.Name]; done {
			continue
		}
		ok, err := cluster.ServiceAccountExists(ctx, in.Namespace, u.Name)
		if err != nil {
			return nil, fmt.Errorf("reading service account %s/%s: %w", in.Namespace, u.Name, err)
		}
		in.SAState[u.Name] = ServiceAccountState{Exists: ok, Grants: idx.GrantsFor(in.Namespace, u.Name)}
	}
	return in, nil
}

// Annotated is a set of annotations and the field it is at.
type Annotated struct {
	Field       string
	Annotations map[string]string
}

func copiedAnnotations(pr *pipelinev1.PipelineRun) []Annotated {
	var out []Annotated
	for i, s := range pr.Spec.TaskRunSpecs {
		if s.Metadata != nil && len(s.Metadata.Annotations) > 0 {
			out = append(out, Annotated{fmt.Sprintf("spec.taskRunSpecs[%d].metadata.annotations", i), s.Metadata.Annotations})
		}
	}
	if ps := pr.Spec.PipelineSpec; ps != nil {
		for what, list := range map[string][]pipelinev1.PipelineTask{"tasks": ps.Tasks, "finally": ps.Finally} {
			for i, t := range list {
				if t.TaskSpec != nil && len(t.TaskSpec.Metadata.Annotations) > 0 {
					out = append(out, Annotated{fmt.Sprintf("spec.pipelineSpec.%s[%d].taskSpec.metadata.annotations", what, i), t.TaskSpec.Metadata.Annotations})
				}
			}
		}
	}
	return out
}

func runName(m interface {
	GetName() string
	GetGenerateName() string
}) string {
	if n := m.GetName(); n != "" {
		return n
	}
	if g := m.GetGenerateName(); g != "" {
		return g + "<generated>"
	}
	return "<unnamed>"
}

func gatherPipelineRun(ctx context.Context, cluster Cluster, pr *pipelinev1.PipelineRun) (*Input, error) {
	in := &Input{Kind: KindPipelineRun, Namespace: pr.Namespace, Name: runName(pr), Annotations: pr.Annotations}
	spec := field.NewPath("spec")
	in.Copied = copiedAnnotations(pr)

	// Service accounts: the template's, and each taskRunSpecs override. These
	// are known even when the Pipeline itself is remote.
	in.ServiceAccounts = append(in.ServiceAccounts, ServiceAccountUse{
		Name: pr.Spec.TaskRunTemplate.ServiceAccountName,
		Path: spec.Child("taskRunTemplate", "serviceAccountName"),
	})
	for i, trs := range pr.Spec.TaskRunSpecs {
		if trs.ServiceAccountName != "" {
			in.ServiceAccounts = append(in.ServiceAccounts, ServiceAccountUse{
				Name:  trs.ServiceAccountName,
				Path:  spec.Child("taskRunSpecs").Index(i).Child("serviceAccountName"),
				Tasks: []string{trs.PipelineTaskName},
			})
		}
	}

	ps, psPath, psObject, err := pipelineOf(ctx, cluster, pr, in)
	if err != nil {
		return nil, err
	}
	if ps == nil {
		return in, nil
	}

	type pipelineTask struct {
		t    pipelinev1.PipelineTask
		path *field.Path
	}
	tasks := make([]pipelineTask, 0, len(ps.Tasks)+len(ps.Finally))
	for i := range ps.Tasks {
		tasks = append(tasks, pipelineTask{ps.Tasks[i], psPath.Child("tasks").Index(i)})
	}
	for i := range ps.Finally {
		tasks = append(tasks, pipelineTask{ps.Finally[i], psPath.Child("finally").Index(i)})
	}
	for _, pt := range tasks {
		trs := pr.GetTaskRunSpec(pt.t.Name)
		u := Unit{
			Task:             pt.t.Name,
			Path:             pt.path,
			Object:           psObject,
			PodTemplate:      trs.PodTemplate,
			StepSpecs:        trs.StepSpecs,
			SidecarSpecs:     trs.SidecarSpecs,
			ComputeResources: trs.ComputeResources,
		}
		for i := range in.ServiceAccounts {
			if in.ServiceAccounts[i].Name == trs.ServiceAccountName {
				in.ServiceAccounts[i].Tasks = appendOnce(in.ServiceAccounts[i].Tasks, pt.t.Name)
				break
			}
		}
		if err := resolveTask(ctx, cluster, in, &u, pr.Namespace, pt.t.TaskRef, taskSpecOf(pt.t.TaskSpec), pt.path, psObject); err != nil {
			return nil, err
		}
		in.Units = append(in.Units, u)
	}
	return in, nil
}

// pipelineOf returns the run's Pipeline spec (embedded, or read from the
// cluster), the path of its tasks and the object it is in ("" when
// embedded); nil when it cannot be read here (remote, or not there yet),
// which is noted in in.Unresolved. The reference is recorded in in.Refs.
func pipelineOf(ctx context.Context, cluster Cluster, pr *pipelinev1.PipelineRun, in *Input) (ps *pipelinev1.PipelineSpec, psPath *field.Path, psObject string, err error) {
	spec := field.NewPath("spec")
	switch {
	case pr.Spec.PipelineSpec != nil:
		ps, psPath = pr.Spec.PipelineSpec, spec.Child("pipelineSpec")
	case pr.Spec.PipelineRef != nil:
		ref := pr.Spec.PipelineRef
		in.Refs = append(in.Refs, Ref{Kind: "Pipeline", Path: spec.Child("pipelineRef"), Name: ref.Name, Resolver: string(ref.Resolver), Params: ref.Params})
		if ref.Resolver == "" && ref.Name != "" {
			in.PipelineName = ref.Name
			if cluster == nil {
				in.Unresolved = append(in.Unresolved, fmt.Sprintf("Pipeline %q is in the cluster; its tasks are checked with --cluster-state or at admission", ref.Name))
				break
			}
			p, err := cluster.Pipeline(ctx, pr.Namespace, ref.Name)
			if errors.Is(err, ErrNotFound) {
				in.Unresolved = append(in.Unresolved, fmt.Sprintf("Pipeline %s/%s does not exist (yet); its Pods are checked when Tekton creates them", pr.Namespace, ref.Name))
				break
			}
			if err != nil {
				return nil, nil, "", fmt.Errorf("reading Pipeline %s/%s: %w", pr.Namespace, ref.Name, err)
			}
			ps, psPath, psObject = &p.Spec, field.NewPath("spec"), "Pipeline "+pr.Namespace+"/"+ref.Name
		} else {
			in.Unresolved = append(in.Unresolved, fmt.Sprintf("pipeline is resolved remotely (%s); its Pods are checked when Tekton creates them", ref.Resolver))
		}
	default:
		return nil, nil, "", fmt.Errorf("%w: spec has neither pipelineRef nor pipelineSpec", ErrInvalidRun)
	}
	return ps, psPath, psObject, nil
}

func taskSpecOf(e *pipelinev1.EmbeddedTask) *pipelinev1.TaskSpec {
	if e == nil {
		return nil
	}
	return &e.TaskSpec
}

func appendOnce(s []string, v string) []string {
	for _, e := range s {
		if e == v {
			return s
		}
	}
	return append(s, v)
}

func gatherTaskRun(ctx context.Context, cluster Cluster, tr *pipelinev1.TaskRun) (*Input, error) {
	name := runName(tr)
	in := &Input{Kind: KindTaskRun, Namespace: tr.Namespace, Name: name, Annotations: tr.Annotations}
	spec := field.NewPath("spec")
	in.ServiceAccounts = []ServiceAccountUse{{Name: tr.Spec.ServiceAccountName, Path: spec.Child("serviceAccountName"), Tasks: []string{name}}}
	u := Unit{
		Task:             name,
		Path:             spec,
		PodTemplate:      tr.Spec.PodTemplate,
		StepSpecs:        tr.Spec.StepSpecs,
		SidecarSpecs:     tr.Spec.SidecarSpecs,
		ComputeResources: tr.Spec.ComputeResources,
	}
	if tr.Spec.TaskRef == nil && tr.Spec.TaskSpec == nil {
		return nil, fmt.Errorf("%w: spec has neither taskRef nor taskSpec", ErrInvalidRun)
	}
	if err := resolveTask(ctx, cluster, in, &u, tr.Namespace, tr.Spec.TaskRef, tr.Spec.TaskSpec, spec, ""); err != nil {
		return nil, err
	}
	in.Units = []Unit{u}
	return in, nil
}

// resolveTask fills u.Spec from an inline spec or a Task in the cluster and
// records every reference it meets (the Task's and its steps' StepActions).
func resolveTask(ctx context.Context, cluster Cluster, in *Input, u *Unit, ns string, ref *pipelinev1.TaskRef, inline *pipelinev1.TaskSpec, path *field.Path, object string) error {
	switch {
	case inline != nil:
		u.Spec, u.SpecPath, u.SpecObject, u.Inline = inline, path.Child("taskSpec"), object, object == ""
	case ref != nil:
		in.Refs = append(in.Refs, Ref{Kind: "Task", Task: u.Task, Path: path.Child("taskRef"), Object: object, Name: ref.Name, Resolver: string(ref.Resolver), Params: ref.Params})
		switch {
		case ref.Resolver != "":
			u.Unresolved = fmt.Sprintf("Task is resolved remotely (%s); its Pod is checked when Tekton creates it", ref.Resolver)
		case ref.APIVersion != "" || (ref.Kind != "" && ref.Kind != pipelinev1.NamespacedTaskKind):
			u.Unresolved = fmt.Sprintf("custom task %s %s is not run by Tekton's Pod builder", ref.APIVersion, ref.Kind)
		case cluster == nil:
			u.TaskName = ref.Name
			u.Unresolved = fmt.Sprintf("Task %q is in the cluster; checked with --cluster-state or at admission", ref.Name)
		default:
			u.TaskName = ref.Name
			t, err := cluster.Task(ctx, ns, ref.Name)
			if errors.Is(err, ErrNotFound) {
				u.Unresolved = fmt.Sprintf("Task %s/%s does not exist (yet); its Pod is checked when Tekton creates it", ns, ref.Name)
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading Task %s/%s: %w", ns, ref.Name, err)
			}
			u.Spec, u.SpecPath, u.SpecObject = &t.Spec, field.NewPath("spec"), "Task "+ns+"/"+ref.Name
		}
	default:
		u.Unresolved = "pipeline task has neither taskRef nor taskSpec"
	}
	if u.Spec != nil {
		for i, s := range u.Spec.Steps {
			if s.Ref != nil {
				in.Refs = append(in.Refs, Ref{Kind: "StepAction", Task: u.Task, Step: s.Name, Path: u.SpecPath.Child("steps").Index(i).Child("ref"), Object: u.SpecObject, Name: s.Ref.Name, Resolver: string(s.Ref.Resolver), Params: s.Ref.Params})
			}
		}
	}
	return nil
}
